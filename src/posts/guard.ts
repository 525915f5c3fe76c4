import { StoreUnavailableError } from "./store.js";

export interface StoreGuard {
  /** Whether Redis answers now (connections up, last PING recent): otherwise fail at once. */
  up(): boolean;
  /** The longest any store call may take; Redis's own command timeout should fire first. */
  timeoutMs: number;
  onFailure(err: unknown): void;
}

/**
 * Wraps every method of a Redis-backed store so that a Redis that is away or frozen costs the caller
 * milliseconds, not the command timeout on every request: while readiness says Redis is not answering, calls
 * fail at once with StoreUnavailableError (503 STORE_UNAVAILABLE); otherwise each call is bounded by
 * `timeoutMs`. A 503 that took seconds would be multiplied by the balancer, which retries 503s on the next
 * replica (proxy_next_upstream), each waiting the same timeout.
 */
export function guardStore<T extends object>(store: T, guard: StoreGuard): T {
  const guarded: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(store)) {
    if (typeof value !== "function") {
      guarded[name] = value;
      continue;
    }
    const method = value as (...args: unknown[]) => Promise<unknown>;
    guarded[name] = async (...args: unknown[]) => {
      if (!guard.up()) {
        const err = new StoreUnavailableError(new Error("redis is not answering"));
        guard.onFailure(err);
        throw err;
      }
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new StoreUnavailableError(new Error(`no answer within ${guard.timeoutMs} ms`))),
          guard.timeoutMs,
        );
      });
      try {
        return await Promise.race([method.apply(store, args), deadline]);
      } catch (err) {
        if (err instanceof StoreUnavailableError) guard.onFailure(err);
        throw err;
      } finally {
        clearTimeout(timer);
      }
    };
  }
  return guarded as T;
}
