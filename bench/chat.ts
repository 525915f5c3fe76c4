/**
 * The "chat-rate" workload (`npm run bench -- --workload=chat`): rooms of `roomSize` members, clients spread
 * round-robin over the replicas (so a room's members spread over them), the first `senders` members of
 * every room send one `room-message` (with an acknowledgement) at a steady rate, staggered over the whole
 * run so that every message travels alone: no batching. Per setup: replica and Redis CPU per delivered
 * message (separately), delivered / expected, p50 / p99 latency, and p50 / p99 apart for the members on the
 * sender's replica and for those on the others (the append's round trip against the publish's hop). Setups are
 * interleaved run by run; the summary holds medians and the min–max of the runs.
 *
 * With `--baseline=<rev>`, setups named `<setup>@base` run that revision's src/ (bench/baseline.ts) in the
 * same rotation, and a second table gives after / before for each setup measured on both.
 *
 * Only `{ ok }` of the acks and the `room` / `message` fields of `room-message-received` are relied on:
 * the send time and the sender's replica travel inside the message text.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { pollUntil } from "../scripts/cluster/poll.js";
import { arg, cpuNanoseconds, intArg, machineCpu, median, percentile, processCounters } from "./proc.js";
import { startSetup, type RunningSetup, type SetupName, type SetupRef } from "./setups.js";
import { startWorker, type Worker } from "./workers.js";

const ROOT = new URL("../", import.meta.url).pathname;
const now = () => performance.timeOrigin + performance.now();

export const CHAT_SETUPS: SetupName[] = ["vanilla-cluster-3", "single", "cluster-3"];

export interface ChatParams {
  runs: number;
  clients: number;
  loadProcesses: number;
  roomSize: number;
  /** Senders per room (the first members of each room). */
  senders: number;
  /** Messages per second per sender. */
  ratePerSender: number;
  warmupMs: number;
  durationMs: number;
  /** Where each room's members connect (bench/load.ts): `spread` over the replicas, `local` together, or `one`. */
  placement: "spread" | "local" | "one";
  /** `--chat-together`: every setup of a run sends and is measured at the same time, each with its own load. */
  together: boolean;
}

export function chatParams(quick: boolean): ChatParams {
  // Messages per second per sender may be a fraction; every other option is an integer (intArg).
  const rawRate = arg("chat-rate") ?? "2";
  const rate = Number(rawRate);
  if (!/^\d+(\.\d+)?$/.test(rawRate) || rate < 0.1 || rate > 50) throw new Error("--chat-rate: expected 0.1..50");
  const p: ChatParams = {
    runs: intArg("runs", quick ? 2 : 3, 1, 10),
    clients: intArg("chat-clients", 200, 2, 5000),
    loadProcesses: 2,
    roomSize: intArg("chat-room-size", 20, 2, 1000),
    senders: intArg("chat-senders", 10, 1, 1000),
    ratePerSender: rate,
    // Each setup's servers start fresh per run; V8 compiles and collects in the background for tens of seconds
    // after (its worker threads: 29 → 12 → 9 ms/s over three 10 s windows, vanilla's 21 → 15 → 5). A long
    // warm-up measures the steady state a server that runs for hours is in.
    warmupMs: intArg("chat-warmup", 2, 1, 300) * 1000,
    durationMs: intArg("chat-seconds", quick ? 6 : 15, 1, 120) * 1000,
    placement: placementArg(),
    together: process.argv.includes("--chat-together"),
  };
  if (p.clients % (p.roomSize * p.loadProcesses) !== 0)
    throw new Error(`--chat-clients must be a multiple of ${p.loadProcesses} × the room size (${p.roomSize})`);
  if (p.senders > p.roomSize) throw new Error("--chat-senders must be at most the room size");
  return p;
}

function placementArg(): ChatParams["placement"] {
  const raw = arg("chat-placement") ?? "spread";
  if (raw !== "spread" && raw !== "local" && raw !== "one")
    throw new Error(`--chat-placement: expected spread, local or one, got "${raw}"`);
  return raw;
}

