export { freePort, startRedisServer as startRedis, type RedisServer } from "../../scripts/cluster/redis-server.js";
