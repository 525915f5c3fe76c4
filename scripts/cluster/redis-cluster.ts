import { spawnSync, type StdioOptions } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { pollUntil } from "./poll.js";
import { canBind, freePort } from "./ports.js";
import { startRedisServer, type KillSignal, type RedisServer } from "./redis-server.js";

export interface RedisClusterOptions {
  /** Masters (each owns a third of the slots with 3); 3 by default, the fewest a Redis Cluster accepts. */
  masters?: number;
  /** Replicas per master; 1 by default. */
  replicasPerMaster?: number;
  stdio?: StdioOptions;
  bin?: string;
  /**
   * cluster-node-timeout: how long a master may be unreachable before its replica takes over. Redis's default is
   * 15 s; 2 s here so that a failover in a test or on a laptop takes seconds.
   */
  nodeTimeoutMs?: number;
}

export interface RedisClusterNode {
  port: number;
  /** The running redis-server's pid; undefined while it is down. */
  pid(): number | undefined;
  kill(signal: KillSignal): Promise<void>;
  /** Starts it again on the same port and node identity (nodes.conf): it rejoins the cluster as a replica. */
  restart(): Promise<void>;
  /** Runs one command on this node (e.g. CLIENT KILL TYPE replica). */
  command(...args: string[]): Promise<unknown>;
  /** SIGSTOP / SIGCONT: a frozen replica falls behind its master without the cluster noticing (for a while). */
  freeze(): void;
  thaw(): void;
}

export interface LocalRedisCluster {
  nodes: RedisClusterNode[];
  /** REDIS_CLUSTER_NODES for the replicas: every node, comma-separated. */
  seeds: string;
  /** A replica of `master` whose link to it is up. */
  replicaOf(master: RedisClusterNode): Promise<RedisClusterNode>;
  /** The node serving `key`'s slot as master now (asked of the cluster, so it follows failovers). */
  masterOf(key: string): Promise<RedisClusterNode>;
  /** Resolves when every slot is served, every node agrees on who serves it and every replica is in sync. */
  settled(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A Redis Cluster of Debian's redis-server on loopback ports: `masters` masters with `replicasPerMaster` replicas
 * each, formed with `redis-cli --cluster create`, memory only. Used by `CLUSTER_REDIS=cluster npm run cluster`,
 * the cross-replica suite and the failover test.
 */
export async function startRedisCluster(opts: RedisClusterOptions = {}): Promise<LocalRedisCluster> {
  const masters = opts.masters ?? 3;
  const perMaster = opts.replicasPerMaster ?? 1;
  const count = masters * (1 + perMaster);
  const dir = mkdtempSync(join(tmpdir(), "rt-redis-cluster-"));
  const servers: RedisServer[] = [];
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < count; i++) {
      const port = await busFreePort();
      const nodeDir = join(dir, String(port));
      mkdirSync(nodeDir);
      const server = await startRedisServer({
        stdio: opts.stdio,
        bin: opts.bin,
        port,
        extraArgs: [
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          "nodes.conf",
          "--cluster-node-timeout",
          String(opts.nodeTimeoutMs ?? 2000),
          "--dir",
          nodeDir,
        ],
      });
      servers.push(server);
    }
    const addresses = servers.map((s) => `127.0.0.1:${s.port}`);
    const created = spawnSync(
      "redis-cli",
      ["--cluster", "create", ...addresses, "--cluster-replicas", String(perMaster), "--cluster-yes"],
      { encoding: "utf8", timeout: 30_000 },
    );
    if (created.status !== 0) {
      throw new Error(`redis-cli --cluster create failed (${created.status}): ${created.stderr || created.stdout}`);
    }
    const cluster: LocalRedisCluster = {
      nodes: servers.map((s) => ({
        port: s.port,
        pid: () => (s.running() ? s.child.pid : undefined),
        kill: (signal) => s.kill(signal),
        restart: () => s.restart(),
        command: (...args) => ask([s], (client) => client.call(args[0] as string, ...args.slice(1))),
        freeze: () => void (s.running() && process.kill(s.child.pid as number, "SIGSTOP")),
        thaw: () => void (s.running() && process.kill(s.child.pid as number, "SIGCONT")),
      })),
      seeds: addresses.join(","),
      async masterOf(key) {
        const port = await ask(servers, async (client) => {
          const slot = Number(await client.call("CLUSTER", "KEYSLOT", key));
          const shards = (await client.call("CLUSTER", "SLOTS")) as Array<[number, number, [string, number]]>;
          const shard = shards.find(([from, to]) => from <= slot && slot <= to);
          if (!shard) throw new Error(`slot ${slot} is not served`);
          return shard[2][1];
        });
        const node = cluster.nodes.find((n) => n.port === port);
        if (!node) throw new Error(`slot of ${key} served by unknown port ${port}`);
        return node;
      },
      async replicaOf(master) {
        for (const node of cluster.nodes) {
          if (node === master || node.pid() === undefined) continue;
          const server = servers.find((x) => x.port === node.port) as RedisServer;
          const replication = await ask([server], (client) => client.info("replication")).catch(() => "");
          if (replication.includes(`master_port:${master.port}`) && /master_link_status:up/.test(replication))
            return node;
        }
        throw new Error(`no replica of ${master.port} is linked to it`);
      },
      settled: (timeoutMs = 20_000) => settled(servers, timeoutMs),
      stop,
    };
    await cluster.settled();
    return cluster;
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A cluster node also listens on port + 10000 (the cluster bus): both must be free. */
async function busFreePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await freePort();
    if (port + 10_000 <= 65_535 && (await canBind(port + 10_000))) return port;
  }
  throw new Error("no free port whose cluster bus port (+10000) is free too");
}