interface ChatStats {
  delivered: number;
  acked: number;
  failed: number;
  firstFailure: string | undefined;
}

export interface ChatRun {
  sent: number;
  expected: number;
  delivered: number;
  deliveryRatio: number;
  ackFailures: number;
  /** Messages sent per second over the measured phase (the target is rooms × senders × rate). */
  sendRate: number;
  /** CPU (user + system, all threads) of the replicas, per delivered message. */
  replicaCpuUsPerMsg: number;
  /** CPU of redis-server per delivered message; NaN without Redis. */
  redisCpuUsPerMsg: number;
  /**
   * CPU of the replicas that host no client (placement `one`: all but the first), per delivered message: what
   * a replica pays for rooms it has no member in. NaN when every replica hosts clients.
   */
  idleReplicaCpuUsPerMsg: number;
  /** write-family syscalls of the replicas per delivered message. */
  replicaWritesPerMsg: number;
  /** read-family syscalls and wake-ups (voluntary context switches) of the replicas per delivered message. */
  replicaReadsPerMsg: number;
  replicaWakeupsPerMsg: number;
  /** The share of the replicas' CPU spent in the kernel (system time), from the 10 ms ticks of /proc/<pid>/stat. */
  replicaSysShare: number;
  p50: number;
  p99: number;
  max: number;
  /** Deliveries to a member on another replica than the sender's; NaN with one replica. */
  remoteP99: number;
  remoteP50: number;
  remoteSamples: number;
  /** Deliveries to a member on the sender's own replica. */
  localP50: number;
  localP99: number;
  /**
   * Noise: cores busy during the measured phase outside the server processes (the load processes, the
   * orchestrator, and anything else on the machine), and cores stolen by the hypervisor.
   */
  otherCores: number;
  stealCores: number;
}

const stats = async (workers: Worker[]): Promise<ChatStats> => {
  const all = await Promise.all(workers.map((w) => w.ask<ChatStats>({ cmd: "stats" }, "stats")));
  return {
    delivered: all.reduce((sum, s) => sum + s.delivered, 0),
    acked: all.reduce((sum, s) => sum + s.acked, 0),
    failed: all.reduce((sum, s) => sum + s.failed, 0),
    firstFailure: all.find((s) => s.firstFailure)?.firstFailure,
  };
};

/** Waits (bounded) until `expected` deliveries and `sent` acks are in. */
function drain(workers: Worker[], expected: number, sent: number, ms: number): Promise<ChatStats> {
  return pollUntil(
    async () => {
      const s = await stats(workers);
      return s.delivered >= expected && s.acked + s.failed >= sent ? s : undefined;
    },
    { timeoutMs: ms, onTimeout: () => stats(workers) },
  );
}

/** One phase of steady sending from every load process, starting together; returns the messages sent. */
async function sendPhase(workers: Worker[], p: ChatParams, durationMs: number): Promise<number> {
  const startAt = now() + 300;
  const sent = await Promise.all(
    workers.map((w) =>
      w.ask<{ sent: number }>(
        {
          cmd: "chat",
          startAt,
          ratePerSender: p.ratePerSender,
          durationMs,
          totalSenders: (p.clients / p.roomSize) * p.senders,
        },
        "sent",
      ),
    ),
  );
  return sent.reduce((sum, s) => sum + s.sent, 0);
}

/** One setup with its load processes, connected and ready to send. */
interface Prepared {
  ref: SetupRef;
  setup: RunningSetup;
  workers: Worker[];
}

async function prepare(ref: SetupRef, p: ChatParams): Promise<Prepared> {
  const setup = await startSetup(ref.name, ref.root);
  const workers: Worker[] = [];
  try {
    workers.push(...(await Promise.all(Array.from({ length: p.loadProcesses }, startWorker))));
    const perProcess = p.clients / p.loadProcesses;
    await Promise.all(
      workers.map((w, i) =>
        w.ask(
          {
            cmd: "chat-connect",
            urls: setup.urls,
            count: perProcess,
            offset: i * perProcess,
            roomSize: p.roomSize,
            rooms: p.clients / p.roomSize,
            senders: p.senders,
            placement: p.placement,
          },
          "connected",
        ),
      ),
    );
  } catch (err) {
    await release({ ref, setup, workers });
    throw err;
  }
  return { ref, setup, workers };
}

