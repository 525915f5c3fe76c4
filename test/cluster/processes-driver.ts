import { startProcessClusterOnFreePorts } from "../../scripts/cluster/processes.js";
import type { ClusterDriver } from "./driver.js";
import { ADMIN_UI_ENV } from "./fixtures/admin-ui.js";

export const processesDriver: ClusterDriver = {
  name: "processes",
  async start(replicas) {
    // CLUSTER_REDIS=cluster: the same suite on a Redis Cluster (sharded pub/sub) instead of one Redis.
    const redisMode = process.env.CLUSTER_REDIS === "cluster" ? "cluster" : "single";
    const cluster = await startProcessClusterOnFreePorts({
      replicas,
      logLevel: "warn",
      env: ADMIN_UI_ENV,
      redisMode,
    });
    return {
      url: cluster.url,
      replicaUrls: cluster.replicaUrls,
      metricsUrls: cluster.metricsUrls,
      replicaIds: cluster.replicaIds,
      describe: () =>
        `${cluster.processCount()} processes (${redisMode === "cluster" ? "a 6-node Redis Cluster" : "redis-server"}, ${replicas} replicas, nginx)`,
      stopReplica: (i) => cluster.stopReplica(i),
      stop: () => cluster.stop(),
    };
  },
};
