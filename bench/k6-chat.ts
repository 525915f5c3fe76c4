/**
 * The room-chat workload with the real k6 (loadtest/room-chat.js): 200 virtual users in rooms of 20, each sending
 * one room message per second (about 4,000 deliveries/s), through nginx (the project's nginx.conf, session-id
 * routing), three replicas and Redis. Two clusters on the same machine, interleaved run by run (the order
 * alternates), or with `--together` measured at the same time: one k6 process drives both (loadtest/room-chat.js
 * with TARGETS: one scenario per cluster on the same schedule, their senders interleaved), so the machine's drift
 * from one run to the next is in both sides of a run's ratio instead of between them:
 *
 * - **ours**: `startProcessCluster` (scripts/cluster/processes.ts) with `runtime: "dist"`: redis-server, 3 replicas
 *   of the compiled dist/main.js with every feature on (validation, metrics, JSON logs at `info`), nginx;
 * - **vanilla**: 3 processes of bench/servers/vanilla-socketio.ts (Socket.IO 4 + @socket.io/redis-adapter, nothing
 *   else) behind an nginx rendered from the same nginx.conf, on their own redis-server: the bench's
 *   `vanilla-cluster-3` (bench/setups.ts), run as the bench runs it (Node's type stripping, no loader);
 * - **vanilla-rtt** (with `--with-rtt`): the same, except that the sender's replica delivers to its own members
 *   after one Redis round trip, as ours does (`vanilla-rtt-cluster-3`): the price of storing before delivering.
 *
 * Every run starts a fresh cluster (a fresh Redis: nothing carried over from the previous run) and stops it after.
 *
 * CPU: user+system time of the replicas (sum of the 3), of Redis, of nginx and of k6, sampled every 250 ms during
 * the k6 run together with k6's live counters (its REST API on a loopback port). The measured window is the steady
 * part of the send phase: from 1 s (`--warmup`) after the first message was sent (the senders' start is spread over one send
 * interval, and the JIT warms up) to the last sample at which the senders were still sending. Connecting, joining,
 * the 3 s settle before the first message and the tail after the last are outside it (reported separately: idle
 * CPU/s with no client before k6 starts, and the CPU of the whole k6 run per delivered message). Delivered messages
 * in the window = messages_expected counted by k6 in the window × k6's final delivery ratio (room_delivery).
 *
 *   npx tsx bench/k6-chat.ts [--runs=3] [--duration=30] [--warmup=1] [--with-rtt] [--together] [--quick] [--no-build]
 *
 * Writes bench/results/k6-chat-latest.json and .md (k6-chat-together-latest.* with --together). Needs ../shared/tools/k6 (or
 * K6=path), redis-server and nginx. Every child (k6, replicas, Redis, nginx) is stopped on exit, on an error, on
 * SIGINT / SIGTERM and after an overall deadline.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { writeNginxSite } from "../scripts/cluster/nginx.js";
import { pollUntil } from "../scripts/cluster/poll.js";
import { freeClusterPorts, freePort } from "../scripts/cluster/ports.js";
import { startProcessCluster, waitForExit } from "../scripts/cluster/processes.js";
import { cell, f, spread, type Spread } from "./chat.js";
import { cpuNanoseconds, intArg, machineCpu } from "./proc.js";
import { startSetup } from "./setups.js";

const ROOT = new URL("../", import.meta.url).pathname;
const K6 = process.env.K6 ?? join(ROOT, "../shared/tools/k6");
const REPLICAS = 3;
const ROOM_SIZE = 20;
const ROOMS = 10;
const RATE = 1;
const SAMPLE_MS = 250;
const quick = process.argv.includes("--quick");
/**
 * Skipped at the start of the send phase: the senders' phases spread over one interval, and the JIT warms up.
 * `--warmup=S` skips more: V8's background compilation and collection take tens of seconds to settle.
 */
const SKIP_MS = intArg("warmup", 1, 1, 240) * 1000;
const IDLE_MS = 2000;

