import { startRedisServer, type RedisServer, type RedisServerOptions } from "../../scripts/cluster/redis-server.js";
import { onCleanup } from "./server.js";

export { freeClusterPorts, freePort, freePortRun, freeRunnerPort } from "../../scripts/cluster/ports.js";
export type { RedisPersistence, RedisServer } from "../../scripts/cluster/redis-server.js";

/**
 * A real redis-server for a test: on a free port, on `port` (to restart one in place), or with options
 * (persistence, for tests that kill and restart it).
 */
export const startRedis = (opts: number | RedisServerOptions = {}): Promise<RedisServer> =>
  startRedisServer(typeof opts === "number" ? { port: opts } : opts);

/** A redis-server of the test's own, which the test may freeze (SIGSTOP): resumed, then stopped, at cleanup. */
export async function startFreezableRedis(): Promise<RedisServer> {
  const redis = await startRedis();
  onCleanup(() => redis.stop());
  // A SIGSTOP'd Redis must be resumed before stop() can end it (cleanups run last registered first).
  onCleanup(() => void redis.child.kill("SIGCONT"));
  return redis;
}
