import { randomUUID } from "node:crypto";
import { createServer, type Server as HttpServer } from "node:http";
import type { Cluster } from "ioredis";
import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { Server } from "socket.io";
import type { Config } from "./config.js";
import { createConnectionHandler } from "./events/index.js";
import type { TypedServer } from "./events/handler.js";
import { createHttpApp } from "./http/routes.js";
import { createLogger, type Logger } from "./logger.js";
import { createMetrics, type Metrics } from "./metrics.js";
import { createMemoryPostStore, createRedisPostStore } from "./posts/store.js";
import { connectRedis, type RedisConnections } from "./redis.js";
import { coalesceWebSocketWrites } from "./engine/coalesce.js";
import { releaseHandshakeRequests } from "./engine/release-requests.js";
import { installLimits } from "./limits/index.js";
import { RoomFeeds } from "./history/feeds.js";
import type { HistoryLimits, RoomLog } from "./history/log.js";
import { createMemoryLog } from "./history/memory-log.js";
import { createRedisLog } from "./history/redis-log.js";
import { deliverLocally, ROOM_MEMBERS_TIMEOUT_MS, watchRoomFeeds } from "./events/rooms.js";
import { directFrames } from "./engine/direct-frames.js";
import { generateRoutedId } from "./routing.js";
import { createDrain } from "./ops/drain.js";
import { createLimitedLog, truncate } from "./ops/log-limiter.js";
import { createMetricsServer } from "./ops/metrics-server.js";
import { createRedisFaults } from "./ops/redis-faults.js";
import { watchRedisHealth } from "./ops/redis-health.js";
import { watchShardedSubscriptions } from "./ops/shard-canary.js";
import { guardStore } from "./posts/guard.js";
import { createRelay } from "./events/relay.js";
import { createAuth } from "./auth/auth.js";
import { installAdminUi } from "./http/admin-ui.js";

