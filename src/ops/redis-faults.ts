import type { Metrics } from "../metrics.js";
import { errorSummary, type LimitedLog } from "./log-limiter.js";

/** Where a Redis failure was seen: readiness's PING, an adapter publish (broadcasts), the post store. */
export type RedisFailureKind = "ping" | "publish" | "posts";

export interface RedisFaults {
  /** Counts one failure (`realtime_redis_failures_total{kind}`) and logs it, one line a second per kind. */
  failed(kind: RedisFailureKind, err: unknown, fields?: Record<string, unknown>): void;
}

export function createRedisFaults(metrics: Metrics, limited: LimitedLog): RedisFaults {
  const counter = metrics.counter(
    "realtime_redis_failures_total",
    "Redis commands that failed or went unanswered, by where they were issued (ping, publish, posts).",
    ["kind"],
  );
  const cells = { ping: counter.cell("ping"), publish: counter.cell("publish"), posts: counter.cell("posts") };
  const messages: Record<RedisFailureKind, string> = {
    ping: "redis did not answer PING: not ready",
    publish: "redis publish failed: message reached this replica's clients only",
    posts: "post store unavailable",
  };
  return {
    failed(kind, err, fields = {}) {
      cells[kind].value++;
      limited.log("warn", `redis-${kind}`, { ...fields, error: errorSummary(err).message }, messages[kind]);
    },
  };
}
