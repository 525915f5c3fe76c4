import type { RedisClient } from "../redis.js";

/** How often readiness asks Redis, and how old the last answer may be for Redis to count as up. */
export const PING_INTERVAL_MS = 1000;
export const PING_STALE_MS = 2000;

export interface RedisHealth {
  /** Whether a PING was answered within the last PING_STALE_MS. */
  answering(): boolean;
  /** PINGs that failed or went unanswered within PING_STALE_MS, since start. */
  failures(): number;
  stop(): void;
}

/**
 * A connection's `status` stays "ready" while Redis is frozen (SIGSTOP, a swap storm, a long fork): the TCP
 * connection is up, nothing answers. Readiness follows a real round trip instead: one PING a second, at most one
 * in flight, and Redis counts as up only while the last answer is recent. A frozen Redis turns `/readyz` 503
 * within PING_STALE_MS + PING_INTERVAL_MS.
 */
export function watchRedisHealth(client: RedisClient, onFailure: (err: Error) => void): RedisHealth {
  let answeredAt = -Infinity;
  let inFlight = false;
  let failed = 0;
  const ping = () => {
    // Not connected: nothing to ask (a queued PING would answer later, for a past state); the last answer ages.
    if (inFlight || client.status !== "ready") return;
    inFlight = true;
    const sent = Date.now();
    let late = false;
    // Our own deadline: the client's command timeout may be longer than the staleness we tolerate.
    const timer = setTimeout(() => {
      late = true;
      failed++;
      onFailure(new Error(`no PONG within ${PING_STALE_MS} ms`));
    }, PING_STALE_MS);
    client
      .ping()
      .then(
        () => {
          if (!late) answeredAt = sent;
        },
        (err: Error) => {
          if (late) return;
          failed++;
          onFailure(err);
        },
      )
      // At most one PING in flight: during a freeze they would otherwise pile up in the command queue.
      .finally(() => {
        clearTimeout(timer);
        inFlight = false;
      });
  };
  ping();
  const interval = setInterval(ping, PING_INTERVAL_MS);
  interval.unref();
  return {
    answering: () => Date.now() - answeredAt <= PING_STALE_MS,
    failures: () => failed,
    stop: () => clearInterval(interval),
  };
}
