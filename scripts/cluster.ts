/**
 * `npm run cluster`: Redis (CLUSTER_REDIS=cluster: a Redis Cluster of 3 masters and 3 replicas), CLUSTER_REPLICAS replicas (default 3) on PORT+1…PORT+N (their metrics on
 * PORT+1001…PORT+1000+N) and nginx on PORT (default 5000), in the foreground. Ctrl-C / SIGTERM stops every
 * child. When a port is taken or a child dies while starting, it says which and exits 1 instead of announcing a
 * cluster that is not ours.
 */
import { ConfigError, integer } from "../src/config.js";
import { startProcessCluster } from "./cluster/processes.js";

function positiveInt(name: string, fallback: number, max: number): number {
  try {
    return integer(process.env, name, fallback, 1, max);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`config error: ${err.message}\n`);
    process.exit(2);
  }
}

const port = positiveInt("PORT", 5000, 65_000);
const replicas = positiveInt("CLUSTER_REPLICAS", 3, 32);

const redisMode = process.env.CLUSTER_REDIS || "single";
if (redisMode !== "single" && redisMode !== "cluster") {
  process.stderr.write(`config error: invalid CLUSTER_REDIS: expected single or cluster, got "${redisMode}"\n`);
  process.exit(2);
}

// `npm run cluster` builds first and sets CLUSTER_RUNTIME=dist: replicas run the compiled JavaScript, as in
// production. Run directly (tsx scripts/cluster.ts), they go through the TypeScript loader.
const runtime = process.env.CLUSTER_RUNTIME || "tsx";
if (runtime !== "tsx" && runtime !== "dist") {
  process.stderr.write(`config error: invalid CLUSTER_RUNTIME: expected tsx or dist, got "${runtime}"\n`);
  process.exit(2);
}

const cluster = await startProcessCluster({ port, replicas, stdio: "inherit", redisMode, runtime }).catch(
  (err: Error) => {
    process.stderr.write(`cluster failed to start: ${err.message}\n`);
    process.exit(1);
  },
);
const replicaPorts = cluster.replicaUrls.map((u) => new URL(u).port).join(", ");
const metricsPorts = cluster.metricsUrls.map((u) => new URL(u).port).join(", ");
const redisNodes = cluster.redisCluster ? `; redis cluster: ${cluster.redisCluster.seeds}` : "";
console.log(`cluster ready at ${cluster.url} (replicas: ${replicaPorts}; metrics: ${metricsPorts}${redisNodes})`);

let stopping = false;
const stop = (signal: string) => {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: stopping the cluster`);
  cluster.stop().then(() => process.exit(0));
};
process.on("SIGINT", () => stop("SIGINT"));
process.on("SIGTERM", () => stop("SIGTERM"));