async function release({ setup, workers }: Prepared): Promise<void> {
  await Promise.all(workers.map((w) => w.ask({ cmd: "close" }, "closed").catch(() => undefined)));
  await setup.stop();
}

const cpuOf = (pids: number[]) => pids.reduce((sum, pid) => sum + cpuNanoseconds(pid), 0);
const countersOf = (pids: number[]) =>
  pids.map(processCounters).reduce(
    (sum, c) => ({
      writes: sum.writes + c.writes,
      reads: sum.reads + c.reads,
      wakeups: sum.wakeups + c.wakeups,
      user: sum.user + c.user,
      sys: sum.sys + c.sys,
    }),
    { writes: 0, reads: 0, wakeups: 0, user: 0, sys: 0 },
  );

// Placement `one`: every replica but the first hosts no client.
const idlePidsOf = ({ setup }: Prepared, p: ChatParams) => (p.placement === "one" ? setup.replicaPids.slice(1) : []);

/** What one setup's processes have used so far. */
function snapshot(g: Prepared, p: ChatParams) {
  const { setup } = g;
  return {
    replicaCpu: cpuOf(setup.replicaPids),
    redisCpu: setup.redisPids.length > 0 ? cpuOf(setup.redisPids) : NaN,
    idleCpu: cpuOf(idlePidsOf(g, p)),
    counters: countersOf(setup.replicaPids),
  };
}

/**
 * Measures the prepared setups over one window: one alone (the rotation's default), or several at once
 * (`--chat-together`), so that every setup meets the same machine, whose speed drifts over minutes here.
 */