/** Runs `question` against the first live node that answers it. */
async function ask<T>(servers: RedisServer[], question: (client: Redis) => Promise<T>): Promise<T> {
  let last: unknown = new Error("no node is running");
  for (const server of servers.filter((s) => s.running())) {
    const client = new Redis(server.port, "127.0.0.1", { lazyConnect: true, retryStrategy: () => null });
    client.on("error", () => undefined);
    try {
      await client.connect();
      return await question(client);
    } catch (err) {
      last = err;
    } finally {
      client.disconnect();
    }
  }
  throw last;
}

/**
 * Every live node sees the cluster ok with the same masters for the same slots, and every live replica's link to
 * its master is up (a replica still loading its copy would not be promoted).
 */
async function settled(servers: RedisServer[], timeoutMs: number): Promise<void> {
  let state = "not asked yet";
  await pollUntil(
    async () => {
      const views = new Set<string>();
      for (const server of servers.filter((s) => s.running())) {
        const answer = await ask([server], async (client) => {
          const info = String(await client.call("CLUSTER", "INFO"));
          if (!/cluster_state:ok/.test(info)) return `node ${server.port}: ${/cluster_state:\w+/.exec(info)?.[0]}`;
          const replication = await client.info("replication");
          if (/role:slave/.test(replication) && !/master_link_status:up/.test(replication))
            return `replica ${server.port}: link to its master not up`;
          const slots = (await client.call("CLUSTER", "SLOTS")) as Array<[number, number, [string, number]]>;
          views.add(
            slots
              .map(([from, to, [, port]]) => `${from}-${to}@${port}`)
              .sort()
              .join(" "),
          );
          return "";
        }).catch((err: Error) => `node ${server.port}: ${err.message}`);
        if (answer !== "") {
          state = answer;
          return undefined;
        }
      }
      if (views.size !== 1) {
        state = `nodes disagree on the slot map: ${[...views].join(" | ")}`;
        return undefined;
      }
      return true;
    },
    {
      timeoutMs,
      intervalMs: 200,
      onTimeout: () => {
        throw new Error(`redis cluster not settled within ${timeoutMs} ms: ${state}`);
      },
    },
  );
}