const RUNS = intArg("runs", quick ? 1 : 3, 1, 10);
const DURATION_S = intArg("duration", quick ? 10 : 30, 5, 300);
const BUILD = !process.argv.includes("--no-build");
const WITH_RTT = process.argv.includes("--with-rtt");
const TOGETHER = process.argv.includes("--together");
const FLAGS = ["--quick", "--no-build", "--with-rtt", "--together"];
for (const a of process.argv.slice(2))
  if (!/^--(runs|duration|warmup)=/.test(a) && !FLAGS.includes(a))
    throw new Error(`unknown argument ${a}: --runs=N --duration=S --warmup=S ${FLAGS.join(" ")}`);
if (SKIP_MS >= (DURATION_S - 5) * 1000) throw new Error("--warmup: leave at least 5 s of --duration to measure");

type SetupName = "vanilla" | "vanilla-rtt" | "ours";
const SETUPS: SetupName[] = WITH_RTT ? ["vanilla", "vanilla-rtt", "ours"] : ["vanilla", "ours"];

interface Running {
  url: string;
  replicaPids: number[];
  redisPid: number;
  stop(): Promise<void>;
}

interface Run {
  setup: SetupName;
  run: number;
  /** Seconds of the measured window. */
  windowS: number;
  replicaCpuUsPerDelivered: number;
  redisCpuUsPerDelivered: number;
  nginxCpuUsPerDelivered: number;
  deliveredInWindow: number;
  /** Cores busy in the window: each group, k6, and the machine as a whole. */
  replicaCores: number;
  redisCores: number;
  nginxCores: number;
  k6Cores: number;
  machineCores: number;
  /** k6's CPU over the machine's busy CPU in the window. */
  k6Share: number;
  /** Busy cores outside the cluster and k6 (this harness, anything else on the machine): noise. */
  otherCores: number;
  /** The cluster with no client, before k6 starts (CPU seconds per second). */
  idleReplicaCores: number;
  idleRedisCores: number;
  /** Replicas + Redis CPU of the whole k6 run (connect, join, settle, send, close) per delivered message. */
  wholeRunCpuUsPerDelivered: number;
  delivered: number;
  expected: number;
  deliveryRatio: number;
  sent: number;
  p50: number;
  p95: number;
  p99: number;
  socketErrors: number;
  offsetGaps: number;
  k6Exit: number | string;
  k6Seconds: number;
}

// ---------------------------------------------------------------------------------------------------- cleanup

const cleanups = new Set<() => Promise<void>>();
let aborting = false;

/** Every live descendant of this process (children, their children: nginx workers…), from /proc. */
function descendants(): number[] {
  const parent = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      parent.set(Number(entry), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // gone in between
    }
  }
  const found: number[] = [];
  const queue = [process.pid];
  while (queue.length > 0) {
    const p = queue.shift() as number;
    for (const [pid, ppid] of parent) {
      if (ppid !== p) continue;
      found.push(pid);
      queue.push(pid);
    }
  }
  return found;
}

/** Last resort, synchronous (works in an `exit` handler): SIGKILL whatever of ours still runs. */
function killDescendants(): void {
  for (const pid of descendants()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

let cleaning: Promise<void> | undefined;
/** Runs every registered cleanup once, newest first; a second caller waits for the same run. */
function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of [...cleanups].reverse()) {
      cleanups.delete(c);
      await c().catch((err: Error) => console.error(`cleanup: ${err.message}`));
    }
  })();
  return cleaning;
}

function abort(why: string, code: number): void {
  if (aborting) return;
  aborting = true;
  console.error(`k6-chat: ${why}; stopping everything`);
  const hard = setTimeout(() => (killDescendants(), process.exit(code)), 20_000);
  hard.unref();
  void cleanupAll().finally(() => {
    killDescendants();
    process.exit(code);
  });
}