async function measureWindow(group: Prepared[], p: ChatParams): Promise<ChatRun[]> {
  // Warm-up (JIT, connections to Redis, subscriptions), not measured.
  await Promise.all(group.flatMap((g) => g.workers.map((w) => w.ask({ cmd: "reset", record: false }, "reset"))));
  const warm = await Promise.all(group.map((g) => sendPhase(g.workers, p, p.warmupMs)));
  await Promise.all(group.map((g, i) => drain(g.workers, (warm[i] as number) * p.roomSize, warm[i] as number, 5000)));

  await Promise.all(group.flatMap((g) => g.workers.map((w) => w.ask({ cmd: "reset", record: true }, "reset"))));
  const before = group.map((g) => snapshot(g, p));
  const machine0 = machineCpu();
  const t0 = now();
  const sent = await Promise.all(group.map((g) => sendPhase(g.workers, p, p.durationMs)));
  const sendSeconds = (now() - t0 - 300) / 1000;
  const drained = await Promise.all(
    group.map((g, i) => drain(g.workers, (sent[i] as number) * p.roomSize, sent[i] as number, 5000)),
  );
  const after = group.map((g) => snapshot(g, p));
  // Each setup's CPU over the window (nanoseconds), and the window's machine-wide figures below.
  const spent = group.map((_, i) => {
    const a = after[i] as ReturnType<typeof snapshot>;
    const b = before[i] as ReturnType<typeof snapshot>;
    return { replica: a.replicaCpu - b.replicaCpu, redis: a.redisCpu - b.redisCpu, idle: a.idleCpu - b.idleCpu };
  });
  const idleMs = now() - t0;
  // What the idle replicas spend with no traffic at all (timers, health checks, Redis heartbeats), sampled
  // after the run for as long as it lasted: subtracted, so their figure is what the traffic cost them.
  const quiet0 = group.map((g) => cpuOf(idlePidsOf(g, p)));
  if (p.placement === "one") await new Promise((resolve) => setTimeout(resolve, idleMs));
  const quiet = group.map((g, i) => cpuOf(idlePidsOf(g, p)) - (quiet0[i] as number));
  const machine1 = machineCpu();
  const elapsed = (now() - t0) / 1000;
  const serverCpu = spent.reduce((sum, x) => sum + (x.replica + (Number.isNaN(x.redis) ? 0 : x.redis)) / 1e9, 0);
  const otherCores = (machine1.busy - machine0.busy - serverCpu) / elapsed;
  const stealCores = (machine1.steal - machine0.steal) / elapsed;

  return Promise.all(
    group.map(async (g, i) => {
      const s = drained[i] as ChatStats;
      const b = before[i] as ReturnType<typeof snapshot>;
      const a = after[i] as ReturnType<typeof snapshot>;
      const used = spent[i] as (typeof spent)[number];
      if (s.firstFailure) console.log(`  ${g.ref.label}: ${s.failed} failed acks, first: ${s.firstFailure}`);
      const samples = await Promise.all(
        g.workers.map((w) =>
          w.ask<{ latencies: number[]; remoteLatencies: number[]; localLatencies: number[] }>(
            { cmd: "latencies" },
            "latencies",
          ),
        ),
      );
      const all = samples.flatMap((x) => x.latencies).sort((x, y) => x - y);
      const remote = samples.flatMap((x) => x.remoteLatencies).sort((x, y) => x - y);
      const local = samples.flatMap((x) => x.localLatencies).sort((x, y) => x - y);
      const delivered = Math.max(1, s.delivered);
      const expected = (sent[i] as number) * p.roomSize;
      const idleCpu = idlePidsOf(g, p).length > 0 ? used.idle - (quiet[i] as number) : NaN;
      const userCpu = a.counters.user - b.counters.user;
      const sysCpu = a.counters.sys - b.counters.sys;
      return {
        sent: sent[i] as number,
        expected,
        delivered: s.delivered,
        deliveryRatio: s.delivered / expected,
        ackFailures: s.failed + ((sent[i] as number) - s.acked - s.failed),
        sendRate: (sent[i] as number) / sendSeconds,
        replicaCpuUsPerMsg: used.replica / 1000 / delivered,
        redisCpuUsPerMsg: used.redis / 1000 / delivered,
        idleReplicaCpuUsPerMsg: idleCpu / 1000 / delivered,
        replicaWritesPerMsg: (a.counters.writes - b.counters.writes) / delivered,
        replicaReadsPerMsg: (a.counters.reads - b.counters.reads) / delivered,
        replicaWakeupsPerMsg: (a.counters.wakeups - b.counters.wakeups) / delivered,
        replicaSysShare: sysCpu / (userCpu + sysCpu),
        p50: percentile(all, 50),
        p99: percentile(all, 99),
        max: percentile(all, 100),
        remoteP99: g.setup.urls.length > 1 ? percentile(remote, 99) : NaN,
        remoteP50: g.setup.urls.length > 1 ? percentile(remote, 50) : NaN,
        remoteSamples: remote.length,
        localP50: percentile(local, 50),
        localP99: percentile(local, 99),
        otherCores,
        stealCores,
      };
    }),
  );
}

/** Starts the setups (all at once when `refs` has several), measures them over one window, and stops them. */
async function measureChat(refs: SetupRef[], p: ChatParams): Promise<ChatRun[]> {
  const group: Prepared[] = [];
  try {
    for (const ref of refs) group.push(await prepare(ref, p));
    return await measureWindow(group, p);
  } finally {
    await Promise.all(group.map(release));
  }
}

/** The median of the runs and their spread. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

const METRICS = [
  "replicaCpuUsPerMsg",
  "redisCpuUsPerMsg",
  "idleReplicaCpuUsPerMsg",
  "replicaWritesPerMsg",
  "replicaReadsPerMsg",
  "replicaWakeupsPerMsg",
  "replicaSysShare",
  "deliveryRatio",
  "sendRate",
  "p50",
  "p99",
  "remoteP99",
  "remoteP50",
  "localP50",
  "localP99",
  "otherCores",
] as const;
type Metric = (typeof METRICS)[number];

export interface ChatSetupSummary {
  /** The label: `cluster-3`, or `cluster-3 @42bf97f` for a --baseline setup. */
  name: string;
  setup: SetupName;
  /** The commit its replicas ran: the worktree's (--baseline, --after), or this checkout's. */
  commit: string;
  stats: Record<Metric, Spread>;
  ackFailures: number;
  runs: ChatRun[];
}

