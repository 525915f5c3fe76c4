import { Redis } from "ioredis";
import type { Logger } from "./logger.js";
import { observeSubscribes, trackPublishes, type PublishTracker } from "./ops/publish-tracker.js";

export interface RedisConnections {
  /** Publishes adapter messages and serves commands (posts). */
  pub: Redis;
  /** Subscriber connection, owned by the adapter. */
  sub: Redis;
  /** Subscriber connection of the room feeds (one channel per room with local members). */
  feed: Redis;
  /** The publishes of one emit, to tell whether a broadcast left this replica (src/ops/publish-tracker.ts). */
  publishes: PublishTracker;
  isReady(): boolean;
  close(): Promise<void>;
}

export interface RedisOptions {
  /** A command without an answer after this long fails: its outcome is unknown to the caller. */
  commandTimeoutMs: number;
  /** Told of every failed publish (the adapter does not await them); logged one per failure without it. */
  onPublishFailed?(channel: string, err: Error): void;
}

function connect(url: string, role: "pub" | "sub" | "feed", log: Logger, options: RedisOptions): Redis {
  const client = new Redis(url, {
    // Keep reconnecting forever with a capped backoff: a replica survives a Redis restart.
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    // Subscriptions wait for the connection (and are renewed on reconnect); commands give up after a few
    // reconnection attempts rather than queueing without bound while Redis is away.
    maxRetriesPerRequest: role === "pub" ? 2 : null,
    commandTimeout: role === "pub" ? options.commandTimeoutMs : undefined,
    // A command in flight when the connection drops has an unknown outcome: fail it (callers resend with
    // their idempotency key) rather than replay it into a Redis that may have restarted without its data.
    autoResendUnfulfilledCommands: role !== "pub",
    // Nor queue commands while disconnected: they would run on reconnect before the room log has checked
    // that Redis kept its writes. A command sent while Redis is away fails at once (STORE_UNAVAILABLE).
    enableOfflineQueue: role !== "pub",
    // Publishes issued in one tick (a burst of broadcasts) leave as one write, so Redis answers the
    // subscribers with one write too: each replica then handles the burst in one wake-up instead of many.
    enableAutoPipelining: role === "pub",
  });
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
async function quit(client: Redis): Promise<void> {
  if (client.status === "ready") {
    const timeout = new Promise((resolve) => setTimeout(resolve, 1000).unref());
    await Promise.race([client.quit().catch(() => undefined), timeout]);
  }
  client.disconnect();
}

export function connectRedis(url: string, log: Logger, options: RedisOptions): RedisConnections {
  const pub = connect(url, "pub", log, options);
  const publishes = trackPublishes(
    pub,
    options.onPublishFailed ??
      ((channel, err) => log.warn({ channel, err: err.message }, "redis publish failed: message not relayed")),
  );
  const sub = connect(url, "sub", log, options);
  observeSubscribes(sub, (command, err) => log.error({ command, err: err.message }, `redis ${command} failed`));
  const feed = connect(url, "feed", log, options);
  return {
    pub,
    sub,
    feed,
    publishes,
    isReady: () => pub.status === "ready" && sub.status === "ready" && feed.status === "ready",
    async close() {
      await Promise.all([quit(pub), quit(sub), quit(feed)]);
    },
  };
}