process.once("SIGINT", () => abort("interrupted", 130)).once("SIGTERM", () => abort("terminated", 143));
process.on("exit", killDescendants);

// ---------------------------------------------------------------------------------------------------- setups

const stopChild = (c: ChildProcess) => (c.kill("SIGTERM"), waitForExit(c, 10_000));

async function startOurs(): Promise<Running> {
  const ports = await freeClusterPorts(REPLICAS);
  const cluster = await startProcessCluster({ ...ports, stdio: "ignore", runtime: "dist", logLevel: "info" });
  const pids = Array.from({ length: REPLICAS }, (_, i) => cluster.replicaPid(i) as number);
  return { url: cluster.url, replicaPids: pids, redisPid: cluster.redis.pid() as number, stop: () => cluster.stop() };
}

/**
 * The bench's vanilla cluster (bench/setups.ts: 3 replicas of bench/servers/vanilla-socketio.ts on one redis-server,
 * run as the bench runs them) behind an nginx written from the same nginx.conf as ours.
 */
async function startVanilla(deliverAfterRoundTrip: boolean): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), "k6-chat-nginx-"));
  const vanilla = await startSetup(deliverAfterRoundTrip ? "vanilla-rtt-cluster-3" : "vanilla-cluster-3");
  let nginx: ChildProcess | undefined;
  const stopAll = async () => {
    if (nginx) await stopChild(nginx);
    await vanilla.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const port = await freePort();
    const nginxArgs = writeNginxSite(dir, { port, upstream: vanilla.urls.map((u) => new URL(u).host) });
    const proxy = spawn("nginx", nginxArgs, { stdio: ["ignore", "ignore", "inherit"] });
    nginx = proxy;
    const url = `http://127.0.0.1:${port}`;
    // An Engine.IO handshake through nginx: only a Socket.IO server behind it answers with an open packet.
    await pollUntil(
      async () => {
        if (proxy.exitCode !== null) throw new Error(`nginx exited (code ${proxy.exitCode}); port ${port} taken?`);
        try {
          const res = await fetch(`${url}/socket.io/?EIO=4&transport=polling`);
          const body = await res.text();
          return (res.status === 200 && body.startsWith("0{")) || undefined;
        } catch {
          return undefined;
        }
      },
      {
        timeoutMs: 10_000,
        intervalMs: 100,
        onTimeout: () => {
          throw new Error(`vanilla nginx not answering at ${url}`);
        },
      },
    );
    return { url, replicaPids: vanilla.replicaPids, redisPid: vanilla.redisPid as number, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------------- measuring

const cpuNs = (pids: number[]) => pids.reduce((sum, pid) => sum + cpuNanoseconds(pid), 0);

/** Every nginx master and worker this harness started (descendants named nginx). */
function nginxPids(): number[] {
  return descendants().filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "nginx";
    } catch {
      return false;
    }
  });
}

/** A counter of k6's REST API: 0 before its first sample (404), NaN while the API does not answer. */
async function k6Counter(api: string, name: string): Promise<number> {
  try {
    const res = await fetch(`${api}/v1/metrics/${encodeURIComponent(name)}`);
    if (res.status === 404) return (await res.arrayBuffer(), 0);
    if (res.status !== 200) return (await res.arrayBuffer(), NaN);
    const body = (await res.json()) as { data?: { attributes?: { sample?: { count?: number } } } };
    return body.data?.attributes?.sample?.count ?? 0;
  } catch {
    return NaN;
  }
}

interface K6Export {
  metrics: Record<string, Record<string, number | undefined>>;
}

const startSetupNamed = (setup: SetupName) => (setup === "ours" ? startOurs() : startVanilla(setup === "vanilla-rtt"));

