/**
 * `npm run bench:capacity [-- --quick]`: connection capacity through nginx, on this machine, over 127.0.0.1 only.
 *
 * 1. Starts the cluster the way `npm run cluster` does (scripts/cluster/processes.ts: Redis, 3 replicas, nginx from
 *    nginx/nginx.conf; ports 7100…, or free ones when taken), with the per-replica connection limit raised for the
 *    test (one client IP opens every connection).
 * 2. Opens N socket.io-client websocket connections through nginx (default 10,000; --quick 1,500) from several
 *    client processes (each holds one file descriptor per socket, and the hard limit may be low), and checks that
 *    every one is connected, where (`server-info`), and that the replicas count the same (`realtime_connections`).
 * 3. One `broadcast` from a client on each replica; every one of the N clients must receive all three.
 * 4. Memory per idle connection on each replica (RSS and, after forced GCs, V8 heap: bench/capacity-probe.ts), and the
 *    same for a single replica without nginx at N connections (--no-single to skip; off with --quick) and for raw `ws`
 *    (bench/servers/raw-ws.ts) at N/3 and N connections (--no-raw to skip).
 * 5. CPU of the replicas, the nginx workers and Redis (schedstat; every node with --redis=cluster): per connect, per heartbeat (an idle window of one
 *    ping interval, full runs only) and per broadcast delivery; docs/scaling.md builds on these.
 *
 * --redis=cluster runs the replicas on a Redis Cluster (3 masters, 3 replicas: scripts/cluster/redis-cluster.ts).
 *
 * Bounded: at most 15,000 connections, 127.0.0.1 only, and a deadline (--timeout-s, 300 s; --quick 55 s) after
 * which everything started here is stopped and the run fails. Prints a summary and writes
 * bench/results/capacity.json (--out=<file> elsewhere). Exit code 1 when a check fails.
 */
