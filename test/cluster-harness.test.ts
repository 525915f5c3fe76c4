import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  startProcessClusterOnFreePorts,
  waitForHttp,
  waitForExit,
  type ProcessCluster,
} from "../scripts/cluster/processes.js";
import { freeClusterPorts, freePort, startRedis } from "./support/redis.js";

// Not support/server.ts: that one loads src/, and these tests only drive processes.
async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const status = (url: string) => fetch(url).then((res) => res.status);

/** A value written and read back through a fresh connection, so no client-side reconnect logic is involved. */
async function withRedis<T>(url: string, use: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    return await use(client);
  } finally {
    client.disconnect();
  }
}

describe("process cluster: kill and restart in place", () => {
  let cluster: ProcessCluster;

  beforeAll(async () => {
    cluster = await startProcessClusterOnFreePorts({
      replicas: 2,
      logLevel: "warn",
      redisPersistence: "aof-everysec",
    });
  });
  afterAll(() => cluster?.stop());

  it("keeps a key across a SIGTERM and restart of Redis, and the replicas get ready again", async () => {
    const { redis } = cluster;
    expect(redis.persistence).toBe("aof-everysec");
    await withRedis(redis.url, (c) => c.set("harness:key", "kept"));
    const pid = redis.pid();

    await redis.kill("SIGTERM");
    expect(redis.pid()).toBeUndefined();
    await until(
      async () => (await status(`${cluster.replicaUrls[0]}/readyz`)) === 503,
      5000,
      "not ready without redis",
    );

    await redis.restart();
    expect(redis.pid()).toBeGreaterThan(0);
    expect(redis.pid()).not.toBe(pid);
    expect(await withRedis(redis.url, (c) => c.get("harness:key"))).toBe("kept");
    for (const url of cluster.replicaUrls)
      await until(async () => (await status(`${url}/readyz`)) === 200, 10_000, `${url} ready again`);
  });

  it("SIGKILLs a replica and restarts it on the same port with the same id", async () => {
    const readyz = `${cluster.replicaUrls[0]}/readyz`;
    const pid = cluster.replicaPid(0);
    expect(pid).toBeGreaterThan(0);

    await cluster.killReplica(0, "SIGKILL");
    expect(cluster.replicaPid(0)).toBeUndefined();
    await expect(fetch(readyz)).rejects.toThrow();
    expect(cluster.processCount()).toBe(3);

    await cluster.restartReplica(0);
    expect(cluster.replicaPid(0)).not.toBe(pid);
    const res = await fetch(`${cluster.replicaUrls[0]}/api/info`);
    expect(res.headers.get("x-replica-id")).toBe("replica-1");
    expect(((await res.json()) as { replica: string }).replica).toBe("replica-1");
    expect(cluster.processCount()).toBe(4);
    // nginx's static upstream still reaches the cluster.
    expect(await status(`${cluster.url}/healthz`)).toBe(200);
  });

  it("restarts a replica during a Redis outage (until: listening), and both recover with Redis", async () => {
    const readyz = `${cluster.replicaUrls[1]}/readyz`;
    await cluster.redis.kill("SIGKILL");
    await cluster.restartReplica(1, { until: "listening", timeoutMs: 10_000 });
    expect(await status(readyz)).toBe(503);

    await cluster.redis.restart();
    for (const url of cluster.replicaUrls)
      await until(async () => (await status(`${url}/readyz`)) === 200, 10_000, `${url} ready again`);
    expect(cluster.processCount()).toBe(4);
  });
});

describe("redis-server persistence modes", () => {
  it("aof-always keeps an acknowledged write through SIGKILL", async () => {
    const redis = await startRedis({ persistence: "aof-always" });
    try {
      await withRedis(redis.url, (c) => c.set("k", "v"));
      await redis.kill("SIGKILL");
      await redis.restart();
      expect(await withRedis(redis.url, (c) => c.get("k"))).toBe("v");
    } finally {
      await redis.stop();
    }
  });

  it("none starts empty after a restart, and is the default", async () => {
    const redis = await startRedis();
    try {
      expect(redis.persistence).toBe("none");
      expect(redis.dir).toBeUndefined();
      await withRedis(redis.url, (c) => c.set("k", "v"));
      await redis.kill("SIGTERM");
      await redis.restart();
      expect(await withRedis(redis.url, (c) => c.get("k"))).toBeNull();
      expect(await withRedis(redis.url, (c) => c.config("GET", "maxmemory-policy"))).toEqual([
        "maxmemory-policy",
        "noeviction",
      ]);
    } finally {
      await redis.stop();
    }
  });
});

describe("startProcessClusterOnFreePorts", () => {
  it("starts again on other ports when a port found free is taken before a replica binds it", async () => {
    const foreign: Server = createServer((_req, res) => res.end("someone else"));
    const stolen = await freeClusterPorts(1);
    await new Promise<void>((resolve) => foreign.listen(stolen.replicaPorts[0], "127.0.0.1", resolve));
    const offered: number[] = [];
    // The first ports offered include the one just taken, as a parallel test's server would take it.
    const choose = async (replicas: number) => {
      const ports = offered.length === 0 ? stolen : await freeClusterPorts(replicas);
      offered.push(ports.port);
      return ports;
    };
    try {
      const cluster = await startProcessClusterOnFreePorts({ replicas: 1, logLevel: "warn" }, choose);
      try {
        expect(offered).toHaveLength(2);
        expect(cluster.url).not.toContain(`:${stolen.port}`);
        expect((await fetch(`${cluster.url}/`)).status).toBe(200);
      } finally {
        await cluster.stop();
      }
    } finally {
      foreign.close();
    }
  });
});

describe("waitForHttp", () => {
  it("fails, naming the port, when another server answers where the replica should be", async () => {
    const foreign: Server = createServer((_req, res) => res.end("someone else"));
    const port = await freePort();
    await new Promise<void>((resolve) => foreign.listen(port, "127.0.0.1", resolve));
    // Stands in for the replica that would die on EADDRINUSE a moment later.
    const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 10000)"], { stdio: "ignore" });
    try {
      await expect(
        waitForHttp(`http://127.0.0.1:${port}/readyz`, "replica-1", child, 5000, { replicaId: "replica-1" }),
      ).rejects.toThrow(`port ${port} is taken by another process`);
    } finally {
      child.kill("SIGKILL");
      await waitForExit(child, 5000);
      await new Promise((resolve) => foreign.close(resolve));
    }
  });
});
