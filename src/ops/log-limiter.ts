import type { Logger } from "../logger.js";

/** Longest value of a client-controlled field (a URL, a reason) that reaches the logs. */
export const MAX_LOGGED_CHARS = 128;

/** `value` cut to MAX_LOGGED_CHARS, saying how long it was: a 8 KB query string must not become a 8 KB line. */
export function truncate(value: string | undefined, max = MAX_LOGGED_CHARS): string | undefined {
  if (value === undefined || value.length <= max) return value;
  return `${value.slice(0, max)}…(${value.length} chars)`;
}

/** An error as one short object: type and message, never the stack (a stack overflow's is hundreds of frames). */
export function errorSummary(err: unknown): { type: string; message: string | undefined } {
  if (err instanceof Error) return { type: err.name, message: truncate(err.message) };
  return { type: typeof err, message: truncate(String(err)) };
}

export type Level = "warn" | "error";

export interface LimitedLog {
  /**
   * Logs the first `kind` at once, then at most one line per interval for that kind, carrying `count`: the
   * occurrences since the previous line. A flood of one kind (thousands of bad polls a second) costs one line a
   * second; a rare event still logs immediately.
   */
  log(level: Level, kind: string, fields: Record<string, unknown>, msg: string): void;
  close(): void;
}

interface Window {
  count: number;
  level: Level;
  fields: Record<string, unknown>;
  msg: string;
  timer: NodeJS.Timeout;
}

export function createLimitedLog(log: Logger, intervalMs = 1000): LimitedLog {
  const windows = new Map<string, Window>();
  // One window per kind: occurrences inside it are counted, and its end reports them (then opens another, so
  // a steady flood logs once per interval) or, when there were none, forgets the kind.
  const open = (kind: string, first: Omit<Window, "timer" | "count">) => {
    const timer = setTimeout(() => {
      const w = windows.get(kind);
      windows.delete(kind);
      if (!w || w.count === 0) return;
      log[w.level]({ ...w.fields, kind, count: w.count, windowMs: intervalMs }, w.msg);
      open(kind, w);
    }, intervalMs);
    timer.unref();
    windows.set(kind, { ...first, count: 0, timer });
  };
  return {
    log(level, kind, fields, msg) {
      const w = windows.get(kind);
      if (w) {
        w.count++;
        w.level = level;
        w.fields = fields;
        w.msg = msg;
        return;
      }
      log[level]({ ...fields, kind, count: 1 }, msg);
      open(kind, { level, fields, msg });
    },
    close() {
      for (const w of windows.values()) clearTimeout(w.timer);
      windows.clear();
    },
  };
}