import { fork, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { io, type Socket } from "socket.io-client";
import { WebSocket } from "ws";
import { pollUntil } from "../scripts/cluster/poll.js";
import { freeClusterPorts, freePort, takenPorts } from "../scripts/cluster/ports.js";
import {
  spawnReplica,
  startProcessCluster,
  waitForExit,
  waitForHttp,
  type ProcessCluster,
} from "../scripts/cluster/processes.js";
import { arg, cpuNanoseconds, intArg, rssBytes } from "./proc.js";

const ROOT = new URL("../", import.meta.url).pathname;
const SELF = fileURLToPath(import.meta.url);
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------------------------
// Client process (`--worker`): holds its share of the connections, driven over IPC.

type Mode = "sio" | "raw";
type WorkerCommand =
  | { cmd: "connect"; mode: Mode; url: string; count: number; concurrency: number; timeoutMs: number }
  | { cmd: "send"; token: string; replica: string }
  | { cmd: "received"; token: string }
  | { cmd: "status" }
  | { cmd: "close" };

interface ConnectReport {
  ev: "connected";
  opened: number;
  failed: number;
  errors: Record<string, number>;
  byReplica: Record<string, number>;
}
interface ReceivedReport {
  ev: "received";
  count: number;
  byReplica: Record<string, number>;
  last: number;
}
interface StatusReport {
  ev: "status";
  open: number;
  dropped: number;
  reasons: Record<string, number>;
}

function runWorker(): void {
  interface Client {
    sio?: Socket;
    ws?: WebSocket;
    replica: string;
  }
  const clients: Client[] = [];
  const received = new Map<string, { count: number; byReplica: Record<string, number>; last: number }>();
  const reasons: Record<string, number> = {};
  let dropped = 0;
  let closing = false;
  const bump = (counts: Record<string, number>, key: string) => (counts[key] = (counts[key] ?? 0) + 1);
  const reply = (message: object) => process.send?.(message);
  process.on("disconnect", () => process.exit(0));

  const onBroadcast = (client: Client, payload: { message?: unknown }) => {
    const token = payload?.message;
    if (typeof token !== "string" || !token.startsWith("capacity-")) return;
    let entry = received.get(token);
    if (!entry) received.set(token, (entry = { count: 0, byReplica: {}, last: 0 }));
    entry.count++;
    bump(entry.byReplica, client.replica);
    entry.last = now();
  };

  const describe = (err: unknown): string => {
    const e = err as { message?: string; description?: { message?: string } | number };
    const detail = typeof e?.description === "object" ? e.description?.message : e?.description;
    return `${e?.message ?? String(err)}${detail ? `: ${detail}` : ""}`.slice(0, 160);
  };

  const openSio = (url: string, timeoutMs: number) =>
    new Promise<Client>((resolve, reject) => {
      const socket = io(url, { transports: ["websocket"], reconnection: false, forceNew: true, timeout: timeoutMs });
      const client: Client = { sio: socket, replica: "?" };
      const fail = (err: unknown) => {
        socket.close();
        reject(new Error(describe(err)));
      };
      socket.once("connect_error", fail);
      socket.on("broadcast-message", (payload: { message?: unknown }) => onBroadcast(client, payload));
      socket.on("disconnect", (reason: string) => {
        if (closing) return;
        dropped++;
        bump(reasons, reason);
      });
      socket.once("connect", () => {
        socket.off("connect_error", fail);
        socket
          .timeout(timeoutMs)
          .emit("server-info", (err: Error | null, info?: { ok?: boolean; replica?: string }) => {
            if (err || info?.ok !== true) return fail(err ?? new Error(`server-info: ${JSON.stringify(info)}`));
            client.replica = String(info.replica);
            resolve(client);
          });
      });
    });

  const openRaw = (url: string, timeoutMs: number) =>
    new Promise<Client>((resolve, reject) => {
      const ws = new WebSocket(url.replace(/^http/, "ws"), { perMessageDeflate: false });
      const timer = setTimeout(() => (ws.terminate(), reject(new Error("raw ws: no open in time"))), timeoutMs);
      ws.once("error", (err) => (clearTimeout(timer), reject(new Error(describe(err)))));
      ws.once("open", () => (clearTimeout(timer), resolve({ ws, replica: "raw-ws" })));
      ws.once("close", () => {
        if (closing) return;
        dropped++;
        bump(reasons, "raw close");
      });
    });

  process.on("message", async (command: WorkerCommand) => {
    try {
      if (command.cmd === "connect") {
        closing = false;
        const { count, concurrency, timeoutMs, url, mode } = command;
        const errors: Record<string, number> = {};
        const byReplica: Record<string, number> = {};
        let started = 0;
        let failed = 0;
        let opened = 0;
        const lane = async () => {
          while (started < count) {
            started++;
            try {
              const client = await (mode === "sio" ? openSio(url, timeoutMs) : openRaw(url, timeoutMs));
              clients.push(client);
              bump(byReplica, client.replica);
              opened++;
            } catch (err) {
              failed++;
              bump(errors, (err as Error).message);
            }
          }
        };
        await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
        reply({ ev: "connected", opened, failed, errors, byReplica } satisfies ConnectReport);
      } else if (command.cmd === "send") {
        const client = clients.find((c) => c.sio?.connected && c.replica === command.replica);
        if (!client?.sio) return reply({ ev: "sent", ok: false });
        const ack = await client.sio.timeout(10_000).emitWithAck("broadcast", command.token);
        reply({ ev: "sent", ok: true, ack });
      } else if (command.cmd === "received") {
        const entry = received.get(command.token) ?? { count: 0, byReplica: {}, last: 0 };
        reply({ ev: "received", ...entry } satisfies ReceivedReport);
      } else if (command.cmd === "status") {
        const open = clients.filter((c) => (c.sio ? c.sio.connected : c.ws?.readyState === WebSocket.OPEN)).length;
        reply({ ev: "status", open, dropped, reasons } satisfies StatusReport);
      } else if (command.cmd === "close") {
        closing = true;
        for (const c of clients.splice(0)) {
          c.sio?.close();
          c.ws?.terminate();
        }
        received.clear();
        dropped = 0;
        for (const key of Object.keys(reasons)) delete reasons[key];
        reply({ ev: "closed" });
      }
    } catch (err) {
      reply({ ev: "error", message: (err as Error).message });
    }
  });
  reply({ ev: "ready" });
}

// ---------------------------------------------------------------------------------------------------------------
// Orchestrator.

interface ClientProcess {
  child: ChildProcess;
  ask<T>(command: WorkerCommand, expect: string, timeoutMs?: number): Promise<T>;
}

function startClientProcess(): Promise<ClientProcess> {
  const child = fork(SELF, ["--worker"], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const ask = <T>(command: WorkerCommand, expect: string, timeoutMs = 120_000) =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => finish(new Error(`client process: no ${expect} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const onExit = () => finish(new Error(`client process ${child.pid} exited`));
      const onMessage = (msg: { ev: string; message?: string }) => {
        if (msg.ev === "error") finish(new Error(msg.message));
        else if (msg.ev === expect) finish(undefined, msg as T);
      };
      const finish = (err: Error | undefined, value?: T) => {
        clearTimeout(timer);
        child.off("message", onMessage);
        child.off("exit", onExit);
        if (err) reject(err);
        else resolve(value as T);
      };
      child.on("message", onMessage);
      child.once("exit", onExit);
      child.send(command);
    });
  return new Promise((resolve, reject) => {
    child.once("message", () => resolve({ child, ask }));
    child.once("exit", (code) => reject(new Error(`client process exited with ${code} while starting`)));
  });
}

/** The soft open-file limit of this process (Node raises it to the hard limit at start; children inherit it). */
function openFileLimits(): { soft: number; hard: number } {
  const line = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
  const num = (v: string | undefined) => (v === "unlimited" || v === undefined ? Infinity : Number(v));
  return { soft: num(line?.[1]), hard: num(line?.[2]) };
}

/** pids whose parent is `ppid` and whose command is `comm`, from /proc. */
function childrenOf(ppid: number, comm: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (parent === ppid && name === comm) pids.push(Number(entry));
    } catch {
      // gone in between
    }
  }
  return pids;
}

const fdCount = (pid: number): number => {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
};

function nginxSettings() {
  const conf = readFileSync(`${ROOT}nginx/nginx.conf`, "utf8");
  const value = (name: string) => Number(new RegExp(`^\\s*${name}\\s+(\\d+);`, "m").exec(conf)?.[1] ?? NaN);
  const version = spawnSync("nginx", ["-v"], { encoding: "utf8" })
    .stderr?.trim()
    .replace(/^nginx version: /, "");
  return {
    version,
    workerConnections: value("worker_connections"),
    workerRlimitNofile: value("worker_rlimit_nofile"),
  };
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
const COMPONENTS = ["replicas", "nginx", "redis"] as const;
type Component = (typeof COMPONENTS)[number];
const perComponent = (values: Record<Component, number>, f: (v: number) => number) =>
  Object.fromEntries(COMPONENTS.map((k) => [k, f(values[k])])) as Record<Component, number>;
const kib = (bytes: number) => bytes / 1024;
const fmt = (v: number, digits = 2) => (Number.isFinite(v) ? v.toFixed(digits) : "–");

interface MemoryReading {
  rssBefore: number;
  heapBefore: number;
  /** RSS after the settle time, no forced GC: the `npm run bench` figure. */
  rssIdle: number;
  heapAfter: number;
  rssAfterGc: number;
}
interface PerConnection {
  connections: number;
  rssIdleKiB: number;
  rssAfterGcKiB: number;
  heapKiB: number;
}
const perConnection = (m: MemoryReading, connections: number): PerConnection => ({
  connections,
  rssIdleKiB: kib(m.rssIdle - m.rssBefore) / connections,
  rssAfterGcKiB: kib(m.rssAfterGc - m.rssBefore) / connections,
  heapKiB: kib(m.heapAfter - m.heapBefore) / connections,
});

// Everything main() starts registers its stop here; run on success, failure, deadline and Ctrl-C.
const cleanups: Array<() => Promise<unknown>> = [];
let cleaning: Promise<void> | undefined;
const cleanup = () =>
  (cleaning ??= (async () => {
    for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
  })());

async function main(): Promise<void> {
  const quick = process.argv.includes("--quick");
  const N = intArg("connections", quick ? 1500 : 10_000, 3, 15_000);
  const REPLICAS = 3;
  const CONCURRENCY = intArg("concurrency", 50, 1, 1000);
  const DEADLINE_S = intArg("timeout-s", quick ? 55 : 300, 10, 1800);
  const BASE_PORT = intArg("port", 7100, 1025, 60_000);
  const SETTLE_MS = quick ? 1500 : 3000;
  // CPU of the idle connections: Socket.IO's heartbeat (a ping and its pong) every PING_INTERVAL_MS (25 s by
  // default) per connection, counted from its connect. The window starts seconds after the last connect and lasts
  // one interval plus a second, so it sees one heartbeat per connection. Skipped with --quick (under a minute).
  const PING_INTERVAL_MS = Number(process.env.PING_INTERVAL_MS ?? 25_000);
  const IDLE_MS = quick ? 0 : PING_INTERVAL_MS + 1000;
  const CONNECT_TIMEOUT_MS = 20_000;
  const withRaw = !process.argv.includes("--no-raw");
  // --redis=cluster: a Redis Cluster of 3 masters and 3 replicas (sharded pub/sub) instead of one redis-server.
  const REDIS_MODE = (arg("redis") ?? "single") as "single" | "cluster";
  if (REDIS_MODE !== "single" && REDIS_MODE !== "cluster")
    throw new Error(`--redis: single or cluster, not "${REDIS_MODE}"`);
  const withSingle = !quick && !process.argv.includes("--no-single");
  const out = arg("out") ?? `${ROOT}bench/results/capacity.json`;

  const limits = openFileLimits();
  // Each client process holds one descriptor per socket plus its own (tsx, IPC, stdio): stay well under the limit.
  const perProcessCap = Math.min(intArg("per-process", 2500, 100, 15_000), limits.soft - 500);
  const clientProcesses = Math.max(1, Math.ceil(N / perProcessCap));
  const portRange = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
  const nginx = nginxSettings();
  const started = Date.now();
  const failures: string[] = [];
  const check = (ok: boolean, what: string) => {
    if (!ok) failures.push(what);
    return ok;
  };

  console.log(
    `capacity: ${N} websocket connections through nginx to ${REPLICAS} replicas (${quick ? "quick" : "full"} run), ` +
      `${clientProcesses} client processes, Redis ${REDIS_MODE}; open files soft/hard ${limits.soft}/${limits.hard}; ` +
      `nginx ${nginx.version}: worker_connections ${nginx.workerConnections}, ` +
      `worker_rlimit_nofile ${nginx.workerRlimitNofile}; ip_local_port_range ${portRange.join("-")}`,
  );

  const abort = (why: string, code: number) => {
    console.error(`capacity: ${why}; stopping everything`);
    void cleanup().finally(() => process.exit(code));
  };
  const deadline = setTimeout(() => abort(`deadline of ${DEADLINE_S} s exceeded`, 1), DEADLINE_S * 1000);
  deadline.unref();
  process.once("SIGINT", () => abort("interrupted", 130)).once("SIGTERM", () => abort("terminated", 143));

  const probeDir = mkdtempSync(join(tmpdir(), "rt-capacity-"));
  cleanups.push(async () => rmSync(probeDir, { recursive: true, force: true }));
  const probeEnv = {
    NODE_OPTIONS: [
      process.env.NODE_OPTIONS,
      "--expose-gc",
      `--import=${pathToFileURL(`${ROOT}bench/capacity-probe.ts`).href}`,
    ]
      .filter(Boolean)
      .join(" "),
    CAPACITY_PROBE_DIR: probeDir,
  };
  const replicaEnv = {
    ...probeEnv,
    // One client IP opens every connection: the per-replica session limit (default 20,000) is set from N so the
    // test does not depend on the default, and nginx's per-IP limits stay off (limits.conf, the default).
    MAX_CONNECTIONS: String(N + 100),
  };

  /** Heap after two forced GCs in a replica that loaded bench/capacity-probe.ts; NaN without the probe. */
  const replicaHeap = async (pid: number): Promise<number> => {
    const file = join(probeDir, `${pid}.json`);
    if (!existsSync(file)) return NaN;
    const read = () => JSON.parse(readFileSync(file, "utf8")) as { seq: number; heapUsed: number };
    const before = read().seq;
    process.kill(pid, "SIGUSR2");
    return pollUntil(
      () => {
        try {
          const now = read();
          return now.seq > before ? now.heapUsed : undefined;
        } catch {
          return undefined;
        }
      },
      { timeoutMs: 15_000, intervalMs: 50, onTimeout: () => NaN },
    );
  };
  const before = async (pid: number, heap: (pid: number) => Promise<number>) => {
    const heapBefore = await heap(pid);
    await sleep(500);
    return { heapBefore, rssBefore: rssBytes(pid) };
  };
  const after = async (pid: number, heap: (pid: number) => Promise<number>) => {
    const rssIdle = rssBytes(pid);
    const heapAfter = await heap(pid);
    await sleep(500);
    return { rssIdle, heapAfter, rssAfterGc: rssBytes(pid) };
  };

  // The client processes, shared by every phase.
  const clients = await Promise.all(Array.from({ length: clientProcesses }, startClientProcess));
  cleanups.push(() =>
    Promise.all(clients.map((c) => (c.child.kill("SIGTERM"), waitForExit(c.child, 5_000)))).then(() => undefined),
  );
  const shares = clients.map((_, i) => Math.floor(N / clientProcesses) + (i < N % clientProcesses ? 1 : 0));

  /** Opens `counts[i]` connections from client process i to `url`; resolves with the merged reports and the time. */
  const connect = async (url: string, mode: Mode, counts: number[]) => {
    const t0 = performance.now();
    const reports = await Promise.all(
      clients.map((c, i) =>
        c.ask<ConnectReport>(
          { cmd: "connect", mode, url, count: counts[i] ?? 0, concurrency: CONCURRENCY, timeoutMs: CONNECT_TIMEOUT_MS },
          "connected",
          DEADLINE_S * 1000,
        ),
      ),
    );
    const ms = performance.now() - t0;
    const byReplica: Record<string, number> = {};
    const errors: Record<string, number> = {};
    for (const r of reports) {
      for (const [k, v] of Object.entries(r.byReplica)) byReplica[k] = (byReplica[k] ?? 0) + v;
      for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
    }
    return {
      ms,
      opened: sum(reports.map((r) => r.opened)),
      failed: sum(reports.map((r) => r.failed)),
      byReplica,
      errors,
    };
  };
  const status = async () => {
    const reports = await Promise.all(clients.map((c) => c.ask<StatusReport>({ cmd: "status" }, "status")));
    const reasons: Record<string, number> = {};
    for (const r of reports) for (const [k, v] of Object.entries(r.reasons)) reasons[k] = (reasons[k] ?? 0) + v;
    return { open: sum(reports.map((r) => r.open)), dropped: sum(reports.map((r) => r.dropped)), reasons };
  };
  const closeAll = () => Promise.all(clients.map((c) => c.ask({ cmd: "close" }, "closed")));

  // --- Phase 1: the cluster through nginx ---------------------------------------------------------------------
  const wanted = { port: BASE_PORT, replicaPorts: [1, 2, 3].map((i) => BASE_PORT + i) };
  const wantedMetrics = wanted.replicaPorts.map((p) => p + 1000);
  const free = (await takenPorts([wanted.port, ...wanted.replicaPorts, ...wantedMetrics])).length === 0;
  const ports = free ? { ...wanted, metricsPorts: wantedMetrics } : await freeClusterPorts(REPLICAS);
  if (!free) console.log(`ports ${BASE_PORT}… are taken: nginx on ${ports.port} instead`);
  const clusterT0 = performance.now();
  const cluster: ProcessCluster = await startProcessCluster({
    ...ports,
    replicas: REPLICAS,
    stdio: "ignore",
    logLevel: "warn",
    env: replicaEnv,
    redisMode: REDIS_MODE,
  });
  cleanups.push(() => cluster.stop());
  const clusterStartMs = performance.now() - clusterT0;
  const replicaPids = cluster.replicaIds.map((_, i) => cluster.replicaPid(i) as number);
  const nginxMaster = childrenOf(process.pid, "nginx")[0];
  const nginxWorkers = nginxMaster ? childrenOf(nginxMaster, "nginx") : [];
  console.log(
    `cluster up in ${(clusterStartMs / 1000).toFixed(1)} s at ${cluster.url}: replicas ${cluster.replicaUrls.join(", ")}, ` +
      `nginx workers ${nginxWorkers.length}`,
  );
  await sleep(1000);
  const nginxBefore = nginxWorkers.map((pid) => ({ pid, fds: fdCount(pid), rss: rssBytes(pid) }));
  // CPU seconds per component (exact, from schedstat), to turn phases into costs per connect / delivery / second.
  // Every redis-server of the cluster (masters and their replicas with --redis=cluster).
  const redisPids = (
    cluster.redisCluster ? cluster.redisCluster.nodes.map((n) => n.pid()) : [cluster.redis.pid()]
  ).filter((pid): pid is number => pid !== undefined);
  const groups: Record<Component, number[]> = { replicas: replicaPids, nginx: nginxWorkers, redis: redisPids };
  const cpuNow = () =>
    Object.fromEntries(Object.entries(groups).map(([k, pids]) => [k, sum(pids.map(cpuNanoseconds)) / 1e9])) as Record<
      Component,
      number
    >;
  const cpuSince = (t0: Record<Component, number>) => {
    const t1 = cpuNow();
    return Object.fromEntries(COMPONENTS.map((k) => [k, t1[k] - t0[k]])) as Record<Component, number>;
  };
  const replicaBefore: Array<{ heapBefore: number; rssBefore: number }> = [];
  for (const pid of replicaPids) replicaBefore.push(await before(pid, replicaHeap));

  const cpuConnect0 = cpuNow();
  const conn = await connect(cluster.url, "sio", shares);
  const cpuConnect = cpuSince(cpuConnect0);
  const perSecond = (conn.opened / conn.ms) * 1000;
  console.log(
    `connected ${conn.opened}/${N} in ${(conn.ms / 1000).toFixed(1)} s (${Math.round(perSecond)}/s), failed ${conn.failed}` +
      `${conn.failed ? ` ${JSON.stringify(conn.errors)}` : ""}; by replica ${JSON.stringify(conn.byReplica)}`,
  );
  check(conn.opened === N && conn.failed === 0, `cluster: ${conn.opened} of ${N} connected (${conn.failed} failed)`);
  for (const id of cluster.replicaIds) {
    const count = conn.byReplica[id] ?? 0;
    check(count >= (N / REPLICAS) * 0.5, `cluster: ${id} holds ${count} connections, under half of an even share`);
  }

  await sleep(SETTLE_MS);
  const metrics = await Promise.all(
    cluster.metricsUrls.map(async (u) => {
      const text = await (await fetch(`${u}/metrics`)).text();
      return Number(/^realtime_connections (\d+)/m.exec(text)?.[1] ?? NaN);
    }),
  );
  check(sum(metrics) === N, `cluster: the replicas count ${sum(metrics)} connections (realtime_connections), not ${N}`);
  const nginxAfter = nginxWorkers.map((pid) => ({ pid, fds: fdCount(pid), rss: rssBytes(pid) }));
  const replicaAfter: Array<{ rssIdle: number; heapAfter: number; rssAfterGc: number }> = [];
  for (const pid of replicaPids) replicaAfter.push(await after(pid, replicaHeap));
  const replicas = cluster.replicaIds.map((id, i) => {
    const reading: MemoryReading = { ...replicaBefore[i]!, ...replicaAfter[i]! };
    return {
      id,
      pid: replicaPids[i],
      metricsConnections: metrics[i],
      ...reading,
      ...perConnection(reading, conn.byReplica[id] ?? 0),
    };
  });
  for (const r of replicas)
    console.log(
      `  ${r.id}: ${r.connections} connections, RSS ${fmt(r.rssIdleKiB)} KiB/conn idle (${fmt(r.rssAfterGcKiB)} after GC), ` +
        `heap ${fmt(r.heapKiB)} KiB/conn; RSS ${fmt(r.rssBefore / 2 ** 20, 1)} → ${fmt(r.rssIdle / 2 ** 20, 1)} MiB`,
    );
  const nginxWorkerStats = nginxAfter.map((w, i) => ({
    pid: w.pid,
    fdsBefore: nginxBefore[i]?.fds,
    fds: w.fds,
    rssBefore: nginxBefore[i]?.rss,
    rss: w.rss,
  }));
  const nginxRssDelta = sum(nginxAfter.map((w, i) => w.rss - (nginxBefore[i]?.rss ?? w.rss)));

  // Idle: N open connections, nothing sent but Socket.IO's heartbeats.
  const cpuIdle0 = cpuNow();
  if (IDLE_MS > 0) console.log(`idle for ${IDLE_MS / 1000} s (one heartbeat per connection)…`);
  await sleep(IDLE_MS);
  const cpuIdle = cpuSince(cpuIdle0);
  const heartbeats = (N * IDLE_MS) / PING_INTERVAL_MS;
  console.log(
    `  nginx: ${nginxWorkerStats.map((w) => `worker ${w.pid} ${w.fds} fds, RSS ${fmt(w.rss / 2 ** 20, 1)} MiB`).join("; ")}` +
      ` (${fmt(kib(nginxRssDelta) / N)} KiB RSS per websocket over all workers)`,
  );

  // Delivery across replicas: one broadcast sent from a client on each replica reaches all N.
  const broadcasts = [];
  const cpuBroadcast0 = cpuNow();
  for (const id of cluster.replicaIds) {
    const token = `capacity-${id}-${Date.now()}`;
    const t0 = now();
    let sent: { ok: boolean; ack?: unknown } = { ok: false };
    for (const c of clients) {
      sent = await c.ask<{ ok: boolean; ack?: unknown }>({ cmd: "send", token, replica: id }, "sent");
      if (sent.ok) break;
    }
    if (!check(sent.ok, `broadcast: no client on ${id} to send from`)) continue;
    const reports = await pollUntil(
      async () => {
        const r = await Promise.all(clients.map((c) => c.ask<ReceivedReport>({ cmd: "received", token }, "received")));
        return sum(r.map((x) => x.count)) >= N ? r : undefined;
      },
      {
        timeoutMs: 20_000,
        intervalMs: 50,
        onTimeout: () => Promise.all(clients.map((c) => c.ask<ReceivedReport>({ cmd: "received", token }, "received"))),
      },
    );
    const byReplica: Record<string, number> = {};
    for (const r of reports) for (const [k, v] of Object.entries(r.byReplica)) byReplica[k] = (byReplica[k] ?? 0) + v;
    const received = sum(reports.map((r) => r.count));
    const lastMs = Math.max(...reports.map((r) => r.last)) - t0;
    broadcasts.push({ from: id, ack: sent.ack, received, byReplica, lastDeliveryMs: lastMs });
    console.log(
      `broadcast from ${id}: ${received}/${N} received in ${fmt(lastMs, 0)} ms, by replica ${JSON.stringify(byReplica)}`,
    );
    check(received === N, `broadcast from ${id}: ${received} of ${N} received`);
  }
  const cpuBroadcast = cpuSince(cpuBroadcast0);
  const delivered = sum(broadcasts.map((b) => b.received));
  const cpu = {
    connectUsPerConnection: perComponent(cpuConnect, (v) => (v * 1e6) / Math.max(1, conn.opened)),
    idleCoresPer10kConnections: perComponent(cpuIdle, (v) =>
      IDLE_MS > 0 ? ((v / (IDLE_MS / 1000)) * 10_000) / N : NaN,
    ),
    idleUsPerHeartbeat: perComponent(cpuIdle, (v) => (IDLE_MS > 0 ? (v * 1e6) / heartbeats : NaN)),
    broadcastUsPerDelivery: perComponent(cpuBroadcast, (v) => (v * 1e6) / Math.max(1, delivered)),
    seconds: { connect: cpuConnect, idle: cpuIdle, broadcast: cpuBroadcast, idleWindowS: IDLE_MS / 1000 },
    pingIntervalMs: PING_INTERVAL_MS,
  };
  for (const [label, values, unit] of [
    ["connect", cpu.connectUsPerConnection, "µs CPU per connection"],
    [`idle (${IDLE_MS / 1000} s)`, cpu.idleCoresPer10kConnections, "cores per 10,000 idle connections"],
    ["heartbeat", cpu.idleUsPerHeartbeat, "µs CPU per heartbeat (idle CPU / connections × pings in the window)"],
    ["broadcast", cpu.broadcastUsPerDelivery, "µs CPU per delivered broadcast (3 broadcasts to all N)"],
  ] as const)
    console.log(`  CPU ${label}: ${COMPONENTS.map((k) => `${k} ${fmt(values[k], 3)}`).join(", ")} ${unit}`);
  const clusterStatus = await status();
  check(
    clusterStatus.open === N && clusterStatus.dropped === 0,
    `cluster: ${clusterStatus.open} of ${N} still open at the end, ${clusterStatus.dropped} dropped ${JSON.stringify(clusterStatus.reasons)}`,
  );
  await closeAll();
  await cluster.stop();

  // --- Phase 2: one replica, no nginx, no Redis, N connections (the `npm run bench` "single" setup) -----------
  let single: (MemoryReading & PerConnection & { connectMs: number }) | undefined;
  if (withSingle) {
    const port = await freePort();
    const child = spawnReplica(
      port,
      { ...replicaEnv, REPLICA_ID: "single", LOG_LEVEL: "warn", DRAIN_DELAY_S: "0", DRAIN_CLOSE_S: "0" },
      "ignore",
    );
    const stop = () => (child.kill("SIGTERM"), waitForExit(child, 10_000));
    cleanups.push(stop);
    const url = `http://127.0.0.1:${port}`;
    await waitForHttp(`${url}/readyz`, "single replica", child);
    const pid = child.pid as number;
    await sleep(1000);
    const b = await before(pid, replicaHeap);
    const c = await connect(url, "sio", shares);
    check(c.opened === N, `single: ${c.opened} of ${N} connected ${JSON.stringify(c.errors)}`);
    await sleep(SETTLE_MS);
    const reading = { ...b, ...(await after(pid, replicaHeap)) };
    single = { ...reading, ...perConnection(reading, c.opened), connectMs: c.ms };
    console.log(
      `single replica: ${c.opened} connections in ${(c.ms / 1000).toFixed(1)} s, RSS ${fmt(single.rssIdleKiB)} KiB/conn idle ` +
        `(${fmt(single.rssAfterGcKiB)} after GC), heap ${fmt(single.heapKiB)} KiB/conn`,
    );
    await closeAll();
    await stop();
  }

  // --- Phase 3: raw ws at N/3 (a replica's share) and N connections -------------------------------------------
  const raw: Array<MemoryReading & PerConnection> = [];
  if (withRaw) {
    const port = await freePort();
    const child = fork(`${ROOT}bench/servers/raw-ws.ts`, [], {
      execArgv: ["--expose-gc", "--import", "tsx", "--import", `${ROOT}bench/servers/heap-probe.ts`],
      env: { ...process.env, PORT: String(port) },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const stop = () => (child.kill("SIGTERM"), waitForExit(child, 5_000));
    cleanups.push(stop);
    await new Promise((resolve, reject) => {
      child.once("message", resolve);
      child.once("exit", (code) => reject(new Error(`raw-ws exited with ${code}`)));
    });
    const rawHeap = () =>
      new Promise<number>((resolve) => {
        const onMessage = (msg: { ev?: string; heapUsed?: number }) => {
          if (msg?.ev !== "heap") return;
          child.off("message", onMessage);
          resolve(msg.heapUsed as number);
        };
        child.on("message", onMessage);
        child.send({ cmd: "heap" });
      });
    const pid = child.pid as number;
    const url = `http://127.0.0.1:${port}`;
    await sleep(1000);
    const b = await before(pid, rawHeap);
    const third = Math.round(N / REPLICAS);
    let total = 0;
    for (const target of [third, N]) {
      const add = target - total;
      const counts = clients.map((_, i) => Math.floor(add / clientProcesses) + (i < add % clientProcesses ? 1 : 0));
      const c = await connect(url, "raw", counts);
      total += c.opened;
      check(c.opened === add, `raw ws: ${c.opened} of ${add} connected ${JSON.stringify(c.errors)}`);
      await sleep(SETTLE_MS);
      const reading = { ...b, ...(await after(pid, rawHeap)) };
      raw.push({ ...reading, ...perConnection(reading, total) });
      const last = raw[raw.length - 1] as PerConnection;
      console.log(
        `raw ws at ${total}: RSS ${fmt(last.rssIdleKiB)} KiB/conn idle (${fmt(last.rssAfterGcKiB)} after GC), ` +
          `heap ${fmt(last.heapKiB)} KiB/conn`,
      );
    }
    await closeAll();
    await stop();
  }

  // --- Summary -------------------------------------------------------------------------------------------------
  const replicaMean = (key: "rssIdleKiB" | "rssAfterGcKiB" | "heapKiB") =>
    sum(replicas.map((r) => r[key] * r.connections)) / sum(replicas.map((r) => r.connections));
  const rawThird = raw[0];
  const rawFull = raw[1];
  const ratios = {
    "cluster replica / raw ws at the same per-process count, RSS idle":
      replicaMean("rssIdleKiB") / (rawThird?.rssIdleKiB ?? NaN),
    "cluster replica / raw ws at the same per-process count, heap": replicaMean("heapKiB") / (rawThird?.heapKiB ?? NaN),
    "single / raw ws at N, RSS idle": (single?.rssIdleKiB ?? NaN) / (rawFull?.rssIdleKiB ?? NaN),
    "single / raw ws at N, RSS after GC": (single?.rssAfterGcKiB ?? NaN) / (rawFull?.rssAfterGcKiB ?? NaN),
    "single / raw ws at N, heap": (single?.heapKiB ?? NaN) / (rawFull?.heapKiB ?? NaN),
  };
  const seconds = Math.round((Date.now() - started) / 1000);
  console.log(`\n| measure | value |\n| --- | ---: |`);
  const row = (k: string, v: string) => console.log(`| ${k} | ${v} |`);
  row("connections through nginx", `${conn.opened} / ${N}`);
  row("time to connect (incl. server-info ack)", `${fmt(conn.ms / 1000, 1)} s (${Math.round(perSecond)}/s)`);
  row("per replica", cluster.replicaIds.map((id) => `${id} ${conn.byReplica[id] ?? 0}`).join(", "));
  row("broadcasts delivered", broadcasts.map((b) => `${b.received}/${N} (${fmt(b.lastDeliveryMs, 0)} ms)`).join(", "));
  row(
    "replica RSS KiB / idle conn (mean; after GC)",
    `${fmt(replicaMean("rssIdleKiB"))} (${fmt(replicaMean("rssAfterGcKiB"))})`,
  );
  row("replica heap KiB / conn", fmt(replicaMean("heapKiB")));
  if (rawThird)
    row(
      `raw ws RSS / heap KiB per conn at ${rawThird.connections}`,
      `${fmt(rawThird.rssIdleKiB)} / ${fmt(rawThird.heapKiB)}`,
    );
  if (single)
    row(
      `single RSS (after GC) / heap KiB per conn at ${single.connections}`,
      `${fmt(single.rssIdleKiB)} (${fmt(single.rssAfterGcKiB)}) / ${fmt(single.heapKiB)}`,
    );
  if (rawFull)
    row(
      `raw ws RSS (after GC) / heap KiB per conn at ${rawFull.connections}`,
      `${fmt(rawFull.rssIdleKiB)} (${fmt(rawFull.rssAfterGcKiB)}) / ${fmt(rawFull.heapKiB)}`,
    );
  for (const [k, v] of Object.entries(ratios)) if (Number.isFinite(v)) row(k, fmt(v));
  row("nginx fds per worker", nginxWorkerStats.map((w) => w.fds).join(", "));
  const cpuRow = (values: Record<Component, number>, digits: number) =>
    COMPONENTS.map((k) => `${fmt(values[k], digits)}`).join(" / ");
  row("CPU µs per connect: replicas / nginx / redis", cpuRow(cpu.connectUsPerConnection, 1));
  row("CPU cores per 10k idle connections: replicas / nginx / redis", cpuRow(cpu.idleCoresPer10kConnections, 4));
  row("CPU µs per heartbeat: replicas / nginx / redis", cpuRow(cpu.idleUsPerHeartbeat, 1));
  row("CPU µs per broadcast delivery: replicas / nginx / redis", cpuRow(cpu.broadcastUsPerDelivery, 2));
  row("run", `${seconds} s`);

  const summary = {
    date: new Date().toISOString(),
    quick,
    passed: failures.length === 0,
    failures,
    seconds,
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? "unknown", memGiB: Math.round(totalmem() / 2 ** 30) },
    node: process.version,
    limits: { openFilesSoft: limits.soft, openFilesHard: limits.hard, ipLocalPortRange: portRange },
    nginx: { ...nginx, workers: nginxWorkerStats, rssPerWebsocketKiB: kib(nginxRssDelta) / N },
    params: {
      redis: REDIS_MODE,
      connections: N,
      replicas: REPLICAS,
      clientProcesses,
      concurrencyPerProcess: CONCURRENCY,
      settleMs: SETTLE_MS,
    },
    cluster: {
      url: cluster.url,
      startMs: clusterStartMs,
      connectMs: conn.ms,
      connectsPerSecond: perSecond,
      opened: conn.opened,
      failed: conn.failed,
      errors: conn.errors,
      byReplica: conn.byReplica,
      replicas,
      broadcasts,
      cpu,
      endStatus: clusterStatus,
    },
    single,
    raw,
    ratios,
    method:
      "Memory per connection: (after - before) / connections of that process. before: after two forced GCs and 0.5 s. " +
      "rssIdle: settle time after the last connection, no forced GC (the `npm run bench` method); heapAfter: after two " +
      "forced GCs; rssAfterGc: 0.5 s later.",
  };
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(summary, null, 2) + "\n");
  console.log(`\nwrote ${out}`);
  await cleanup();
  if (failures.length > 0) {
    console.error(`capacity: FAILED\n- ${failures.join("\n- ")}`);
    process.exit(1);
  }
  console.log("capacity: every check passed");
  process.exit(0);
}

if (process.argv.includes("--worker")) runWorker();
else
  await main().catch(async (err: Error) => {
    console.error(`capacity: ${err.stack ?? err.message}`);
    await cleanup();
    process.exit(1);
  });
