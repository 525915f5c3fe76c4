import { createServer, ServerResponse, type Server as HttpServer } from "node:http";
import { createAdapter } from "@socket.io/redis-adapter";
import { Server } from "socket.io";
import type { Config } from "./config.js";
import { createConnectionHandler } from "./events/index.js";
import type { TypedServer } from "./events/handler.js";
import { createHttpApp } from "./http/routes.js";
import { createLogger, type Logger } from "./logger.js";
import { createMetrics, type Metrics } from "./metrics.js";
import { createMemoryPostStore, createRedisPostStore } from "./posts/store.js";
import { connectRedis, type RedisConnections } from "./redis.js";
import { coalesceWebSocketWrites } from "./coalesce.js";
import { RoomFeeds } from "./history/feeds.js";
import type { HistoryLimits, RoomLog } from "./history/log.js";
import { createMemoryLog } from "./history/memory-log.js";
import { createRedisLog } from "./history/redis-log.js";
import { deliverLocally, watchRoomFeeds } from "./events/rooms.js";
import { generateRoutedId } from "./routing.js";

const ROOM_MEMBERS_TIMEOUT_MS = 2000;

export interface App {
  httpServer: HttpServer;
  io: TypedServer;
  log: Logger;
  metrics: Metrics;
  isReady(): boolean;
  /** Stops accepting, drops every local client so it reconnects elsewhere, closes Redis. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Engine.IO keeps the HTTP request that opened each session twice: as `rawSocket.request`, and, for
 * websocket upgrades, through the response stand-in whose close listener lives as long as the TCP
 * socket. Together about 2 KB per idle connection, and nothing here reads them after the handshake.
 * The middleware must stay the last one: setHeader on the stand-in needs its request.
 */
function releaseHandshakeRequests(io: TypedServer): void {
  io.engine.use((_req: unknown, res: { req?: unknown }, next: () => void) => {
    next();
    if (!(res instanceof ServerResponse)) res.req = null;
  });
  io.engine.on("connection", (rawSocket: { request: unknown }) => {
    rawSocket.request = null;
  });
}

export function createApp(config: Config, log: Logger = createLogger(config)): App {
  coalesceWebSocketWrites();
  const redis: RedisConnections | undefined = config.redisUrl
    ? connectRedis(config.redisUrl, log, { commandTimeoutMs: config.redisCommandTimeoutMs })
    : undefined;
  const posts = redis
    ? createRedisPostStore(redis.pub, config.redisKeyPrefix, config.postsLimit)
    : createMemoryPostStore(config.postsLimit);

  let closing = false;
  const isReady = () => !closing && (redis ? redis.isReady() : true);

  const io: TypedServer = new Server({
    cors: { origin: config.corsOrigins, methods: ["GET", "POST"] },
    maxHttpBufferSize: config.maxHttpBufferSize,
    pingInterval: config.pingIntervalMs,
    pingTimeout: config.pingTimeoutMs,
    adapter: redis
      ? createAdapter(redis.pub, redis.sub, {
          key: `${config.redisKeyPrefix}socket.io`,
          // Answers to fetchSockets (room-members) come on this replica's own channel, not to every replica.
          publishOnSpecificResponseChannel: true,
          requestsTimeout: ROOM_MEMBERS_TIMEOUT_MS,
        })
      : undefined,
  });
  const limits: HistoryLimits = {
    size: config.historySize,
    ttlS: config.historyTtlS,
    dedupeWindowS: config.dedupeWindowS,
  };
  const history: RoomLog = redis
    ? createRedisLog({
        commands: redis.pub,
        subscriber: redis.feed,
        keyPrefix: config.redisKeyPrefix,
        limits,
        commandTimeoutMs: config.redisCommandTimeoutMs,
        log,
      })
    : createMemoryLog(limits);
  const metrics = createMetrics({
    replicaId: config.replicaId,
    version: config.version,
    connections: () => io.engine.clientsCount,
    ready: isReady,
    redisConnected: redis ? () => redis.isReady() : undefined,
  });
  const httpServer = createServer(createHttpApp({ config, log, posts, isReady, io, metrics }));
  // Attached after Express so that Engine.IO answers /socket.io/ and hands every other request on.
  io.attach(httpServer);
  io.engine.generateId = generateRoutedId;
  io.engine.on("headers", (headers: Record<string, string>) => {
    headers["X-Replica-Id"] = config.replicaId;
  });
  releaseHandshakeRequests(io);
  io.engine.on("connection_error", (err: { code: number; message: string; req?: { url?: string } }) => {
    log.warn({ code: err.code, reason: err.message, url: err.req?.url }, "engine.io connection error");
  });

  const context = { io, replicaId: config.replicaId, log, metrics, history } as const;
  const feeds: RoomFeeds = new RoomFeeds(history, (entry, except) => deliver(entry, except), log);
  const app = { ...context, feeds };
  const deliver = deliverLocally(app);
  watchRoomFeeds(app);
  io.on("connection", createConnectionHandler(app));

  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      closing = true;
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
      await redis?.close();
      metrics.close();
      log.info("shut down");
    })();
    return closed;
  };

  return { httpServer, io, log, metrics, isReady, close };
}
