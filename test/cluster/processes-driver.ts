import { startProcessCluster } from "../../scripts/cluster/processes.js";
import { freePort } from "../../scripts/cluster/ports.js";
import type { ClusterDriver } from "./driver.js";
import { ADMIN_UI_ENV } from "./fixtures/admin-ui.js";

export const processesDriver: ClusterDriver = {
  name: "processes",
  async start(replicas) {
    const port = await freePort();
    const replicaPorts: number[] = [];
    while (replicaPorts.length < replicas) {
      const candidate = await freePort();
      if (candidate !== port && !replicaPorts.includes(candidate)) replicaPorts.push(candidate);
    }
    // CLUSTER_REDIS=cluster: the same suite on a Redis Cluster (sharded pub/sub) instead of one Redis.
    const redisMode = process.env.CLUSTER_REDIS === "cluster" ? "cluster" : "single";
    const cluster = await startProcessCluster({
      port,
      replicas,
      replicaPorts,
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
