import { startRedisServer, type RedisServer } from "../../scripts/cluster/redis-server.js";

export { freePort, freePortRun } from "../../scripts/cluster/ports.js";
export type { RedisServer } from "../../scripts/cluster/redis-server.js";

/** A real redis-server for a test, on a free port or on `port` (to restart one in place). */
export const startRedis = (port?: number): Promise<RedisServer> => startRedisServer("ignore", "redis-server", port);