export interface ChatSummary {
  workload: "chat-rate";
  date: string;
  commit: string;
  /** --baseline: the "before" revision's short commit id (`commit` is the "after" one). */
  baseline?: string;
  quick: boolean;
  params: ChatParams & { rooms: number; messagesPerSec: number; deliveriesPerSec: number };
  machine: { cpus: number; model: string; memGiB: number };
  node: string;
  seconds: number;
  setups: ChatSetupSummary[];
  /** After / before for each setup measured on both this checkout and the baseline. */
  comparisons?: ChatComparison[];
}

const COMPARED = ["replicaCpuUsPerMsg", "redisCpuUsPerMsg", "replicaWritesPerMsg", "p50", "p99", "remoteP99"] as const;
type Compared = (typeof COMPARED)[number];

/**
 * One metric after / before: the ratio of the two medians, and the run-by-run ratios (run i of this
 * checkout over run i of the baseline, measured minutes apart in the same rotation) as median and min–max.
 */
export interface Ratio {
  ofMedians: number;
  paired: Spread;
}

export interface ChatComparison {
  setup: SetupName;
  before: string;
  after: string;
  ratios: Record<Compared, Ratio>;
}

export function spread(values: number[]): Spread {
  const finite = values.filter((v) => !Number.isNaN(v));
  if (finite.length === 0) return { median: NaN, min: NaN, max: NaN };
  return { median: median(finite), min: Math.min(...finite), max: Math.max(...finite) };
}

export const f = (n: number, digits = 2) => (Number.isNaN(n) ? "–" : n.toFixed(digits));
export const cell = (s: Spread, digits = 2, scale = 1) =>
  Number.isNaN(s.median)
    ? "–"
    : s.min === s.max
      ? f(s.median * scale, digits)
      : `${f(s.median * scale, digits)} (${f(s.min * scale, digits)}–${f(s.max * scale, digits)})`;

function compare(before: ChatSetupSummary, after: ChatSetupSummary): ChatComparison {
  const ratio = (m: Compared): Ratio => {
    const n = Math.min(before.runs.length, after.runs.length);
    const paired = Array.from(
      { length: n },
      (_, i) => (after.runs[i] as ChatRun)[m] / (before.runs[i] as ChatRun)[m],
    ).filter(Number.isFinite);
    return { ofMedians: after.stats[m].median / before.stats[m].median, paired: spread(paired) };
  };
  return {
    setup: after.setup,
    before: before.name,
    after: after.name,
    ratios: Object.fromEntries(COMPARED.map((m) => [m, ratio(m)])) as Record<Compared, Ratio>,
  };
}

const ratioCell = (r: Ratio) =>
  Number.isNaN(r.ofMedians) ? "–" : `${f(r.ofMedians)} (${f(r.paired.median)}; ${f(r.paired.min)}–${f(r.paired.max)})`;

export function renderComparisonTable(summary: ChatSummary): string {
  if (!summary.comparisons?.length) return "";
  const rows = summary.comparisons.map((c) => {
    const r = c.ratios;
    return (
      `| ${c.after} / ${c.before} | ${ratioCell(r.replicaCpuUsPerMsg)} | ${ratioCell(r.redisCpuUsPerMsg)} | ` +
      `${ratioCell(r.replicaWritesPerMsg)} | ${ratioCell(r.p50)} | ${ratioCell(r.p99)} | ${ratioCell(r.remoteP99)} |`
    );
  });
  return [
    `After / before (commit ${summary.commit} over the baseline ${summary.baseline}): the ratio of ` +
      "the medians, then (the median; min–max) of the run-by-run ratios (run i over run i of the same rotation).",
    "",
    "| after / before | replica CPU / delivered | Redis CPU / delivered | replica writes / delivered | p50 | p99 | cross-replica p99 |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows,
  ].join("\n");
}