export interface App {
  httpServer: HttpServer;
  io: TypedServer;
  log: Logger;
  metrics: Metrics;
  isReady(): boolean;
  /** The metrics listener (METRICS_PORT, its own port); undefined when METRICS_PORT=0. Not listening yet. */
  metricsServer: HttpServer | undefined;
  /** The SIGTERM drain (src/ops/drain.ts): resolves when every connection was closed gradually. */
  drain(): Promise<void>;
  /** Stops accepting, drops every local client so it reconnects elsewhere, closes Redis. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * One Redis: the classic adapter. A Redis Cluster: the sharded adapter (SSUBSCRIBE/SPUBLISH, so each message is
 * carried by its channel's shard alone) with dynamic subscriptions: a replica subscribes to a room's channel only
 * while it has members there. Room messages themselves travel on the room log's own channels either way
 * (src/history/redis-log.ts), subscribed by the same rule; the adapter carries broadcasts, posts and presence.
 * The adapter's README says its sharded adapter does not work with ioredis on a cluster (ioredis #1759): that was
 * answered by ioredis 6's `shardedSubscribers` cluster option, which src/redis.ts turns on; test/cluster runs
 * the cross-replica suite on a real Redis Cluster to keep it so.
 */
function adapterFor(redis: RedisConnections, config: Config) {
  if (redis.cluster) {
    return createShardedAdapter(redis.pub, redis.sub, {
      channelPrefix: `${config.redisKeyPrefix}socket.io`,
      subscriptionMode: "dynamic",
    });
  }
  return createAdapter(redis.pub, redis.sub, {
    key: `${config.redisKeyPrefix}socket.io`,
    // Answers to fetchSockets (room-members) come on this replica's own channel, not to every replica.
    publishOnSpecificResponseChannel: true,
    requestsTimeout: ROOM_MEMBERS_TIMEOUT_MS,
  });
}

export function createApp(config: Config, log: Logger = createLogger(config)): App {
  coalesceWebSocketWrites(log);
  const target = config.redisCluster ? { cluster: config.redisCluster } : config.redisUrl && { url: config.redisUrl };
  const redis: RedisConnections | undefined = target
    ? connectRedis(target, log, {
        commandTimeoutMs: config.redisCommandTimeoutMs,
        onPublishFailed: (channel, err) => faults.failed("publish", err, { channel: truncate(channel) }),
      })
    : undefined;
  const posts = redis
    ? guardStore(createRedisPostStore(redis.pub, config.redisKeyPrefix, config.postsLimit), {
        up: () => redisUp(),
        timeoutMs: config.redisCommandTimeoutMs,
        onFailure: (err) => faults.failed("posts", err),
      })
    : createMemoryPostStore(config.postsLimit);

  let closing = false;
  // Redis is up when its connections are and it answered a PING lately: a frozen Redis keeps its sockets open.
  const redisUp = () =>
    !redis || (redis.isReady() && (redisHealth?.answering() ?? false) && (canary?.healthy() ?? true));
  const isReady = () => !closing && !drain.draining() && redisUp();

  const io: TypedServer = new Server({
    cors: { origin: config.corsOrigins, methods: ["GET", "POST"] },
    maxHttpBufferSize: config.maxHttpBufferSize,
    pingInterval: config.pingIntervalMs,
    pingTimeout: config.pingTimeoutMs,
    adapter: redis ? adapterFor(redis, config) : undefined,
  });
  // Before the connection handler: its middleware and session listener run first.
  const auth = createAuth(config, io, log);
  // After the auth middleware: masks the verified token (ADMIN_UI=on only).
  const stopAdminUi = installAdminUi({ io, config, log, redis: redis?.pub });
  const limits: HistoryLimits = {
    size: config.historySize,
    ttlS: config.historyTtlS,
    dedupeWindowS: config.dedupeWindowS,
  };
  const history: RoomLog = redis
    ? createRedisLog({
        commands: redis.pub,
        subscriber: redis.feed,
        cluster: redis.cluster,
        keyPrefix: config.redisKeyPrefix,
        limits,
        commandTimeoutMs: config.redisCommandTimeoutMs,
        log,
        onSampledDelivery: (seconds) => metrics.roomDelivered(seconds),
      })
    : createMemoryLog(limits);
  const metrics = createMetrics({
    replicaId: config.replicaId,
    version: config.version,
    connections: () => io.engine.clientsCount,
    ready: isReady,
    redisConnected: redis ? () => redis.isReady() : undefined,
  });
  const limited = createLimitedLog(log);
  const faults = createRedisFaults(metrics, limited);
  const redisHealth = redis ? watchRedisHealth(redis.pub, (err) => faults.failed("ping", err)) : undefined;
  const metricsServer = config.ops.metricsPort === 0 ? undefined : createMetricsServer(metrics, config.replicaId);
  const httpServer = createServer(createHttpApp({ config, log, posts, isReady, io, metrics, auth }));
  // Attached after Express so that Engine.IO answers /socket.io/ and hands every other request on.
  io.attach(httpServer);
  io.engine.generateId = generateRoutedId;
  io.engine.on("headers", (headers: Record<string, string>) => {
    headers["X-Replica-Id"] = config.replicaId;
  });
  // Refusals (origin, MAX_CONNECTIONS, packets per poll) and slow consumers; before the last middleware.
  const guards = installLimits({ io, config, log, metrics, redis: redis?.pub });
  const drain = createDrain({
    io,
    log,
    metrics,
    delayMs: config.ops.drainDelayMs,
    closeMs: config.ops.drainCloseMs,
  });
  releaseHandshakeRequests(io, log);
  // A client controls the URL (an 8 KB sid) and the rate: one line per second per kind, the URL cut short.
  io.engine.on("connection_error", (err: { code: number; message: string; req?: { url?: string } }) => {
    limited.log(
      "warn",
      `engine.io:${err.message}`,
      { code: err.code, reason: err.message, url: truncate(err.req?.url) },
      "engine.io connection error",
    );
  });
  const relay = createRelay(
    io,
    redis && {
      publishes: redis.publishes,
      up: redisUp,
      onLocalOnly: (reason) => faults.failed("publish", new Error(reason)),
    },
  );

  const context = { io, replicaId: config.replicaId, log, metrics, history, auth, relay, limited } as const;
  const feeds: RoomFeeds = new RoomFeeds(history, (entry, except) => deliver(entry, except), log);
  const app = { ...context, feeds };
  const deliver = deliverLocally(app, directFrames(log));
  watchRoomFeeds(app);
  const canary = !redis?.cluster
    ? undefined
    : watchShardedSubscriptions({
        publisher: redis.pub as Cluster,
        subscribers: [
          { name: "adapter", client: redis.sub as Cluster },
          { name: "room feeds", client: redis.feed as Cluster, onRecovered: () => feeds.resyncAll() },
        ],
        prefix: config.redisKeyPrefix,
        uid: `${config.replicaId}:${randomUUID().slice(0, 8)}`,
        log,
      });
  io.on("connection", createConnectionHandler(app, guards.eventGate(app)));

  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      closing = true;
      stopAdminUi();
      log.info({ connections: io.engine.clientsCount }, "shutting down");
      // io.close() closes the HTTP listener and every local engine connection: clients see a transport
      // close (not a server-side disconnect) and therefore reconnect, through the balancer, elsewhere.
      await new Promise<void>((resolve) => {
        io.close(() => resolve());
        // Engine.IO has answered every pending poll with a close packet by now; give those responses a
        // moment to flush, then cut whatever keep-alive connection still holds the listener open.
        setTimeout(() => httpServer.closeAllConnections(), 500).unref();
      });
      history.close();
      redisHealth?.stop();
      canary?.stop();
      if (metricsServer?.listening) {
        const stopped = new Promise<void>((resolve) => metricsServer.close(() => resolve()));
        metricsServer.closeAllConnections();
        await stopped;
      }
      await redis?.close();
      metrics.close();
      limited.close();
      log.info("shut down");
    })();
    return closed;
  };

  return { httpServer, io, log, metrics, isReady, metricsServer, drain: () => drain.start(), close };
}