/** One k6 run against `setups` at once (TARGETS: one scenario each, the same schedule); one Run per setup. */
async function measure(setups: SetupName[], run: number, workDir: string): Promise<Run[]> {
  const clusters: { setup: SetupName; running: Running; nginx: number[] }[] = [];
  const stops: (() => Promise<void>)[] = [];
  try {
    for (const setup of setups) {
      const before = new Set(nginxPids());
      const running = await startSetupNamed(setup);
      const stop = () => running.stop();
      stops.push(stop);
      cleanups.add(stop);
      // Its nginx: the master and workers that were not there before it started.
      clusters.push({ setup, running, nginx: nginxPids().filter((pid) => !before.has(pid)) });
    }
    return await measureRunning(clusters, run, workDir);
  } finally {
    // Unless an abort already took them over (cleanupAll removes what it runs).
    for (const stop of stops.reverse()) if (cleanups.delete(stop)) await stop();
  }
}

/** The CPU nanoseconds of one cluster's groups of processes, now. */
interface ClusterCpu {
  replicas: number;
  redis: number;
  nginx: number;
}

async function measureRunning(
  clusters: { setup: SetupName; running: Running; nginx: number[] }[],
  run: number,
  workDir: string,
): Promise<Run[]> {
  const clusterCpu = (): ClusterCpu[] =>
    clusters.map(({ running, nginx }) => ({
      replicas: cpuNs(running.replicaPids),
      redis: cpuNanoseconds(running.redisPid),
      nginx: cpuNs(nginx),
    }));
  const cpuNow = (k6Pid?: number) => ({
    t: performance.now(),
    clusters: clusterCpu(),
    k6: k6Pid === undefined ? 0 : cpuNanoseconds(k6Pid),
    machine: machineCpu().busy,
  });

  // Idle: the clusters with no client at all.
  await new Promise((r) => setTimeout(r, 500));
  const idle0 = cpuNow();
  await new Promise((r) => setTimeout(r, IDLE_MS));
  const idle1 = cpuNow();
  const idleS = (idle1.t - idle0.t) / 1000;

  const label = clusters.map((c) => c.setup).join("+");
  const apiPort = await freePort();
  const api = `http://127.0.0.1:${apiPort}`;
  const summaryFile = join(workDir, `${label}-${run}.json`);
  const outFile = join(workDir, `${label}-${run}.txt`);
  const targets = clusters.map((c) => `${c.setup}=${c.running.url}`).join(",");
  const env = { ROOM_SIZE, ROOMS, RATE, DURATION_S, TARGETS: targets, PROFILE: "ci" };
  const k6 = spawn(
    K6,
    [
      "run",
      "--quiet",
      "--no-color",
      "--no-usage-report",
      "--address",
      `127.0.0.1:${apiPort}`,
      "--summary-export",
      summaryFile,
      ...Object.entries(env).flatMap(([k, v]) => ["-e", `${k}=${v}`]),
      "loadtest/room-chat.js",
    ],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  const k6Stop = async () => {
    k6.kill("SIGKILL");
    await waitForExit(k6, 5000);
  };
  cleanups.add(k6Stop);
  const output: Buffer[] = [];
  k6.stdout.on("data", (d: Buffer) => output.push(d));
  k6.stderr.on("data", (d: Buffer) => output.push(d));
  const exited = new Promise<number | string>((resolve) =>
    k6.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown")),
  );
  let done = false;
  void exited.then(() => (done = true));
  // k6's own maxDuration is DURATION_S + 60 s; past that plus a margin, SIGINT (it still writes its summary),
  // then SIGKILL.
  const killTimer = setTimeout(
    () => {
      console.error(`k6 (${label}, run ${run}) past its time limit: SIGINT`);
      k6.kill("SIGINT");
      setTimeout(() => k6.kill("SIGKILL"), 10_000).unref();
    },
    (DURATION_S + 90) * 1000,
  );

  const k6Started = performance.now();
  type Sample = ReturnType<typeof cpuNow> & { sent: number[]; expected: number[] };
  const samples: Sample[] = [];
  const take = async () => {
    const counts = await Promise.all(
      clusters.flatMap(({ setup }) => [
        k6Counter(api, `messages_sent{scenario:${setup}}`),
        k6Counter(api, `messages_expected{scenario:${setup}}`),
      ]),
    );
    if (done || counts.some(Number.isNaN)) return;
    samples.push({
      ...cpuNow(k6.pid),
      sent: counts.filter((_, i) => i % 2 === 0),
      expected: counts.filter((_, i) => i % 2 === 1),
    });
  };
  const start = cpuNow(k6.pid);
  while (!done) {
    const next = performance.now() + SAMPLE_MS;
    await take().catch(() => undefined);
    const wait = next - performance.now();
    if (wait > 0) await Promise.race([new Promise((r) => setTimeout(r, wait)), exited]);
  }
  const k6Exit = await exited;
  clearTimeout(killTimer);
  cleanups.delete(k6Stop);
  const k6Seconds = (performance.now() - k6Started) / 1000;
  const end = cpuNow();
  writeFileSync(outFile, Buffer.concat(output));
  if (!existsSync(summaryFile))
    throw new Error(
      `k6 (${label}) wrote no summary (exit ${k6Exit}): ${Buffer.concat(output).toString().slice(-2000)}`,
    );
  const { metrics } = JSON.parse(readFileSync(summaryFile, "utf8")) as K6Export;

  // Every cluster's processes together, at one sample: what the machine spent on servers.
  const allClusters = (s: Sample) => s.clusters.reduce((sum, x) => sum + x.replicas + x.redis + x.nginx, 0);
  return clusters.map(({ setup }, c) => {
    const m = (metric: string, stat: string) => metrics[`${metric}{scenario:${setup}}`]?.[stat] ?? NaN;
    const delivered = m("messages_received", "count");
    const expected = m("messages_expected", "count");
    const sent = m("messages_sent", "count");
    const passes = m("room_delivery", "passes");
    const fails = m("room_delivery", "fails");
    const deliveryRatio = passes / (passes + fails);

    // The window: from SKIP_MS after the first sample that saw a message sent, to the last sample taken while the
    // senders were still sending (its count below the final one).
    const sentAt = (s: Sample) => s.sent[c] as number;
    const first = samples.find((s) => sentAt(s) > 0);
    const from = first && samples.find((s) => s.t >= first.t + SKIP_MS);
    const to = [...samples].reverse().find((s) => sentAt(s) > 0 && sentAt(s) < sent);
    if (!from || !to || to.t - from.t < 2000)
      throw new Error(`k6 (${setup}): no send phase seen in ${samples.length} samples (exit ${k6Exit})`);
    const windowS = (to.t - from.t) / 1000;
    const deliveredInWindow = ((to.expected[c] as number) - (from.expected[c] as number)) * deliveryRatio;
    // This cluster's CPU nanoseconds in group `g` between two samples.
    const spent = (a: { clusters: ClusterCpu[] }, b: { clusters: ClusterCpu[] }, g: keyof ClusterCpu) =>
      (b.clusters[c] as ClusterCpu)[g] - (a.clusters[c] as ClusterCpu)[g];
    const used = (g: keyof ClusterCpu) => spent(from, to, g);
    const us = (ns: number) => ns / 1000 / deliveredInWindow;
    const k6Cpu = (to.k6 - from.k6) / 1e9;
    const machine = to.machine - from.machine;
    return {
      setup,
      run,
      windowS,
      replicaCpuUsPerDelivered: us(used("replicas")),
      redisCpuUsPerDelivered: us(used("redis")),
      nginxCpuUsPerDelivered: us(used("nginx")),
      deliveredInWindow,
      replicaCores: used("replicas") / 1e9 / windowS,
      redisCores: used("redis") / 1e9 / windowS,
      nginxCores: used("nginx") / 1e9 / windowS,
      k6Cores: k6Cpu / windowS,
      machineCores: machine / windowS,
      k6Share: k6Cpu / machine,
      otherCores: (machine - (allClusters(to) - allClusters(from)) / 1e9 - k6Cpu) / windowS,
      idleReplicaCores: spent(idle0, idle1, "replicas") / 1e9 / idleS,
      idleRedisCores: spent(idle0, idle1, "redis") / 1e9 / idleS,
      wholeRunCpuUsPerDelivered: (spent(start, end, "replicas") + spent(start, end, "redis")) / 1000 / delivered,
      delivered,
      expected,
      deliveryRatio,
      sent,
      p50: m("room_message_latency", "med"),
      p95: m("room_message_latency", "p(95)"),
      p99: m("room_message_latency", "p(99)"),
      socketErrors: m("socket_errors", "count") || 0,
      offsetGaps: m("room_offset_gaps", "count") || 0,
      k6Exit,
      k6Seconds,
    };
  });
}

// ---------------------------------------------------------------------------------------------------- report

const STATS = [
  "replicaCpuUsPerDelivered",
  "redisCpuUsPerDelivered",
  "nginxCpuUsPerDelivered",
  "deliveryRatio",
  "p50",
  "p95",
  "p99",
  "k6Cores",
  "k6Share",
  "otherCores",
  "machineCores",
  "idleReplicaCores",
  "idleRedisCores",
  "wholeRunCpuUsPerDelivered",
  "windowS",
] as const;
type Stat = (typeof STATS)[number];

function gitCommit(): string {
  const sha = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).stdout.trim();
  const dirty = spawnSync("git", ["status", "--porcelain", "--", "src"], { cwd: ROOT, encoding: "utf8" }).stdout.trim();
  return `${sha || "unknown"}${dirty ? " (src/ modified)" : ""}`;
}

