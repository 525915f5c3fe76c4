/** One way of starting the cluster topology (redis + N replicas + nginx) for the cross-replica suite. */
export interface ClusterDriver {
  name: "containers" | "processes";
  start(replicas: number): Promise<RunningCluster>;
}

export interface RunningCluster {
  /** The load balancer (nginx). */
  url: string;
  /** Each replica directly, by index. */
  replicaUrls: string[];
  /** Each replica's metrics listener (METRICS_PORT), by index. */
  metricsUrls: string[];
  /** Each replica's REPLICA_ID, by index. */
  replicaIds: string[];
  /** What runs, for the log: e.g. "5 processes" or "5 containers". */
  describe(): string;
  stopReplica(index: number): Promise<void>;
  stop(): Promise<void>;
}
