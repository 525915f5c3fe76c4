import { readFileSync } from "node:fs";

/** File descriptors a replica needs besides its clients: Redis connections, the listeners, logs, nginx keepalive. */
export const RESERVED_FDS = 256;

/** The soft "Max open files" of `/proc/self/limits` (Linux); undefined where it cannot be read or is unlimited. */
export function openFilesLimit(limitsText = readProcLimits()): number | undefined {
  const match = /^Max open files\s+(\d+|unlimited)\s/m.exec(limitsText ?? "");
  return match?.[1] && match[1] !== "unlimited" ? Number(match[1]) : undefined;
}

function readProcLimits(): string | undefined {
  try {
    return readFileSync("/proc/self/limits", "utf8");
  } catch {
    return undefined;
  }
}

/**
 * A MAX_CONNECTIONS the process cannot open fails the other way: past the file limit `accept` fails with EMFILE
 * (nginx sees errors, the client no 429, and Redis reconnections fail too). Returns the warning to log, if any.
 */
export function fdLimitWarning(maxConnections: number, limit: number | undefined): string | undefined {
  if (limit === undefined || maxConnections + RESERVED_FDS <= limit) return undefined;
  return (
    `MAX_CONNECTIONS (${maxConnections}) is above what this process may open (${limit} files, ${RESERVED_FDS} of ` +
    `them kept for Redis, listeners and logs): connections past ${Math.max(0, limit - RESERVED_FDS)} fail with ` +
    "EMFILE instead of a 429. Raise the limit (ulimit -n, compose ulimits) or lower MAX_CONNECTIONS"
  );
}