function renderTable(setups: { name: SetupName; runs: Run[]; stats: Record<Stat, Spread> }[]): string {
  const rows = setups.map(({ name, runs, stats: s }) => {
    const delivered = runs.reduce((sum, r) => sum + r.delivered, 0);
    const expected = runs.reduce((sum, r) => sum + r.expected, 0);
    return (
      `| ${name} | ${runs.length} | ${cell(s.replicaCpuUsPerDelivered)} | ${cell(s.redisCpuUsPerDelivered)} | ` +
      `${cell(s.deliveryRatio, 2, 100)} % (${delivered.toLocaleString("en-US")}/${expected.toLocaleString("en-US")}) | ` +
      `${cell(s.p50)} / ${cell(s.p95)} / ${cell(s.p99)} | ${cell(s.k6Cores)} (${cell(s.k6Share, 0, 100)} %) | ` +
      `${cell(s.otherCores)} | ${cell(s.idleReplicaCores, 3)} |`
    );
  });
  return [
    "| setup | runs | replica CPU µs / delivered | Redis CPU µs / delivered | delivered / expected | k6 room_message_latency p50 / p95 / p99 ms | k6 cores (share of busy CPU) | other busy cores | idle replica cores |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows,
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------------- main

async function main(): Promise<void> {
  const started = Date.now();
  // Bounded: per run and setup about DURATION_S + 20 s (start, idle, connect, settle, close, stop); k6 is killed
  // at DURATION_S + 90 s, the whole harness here.
  const deadlineS = 120 + RUNS * SETUPS.length * (DURATION_S + 120);
  setTimeout(() => abort(`deadline of ${deadlineS} s exceeded`, 1), deadlineS * 1000).unref();

  if (!existsSync(K6)) throw new Error(`k6 not found at ${K6} (set K6=/path/to/k6)`);
  if (BUILD) {
    console.log("k6-chat: npm run build");
    const b = spawnSync("npm", ["run", "build"], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
    if (b.status !== 0) throw new Error(`npm run build failed (exit ${b.status})`);
  }
  if (!existsSync(join(ROOT, "dist/main.js"))) throw new Error("dist/main.js missing: run npm run build");

  const workDir = mkdtempSync(join(tmpdir(), "k6-chat-"));
  cleanups.add(async () => rmSync(workDir, { recursive: true, force: true }));

  console.log(
    `k6-chat: ${RUNS} run(s) × {${SETUPS.join(", ")}}, ${ROOMS * ROOM_SIZE} VUs in rooms of ${ROOM_SIZE} at ${RATE} msg/s ` +
      `(${ROOMS * ROOM_SIZE * RATE * ROOM_SIZE} deliveries/s) for ${DURATION_S} s`,
  );
  const runs: Run[] = [];
  for (let run = 1; run <= RUNS; run++) {
    // Rotated (two setups: alternated) so that no setup always runs (or, together, starts) first.
    const order = SETUPS.map((_, i) => SETUPS[(i + run - 1) % SETUPS.length] as SetupName);
    const measured: Run[] = [];
    if (TOGETHER) measured.push(...(await measure(order, run, workDir)));
    else for (const setup of order) measured.push(...(await measure([setup], run, workDir)));
    for (const r of measured) {
      runs.push(r);
      console.log(
        `run ${run} ${r.setup.padEnd(11)} replicas ${f(r.replicaCpuUsPerDelivered)} µs/delivered, Redis ${f(r.redisCpuUsPerDelivered)} µs, ` +
          `nginx ${f(r.nginxCpuUsPerDelivered)} µs (window ${f(r.windowS, 1)} s), delivered ${f(r.deliveryRatio * 100, 3)} % ` +
          `(${r.delivered}/${r.expected}), p50/p95/p99 ${f(r.p50)}/${f(r.p95)}/${f(r.p99)} ms, k6 ${f(r.k6Cores)} cores ` +
          `(${f(r.k6Share * 100, 0)} % of busy ${f(r.machineCores)}), other ${f(r.otherCores)} cores, errors ${r.socketErrors}, offset gaps ${r.offsetGaps}, k6 exit ${r.k6Exit}`,
      );
    }
  }

  const setups = SETUPS.map((name) => {
    const mine = runs.filter((r) => r.setup === name);
    return {
      name,
      runs: mine,
      stats: Object.fromEntries(STATS.map((s) => [s, spread(mine.map((r) => r[s]))])) as Record<Stat, Spread>,
    };
  });
  const median = (name: SetupName, s: Stat) => setups.find((x) => x.name === name)?.stats[s].median ?? NaN;
  const ratio = (s: Stat, over: SetupName = "vanilla") => median("ours", s) / median(over, s);
  // Run i of ours over run i of vanilla: with --together the two measured the same seconds of the same machine.
  const runByRun = (s: Stat, over: SetupName = "vanilla") =>
    spread(
      runs
        .filter((r) => r.setup === "ours")
        .map((r) => r[s] / (runs.find((x) => x.setup === over && x.run === r.run)?.[s] ?? NaN)),
    );
  const summary = {
    workload: "k6 room-chat (loadtest/room-chat.js)",
    date: new Date().toISOString(),
    commit: gitCommit(),
    quick,
    params: {
      runs: RUNS,
      durationS: DURATION_S,
      warmupS: SKIP_MS / 1000,
      roomSize: ROOM_SIZE,
      rooms: ROOMS,
      rate: RATE,
      replicas: REPLICAS,
    },
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? "unknown", memGiB: Math.round(totalmem() / 2 ** 30) },
    node: process.version,
    k6: spawnSync(K6, ["version"], { encoding: "utf8" }).stdout.trim().split("\n")[0],
    seconds: Math.round((Date.now() - started) / 1000),
    together: TOGETHER,
    oursOverVanilla: {
      replicaCpuUsPerDelivered: ratio("replicaCpuUsPerDelivered"),
      redisCpuUsPerDelivered: ratio("redisCpuUsPerDelivered"),
      runByRun: { replicaCpuUsPerDelivered: runByRun("replicaCpuUsPerDelivered"), p99: runByRun("p99") },
    },
    ...(WITH_RTT
      ? { oursOverVanillaRtt: { replicaCpuUsPerDelivered: ratio("replicaCpuUsPerDelivered", "vanilla-rtt") } }
      : {}),
    setups,
  };
  const table = renderTable(setups);
  const note =
    `k6 room-chat: ${ROOMS * ROOM_SIZE} VUs in ${ROOMS} rooms of ${ROOM_SIZE}, each sending ${RATE} msg/s ` +
    `(${(ROOMS * ROOM_SIZE * RATE * ROOM_SIZE).toLocaleString("en-US")} deliveries/s) for ${DURATION_S} s, through nginx ` +
    `(session-id routing), ${REPLICAS} replicas and one redis-server per cluster; ` +
    (TOGETHER
      ? `the clusters measured together in each run, by one k6 process driving both (one scenario per cluster, the ` +
        `same schedule, their senders interleaved), the start order alternating; `
      : `runs interleaved, order alternating; `) +
    `median (min–max) of the runs. CPU (user+sys of the 3 replicas, of Redis) over the steady send phase only ` +
    `(${SKIP_MS / 1000} s after the first message to the last sample while sending), per message delivered in it. ` +
    `Ours / vanilla (medians): replicas ${f(summary.oursOverVanilla.replicaCpuUsPerDelivered)}×, ` +
    `Redis ${f(summary.oursOverVanilla.redisCpuUsPerDelivered)}×; run by run, replicas ` +
    `${cell(summary.oursOverVanilla.runByRun.replicaCpuUsPerDelivered)}×, k6 p99 ${cell(summary.oursOverVanilla.runByRun.p99)}×` +
    (summary.oursOverVanillaRtt
      ? `; ours / vanilla-rtt (vanilla delivering on the sender's replica after one Redis round trip): replicas ` +
        `${f(summary.oursOverVanillaRtt.replicaCpuUsPerDelivered)}×`
      : "") +
    `. k6 shares the cores with the clusters: its CPU ` +
    `(cores, and share of the machine's busy CPU in the window) is a noise indicator, and it inflates the latencies. ` +
    `Other busy cores: the machine's busy CPU in the window outside the clusters and k6 (this harness, other ` +
    `processes), another noise indicator. Idle replica cores: the 3 replicas with no client, before k6 starts.`;
  const results = TOGETHER ? "bench/results/k6-chat-together-latest" : "bench/results/k6-chat-latest";
  console.log(`\n${note}\n\n${table}\n`);
  mkdirSync(join(ROOT, "bench/results"), { recursive: true });
  const json = JSON.stringify(summary, null, 2);
  writeFileSync(join(ROOT, `${results}.json`), json + "\n");
  writeFileSync(
    join(ROOT, `${results}.md`),
    `# k6 room-chat, ours vs vanilla, ${summary.date.slice(0, 10)}, commit ${summary.commit}\n\n` +
      `${summary.machine.cpus} cores (${summary.machine.model}), Node ${summary.node}, ${summary.k6}, ` +
      `${summary.seconds} s.\n\n${note}\n\n${table}\n`,
  );
  console.log(`wrote ${results}.md and ${results}.json`);
  // A cluster that lost, reordered or errored makes its CPU figure meaningless: fail the run (latency is not judged
  // here, it is k6's and the machine's as much as the servers').
  const broken = runs.filter((r) => r.deliveryRatio < 0.999 || r.offsetGaps > 0 || r.socketErrors > 0);
  if (broken.length > 0)
    throw new Error(
      `k6-chat: ${broken.map((r) => `${r.setup} run ${r.run}: delivered ${f(r.deliveryRatio * 100, 3)} %, ${r.offsetGaps} offset gaps, ${r.socketErrors} socket errors`).join("; ")}`,
    );
}

try {
  await main();
  await cleanupAll();
} catch (err) {
  // After a signal or the deadline, the failure is a consequence (children gone): abort() exits.
  if (!aborting) {
    console.error(err);
    await cleanupAll();
    killDescendants();
    process.exit(1);
  }
}