const PLACEMENT_TEXT: Record<ChatParams["placement"], string> = {
  spread: "Each room's members are spread over every replica.",
  local: "Each room's members are on one replica (room r on replica r mod N), rooms spread evenly.",
  one:
    "Every client is on the first replica; the others host no member of any room. Idle replicas' CPU: what " +
    "those replicas spend on rooms they have no member in (their CPU during the run minus their CPU with no " +
    "traffic at all, sampled after the run for as long).",
};

export function renderChatTable(summary: ChatSummary): string {
  const p = summary.params;
  const rows = summary.setups.map((s) => {
    const x = s.stats;
    return (
      `| ${s.name} | ${s.runs.length} | ${cell(x.replicaCpuUsPerMsg)} | ${cell(x.redisCpuUsPerMsg)} | ` +
      `${cell(x.replicaWritesPerMsg, 3)} | ${cell(x.deliveryRatio, 2, 100)} % | ${cell(x.p50)} | ${cell(x.p99)} | ` +
      `${cell(x.localP50)} / ${cell(x.localP99)} | ${cell(x.remoteP50)} / ${cell(x.remoteP99)} | ` +
      `${cell(x.sendRate, 0)} | ${s.ackFailures} | ${cell(x.otherCores)} |` +
      (p.placement === "one" ? ` ${cell(x.idleReplicaCpuUsPerMsg, 3)} |` : "")
    );
  });
  const idle = p.placement === "one";
  return [
    `chat-rate: ${p.clients} clients in ${p.rooms} rooms of ${p.roomSize}, ${p.senders} senders per room at ` +
      `${p.ratePerSender} msg/s each (${p.messagesPerSec} msg/s, ${p.deliveriesPerSec.toLocaleString("en-US")} deliveries/s), ` +
      `${p.durationMs / 1000} s measured after ${p.warmupMs / 1000} s of warm-up; median (min–max) of the runs. ` +
      "Other busy cores: CPU used on the machine outside the server processes during the measured phase " +
      "(load generators, orchestrator and anything else running): a noise indicator. " +
      PLACEMENT_TEXT[p.placement] +
      (p.together
        ? " The setups of a run were measured together, over the same window, each with its own load processes."
        : ""),
    "",
    "| setup | runs | replica CPU µs / delivered | Redis CPU µs / delivered | replica writes / delivered | delivered / expected | p50 ms | p99 ms | sender's replica p50 / p99 ms | other replicas p50 / p99 ms | sent msg/s | failed acks | other busy cores |" +
      (idle ? " idle replicas' CPU µs / delivered |" : ""),
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" +
      (idle ? " ---: |" : ""),
    ...rows,
  ].join("\n");
}

function gitCommit(): string {
  try {
    const sha = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--", "src"], { cwd: ROOT, encoding: "utf8" }).trim();
    return dirty ? `${sha} (src/ modified)` : sha;
  } catch {
    return "unknown";
  }
}

