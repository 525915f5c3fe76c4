import { Redis } from "ioredis";
import type { Logger } from "./logger.js";

export interface RedisConnections {
  /** Publishes adapter messages and serves commands (posts). */
  pub: Redis;
  /** Subscriber connection, owned by the adapter. */
  sub: Redis;
  isReady(): boolean;
  close(): Promise<void>;
}

function connect(url: string, role: string, log: Logger): Redis {
  const client = new Redis(url, {
    // Keep retrying forever with a capped backoff: a replica survives a Redis restart.
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    maxRetriesPerRequest: 2,
    lazyConnect: false,
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

export function connectRedis(url: string, log: Logger): RedisConnections {
  const pub = connect(url, "pub", log);
  const sub = connect(url, "sub", log);
  return {
    pub,
    sub,
    isReady: () => pub.status === "ready" && sub.status === "ready",
    async close() {
      await Promise.allSettled([pub.quit(), sub.quit()]);
      pub.disconnect();
      sub.disconnect();
    },
  };
}

/** Resolves once both connections are ready, rejects after timeoutMs. */
export function waitUntilReady(conns: RedisConnections, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      if (conns.isReady()) return resolve();
      if (Date.now() - started > timeoutMs) return reject(new Error(`redis not ready after ${timeoutMs} ms`));
      setTimeout(tick, 25);
    };
    tick();
  });
}
