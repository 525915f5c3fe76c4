import type { RedisClient } from "../redis.js";
import type { Config } from "../config.js";
import type { AppContext, TypedServer } from "../events/handler.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import { guardEngine } from "./engine.js";
import { fdLimitWarning, openFilesLimit } from "./fd-limit.js";
import { createEventGate, type EventGate } from "./rate.js";
import { watchSlowConsumers } from "./slow-consumer.js";
import { createUserRateLimiter } from "./user-rate.js";

export interface LimitsDeps {
  io: TypedServer;
  config: Config;
  log: Logger;
  metrics: Metrics;
  /** The app's command connection, for the per-user limit across replicas. */
  redis?: RedisClient;
}

export interface Limits {
  /** The per-socket (and per-user) event limit for the app's listeners (src/events/index.ts). */
  eventGate(app: AppContext): EventGate;
}

/**
 * Every limit of the "Security and limits" table that lives in the app: Engine.IO refusals (origin,
 * connections, packets per poll), slow consumers, and the event rate gate. Call before any other
 * io.engine.use middleware that must come last (src/app.ts: releaseHandshakeRequests).
 */
export function installLimits({ io, config, log, metrics, redis }: LimitsDeps): Limits {
  const { limits } = config;
  const refusals = metrics.counter(
    "realtime_limit_refusals_total",
    "Requests refused and connections closed by a limit, by code.",
    ["code"],
  );
  const refused = (code: string) => void refusals.cell(code).value++;
  const openFiles = openFilesLimit();
  const fdWarning = fdLimitWarning(limits.maxConnections, openFiles);
  if (fdWarning) log.warn({ maxConnections: limits.maxConnections, openFiles }, fdWarning);
  guardEngine(io, {
    maxConnections: limits.maxConnections,
    maxPacketsPerPoll: limits.maxPacketsPerPoll,
    corsOrigins: config.corsOrigins,
    replicaId: config.replicaId,
    log,
    refused,
  });
  watchSlowConsumers(io, { maxBytes: limits.maxSocketBufferBytes, log, evicted: () => refused("SLOW_CONSUMER") });
  const users =
    limits.userEventsPerS > 0
      ? createUserRateLimiter({ perS: limits.userEventsPerS, redis, keyPrefix: config.redisKeyPrefix, log })
      : undefined;
  return {
    eventGate: (app) =>
      createEventGate(app, {
        eventsPerS: limits.eventsPerS,
        burst: limits.burst,
        users,
        disconnected: () => refused("RATE_LIMITED"),
      }),
  };
}