/** Runs the chat workload on `setups`, interleaved run by run; prints and writes bench/results/chat-latest.*. */
export async function runChat(
  setups: SetupRef[],
  quick: boolean,
  revisions: { baseline?: string; after?: string } = {},
  /** `name`: bench/results/<name>-latest.{md,json}; `params`: over the command line's. */
  options: { name?: string; params?: Partial<ChatParams> } = {},
): Promise<ChatSummary> {
  const { baseline } = revisions;
  const name = options.name ?? "chat";
  const started = Date.now();
  const p = { ...chatParams(quick), ...options.params };
  const rooms = p.clients / p.roomSize;
  const messagesPerSec = rooms * p.senders * p.ratePerSender;
  console.log(
    `chat-rate: ${quick ? "quick" : "full"} run, ${p.runs} runs per setup (${setups.map((s) => s.label).join(", ")}), ` +
      `${messagesPerSec} msg/s to rooms of ${p.roomSize} for ${p.durationMs / 1000} s`,
  );
  const results = new Map<SetupRef, ChatRun[]>(setups.map((ref) => [ref, []]));
  for (let run = 0; run < p.runs; run++) {
    // Rotate the order so no setup always runs first (or last) on a warming machine.
    const order = setups.map((_, i) => setups[(i + run) % setups.length] as SetupRef);
    const windows = p.together ? [order] : order.map((ref) => [ref]);
    for (const refs of windows) {
      const runs = await measureChat(refs, p);
      refs.forEach((ref, i) => {
        const r = runs[i] as ChatRun;
        results.get(ref)?.push(r);
        console.log(
          `chat run ${run + 1} ${ref.label.padEnd(17)} replicas ${f(r.replicaCpuUsPerMsg)} µs/delivered, Redis ${f(r.redisCpuUsPerMsg)} µs, ` +
            `${f(r.replicaWritesPerMsg, 3)} writes, ${f(r.replicaReadsPerMsg, 3)} reads, ` +
            `${f(r.replicaWakeupsPerMsg, 3)} wake-ups, ${f(r.replicaSysShare * 100, 0)} % sys, delivered ${f(r.deliveryRatio * 100)} %, ` +
            `p50 ${f(r.p50)} ms, p99 ${f(r.p99)} ms, cross-replica p50/p99 ${f(r.remoteP50)}/${f(r.remoteP99)} ms, ` +
            `own-replica p50/p99 ${f(r.localP50)}/${f(r.localP99)} ms, ${f(r.sendRate, 0)} msg/s sent, ` +
            `other busy cores ${f(r.otherCores)}, steal ${f(r.stealCores)}`,
        );
      });
    }
  }
  const commit = revisions.after ?? gitCommit();
  const summary: ChatSummary = {
    workload: "chat-rate",
    date: new Date().toISOString(),
    commit,
    baseline,
    quick,
    params: { ...p, rooms, messagesPerSec, deliveriesPerSec: messagesPerSec * p.roomSize },
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? "unknown", memGiB: Math.round(totalmem() / 2 ** 30) },
    node: process.version,
    seconds: Math.round((Date.now() - started) / 1000),
    setups: setups.map((ref) => {
      const runs = results.get(ref) ?? [];
      return {
        name: ref.label,
        setup: ref.name,
        commit: ref.rev ?? commit,
        stats: Object.fromEntries(METRICS.map((m) => [m, spread(runs.map((r) => r[m]))])) as Record<Metric, Spread>,
        ackFailures: runs.reduce((sum, r) => sum + r.ackFailures, 0),
        runs,
      };
    }),
  };
  summary.comparisons = summary.setups.flatMap((before, i) => {
    const ref = setups[i] as SetupRef;
    const after = summary.setups.find((s, j) => setups[j]?.base === false && s.setup === ref.name);
    return ref.base && after ? [compare(before, after)] : [];
  });
  const comparison = renderComparisonTable(summary);
  const table = renderChatTable(summary) + (comparison ? `\n\n${comparison}` : "");
  console.log(`\n${table}\n`);
  mkdirSync(`${ROOT}bench/results`, { recursive: true });
  const json = JSON.stringify(summary, null, 2);
  writeFileSync(`${ROOT}bench/results/${name}-latest.json`, json + "\n");
  writeFileSync(
    `${ROOT}bench/results/${name}-latest.md`,
    `# chat-rate, ${summary.date.slice(0, 10)}, commit ${summary.commit}` +
      `${baseline ? ` against ${baseline}` : ""}\n\n` +
      `${summary.machine.cpus} cores (${summary.machine.model}), Node ${summary.node}, ${summary.seconds} s.\n\n` +
      `${table}\n\n\`\`\`json\n${json}\n\`\`\`\n`,
  );
  console.log(`wrote bench/results/${name}-latest.md and bench/results/${name}-latest.json`);
  return summary;
}
