import type { RedisClient } from "../redis.js";

export interface PublishTracker {
  /**
   * Runs `emit` and returns the publishes it issued. The Redis adapter publishes synchronously inside
   * `io.emit` without awaiting; capturing the promise is how a handler learns whether its message left this
   * replica.
   */
  capture(emit: () => void): Array<Promise<unknown>>;
}

/**
 * Wraps `client.publish` and `client.spublish` (the sharded adapter's, on a Redis Cluster): every failure goes
 * to `onFailure` (the adapter never awaits its publishes, so an unobserved rejection would otherwise end the
 * process), and `capture` sees the publishes of one emit.
 */
export function trackPublishes(client: RedisClient, onFailure: (channel: string, err: Error) => void): PublishTracker {
  let captured: Array<Promise<unknown>> | undefined;
  for (const command of ["publish", "spublish"] as const) {
    const original = client[command].bind(client) as (channel: string, message: string | Buffer) => Promise<number>;
    (client as unknown as Record<string, unknown>)[command] = (channel: string, message: string | Buffer) => {
      const sent = original(channel, message);
      sent.catch((err: Error) => onFailure(channel, err));
      captured?.push(sent);
      return sent;
    };
  }
  return {
    capture(emit) {
      const outer = captured;
      const mine: Array<Promise<unknown>> = [];
      captured = mine;
      try {
        emit();
      } finally {
        captured = outer;
      }
      return mine;
    },
  };
}

/**
 * The adapter subscribes without awaiting either: with a wrong password (or a Redis gone while they are
 * queued) those promises reject. Observed here, reported to `onFailure`, instead of becoming unhandled
 * rejections, which end the process (src/main.ts): a bad REDIS_URL leaves the replica not ready and saying why.
 */
export function observeSubscribes(client: RedisClient, onFailure: (command: string, err: Error) => void): void {
  // The adapter's close() unsubscribes without awaiting too: while Redis is away those reject as well.
  for (const command of [
    "subscribe",
    "psubscribe",
    "unsubscribe",
    "punsubscribe",
    "ssubscribe",
    "sunsubscribe",
  ] as const) {
    const original = client[command].bind(client) as (...args: unknown[]) => Promise<unknown>;
    (client as unknown as Record<string, unknown>)[command] = (...args: unknown[]) => {
      const done = original(...args);
      done.catch((err: Error) => onFailure(command, err));
      return done;
    };
  }
}
