import { Cluster, Redis, type ClusterOptions, type RedisOptions as ClientOptions } from "ioredis";
import type { RedisClusterConfig } from "./config.js";
import { APPEND_COMMAND } from "./history/redis-log.js";
import type { Logger } from "./logger.js";
import { enforceCommandDeadlines } from "./ops/command-deadlines.js";
import { observeSubscribes, trackPublishes, type PublishTracker } from "./ops/publish-tracker.js";

/** One Redis, or a Redis Cluster: the commands the app uses exist on both. */
export type RedisClient = Redis | Cluster;

/** Where Redis is: one server (REDIS_URL) or a cluster's seed nodes (REDIS_CLUSTER_NODES). */
export type RedisTarget = { url: string } | { cluster: RedisClusterConfig };

export interface RedisConnections {
  /** On a Redis Cluster, pub/sub is sharded (SSUBSCRIBE/SPUBLISH): a channel lives on its slot's shard. */
  cluster: boolean;
  /** Publishes adapter messages and serves commands (posts). */
  pub: RedisClient;
  /** Subscriber connection, owned by the adapter. */
  sub: RedisClient;
  /** Subscriber connection of the room feeds (one channel per room with local members). */
  feed: RedisClient;
  /** The publishes of one emit, to tell whether a broadcast left this replica (src/ops/publish-tracker.ts). */
  publishes: PublishTracker;
  isReady(): boolean;
  close(): Promise<void>;
}

export interface RedisOptions {
  /**
   * A command on the command connection without an answer after this long (at most a quarter more) fails: its
   * outcome is unknown to the caller.
   */
  commandTimeoutMs: number;
  /** Told of every failed publish (the adapter does not await them); logged one per failure without it. */
  onPublishFailed?(channel: string, err: Error): void;
}

type Role = "pub" | "sub" | "feed";

function clientOptions(role: Role): ClientOptions {
  return {
    // Keep reconnecting forever with a capped backoff: a replica survives a Redis restart.
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    // Subscriptions wait for the connection (and are renewed on reconnect); commands give up after a few
    // reconnection attempts rather than queueing without bound while Redis is away.
    maxRetriesPerRequest: role === "pub" ? 2 : null,
    // No per-command timer: the command connection's deadlines are enforced by src/ops/command-deadlines.ts.
    commandTimeout: undefined,
    // A command in flight when the connection drops has an unknown outcome: fail it (callers resend with
    // their idempotency key) rather than replay it into a Redis that may have restarted without its data.
    autoResendUnfulfilledCommands: role !== "pub",
    // Nor queue commands while disconnected: they would run on reconnect before the room log has checked
    // that Redis kept its writes. A command sent while Redis is away fails at once (STORE_UNAVAILABLE).
    enableOfflineQueue: role !== "pub",
    // Publishes issued in one tick (a burst of broadcasts) leave as one write, so Redis answers the
    // subscribers with one write too: each replica then handles the burst in one wake-up instead of many.
    enableAutoPipelining: role === "pub",
    // Except a room's append: one per message a client sends, each from its own socket read, so there is rarely
    // another in the same loop iteration to share a write with, and the pipeline built per command cost more client
    // CPU per append than it saved (bench/steps.ts, one append per tick).
    autoPipeliningIgnoredCommands: [APPEND_COMMAND],
  };
}

function connectCluster(cluster: RedisClusterConfig, role: Role): Cluster {
  const { retryStrategy, enableOfflineQueue, enableAutoPipelining, autoPipeliningIgnoredCommands, ...perNode } =
    clientOptions(role);
  const clusterOptions: ClusterOptions = {
    redisOptions: { ...perNode, password: cluster.password },
    clusterRetryStrategy: retryStrategy,
    enableOfflineQueue,
    enableAutoPipelining,
    autoPipeliningIgnoredCommands,
    // A subscriber keeps one connection per shard, each subscribed to the channels of its own slots, and
    // follows them when a replica is promoted or slots move.
    shardedSubscribers: role !== "pub",
    // During a failover the slot's master is gone until a replica is promoted (a few seconds with the default
    // cluster-node-timeout): retry a redirected or refused command on the refreshed slot map meanwhile.
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    // A lost node connection or a MOVED answer refreshes the slot map at once; the periodic refresh only
    // catches slot moves nothing else revealed. Each refresh opens a new connection for CLUSTER SLOTS and
    // compares the 16384 slots (with 2 s on three connections an idle replica spent 4 % of a core on it), so it
    // is rare, and only on the command connection: the shard canaries watch the subscribers.
    slotsRefreshInterval: role === "pub" ? 30_000 : 0,
  };
  return new Cluster(cluster.nodes, clusterOptions);
}

function connect(target: RedisTarget, role: Role, log: Logger): RedisClient {
  const client: RedisClient =
    "url" in target ? new Redis(target.url, clientOptions(role)) : connectCluster(target.cluster, role);
  let wasReady = false;
  client.on("ready", () => {
    wasReady = true;
    log.info({ role }, "redis connected");
  });
  client.on("error", (err: Error) => log.warn({ role, err: err.message }, "redis error"));
  client.on("end", () => {
    if (wasReady) log.info({ role }, "redis connection closed");
  });
  return client;
}

// QUIT lets pending replies arrive; a connection that is not up (or does not answer) is simply dropped.
async function quit(client: RedisClient): Promise<void> {
  if (client.status === "ready") {
    const timeout = new Promise((resolve) => setTimeout(resolve, 1000).unref());
    await Promise.race([client.quit().catch(() => undefined), timeout]);
  }
  client.disconnect();
}

export function connectRedis(target: RedisTarget, log: Logger, options: RedisOptions): RedisConnections {
  const pub = connect(target, "pub", log);
  const deadlines = enforceCommandDeadlines(pub, options.commandTimeoutMs);
  const publishes = trackPublishes(
    pub,
    options.onPublishFailed ??
      ((channel, err) => log.warn({ channel, err: err.message }, "redis publish failed: message not relayed")),
  );
  const sub = connect(target, "sub", log);
  observeSubscribes(sub, (command, err) => log.error({ command, err: err.message }, `redis ${command} failed`));
  const feed = connect(target, "feed", log);
  return {
    cluster: !("url" in target),
    pub,
    sub,
    feed,
    publishes,
    isReady: () => pub.status === "ready" && sub.status === "ready" && feed.status === "ready",
    async close() {
      deadlines.stop();
      await Promise.all([quit(pub), quit(sub), quit(feed)]);
    },
  };
}
