/**
 * `npm run bench [-- --quick] [-- --publish]`: every setup on the same workload in one run, from
 * separate load processes over loopback. Prints a markdown table, writes bench/results/latest.json and
 * the chart; --publish also rewrites docs/benchmarks.md.
 *
 * `--workload=chat` runs the steady chat-rate room workload instead (bench/chat.ts; default setups
 * vanilla-cluster-3, single, cluster-3; writes bench/results/chat-latest.{md,json}); `--workload=all` runs
 * both, the fan-out one first. Without the option only the fan-out workload runs, as before.
 *
 * `--baseline=<rev>` (chat workload): setups named `<setup>@base` (single, cluster-2, cluster-3) run that git
 * revision's src/ from a temporary worktree, interleaved with the others, e.g.
 * `--workload=chat --baseline=42bf97f --setups=cluster-3@base,cluster-3,single@base,single,vanilla-cluster-3`
 * (the default setups with --baseline). `--after=<rev>` runs the plain ones of ours from a worktree of that
 * revision too, instead of this working tree (which may be edited during a long run). The worktrees are
 * removed at the end, also on failure. `--chat-together` measures the setups of a run at the same time, each
 * with its own load processes, rather than one after the other: a comparison that drifts less with the machine.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { pollUntil } from "../scripts/cluster/poll.js";
import { arg, intArg, median, percentile, processCounters, rssBytes, totalCpu, type ProcessCounters } from "./proc.js";
import { renderChart, renderDoc, renderTable, type SetupSummary, type Summary } from "./report.js";
import { addBaseline, type Baseline } from "./baseline.js";
import { CHAT_SETUPS, runChat } from "./chat.js";
import { runSharding } from "./sharding.js";
import { parseSetup, startSetup, type RunningSetup, type SetupName } from "./setups.js";
import { startWorker, type Worker } from "./workers.js";

const quick = process.argv.includes("--quick");
const publish = process.argv.includes("--publish");
const verbose = process.argv.includes("--verbose");
const P = {
  runs: intArg("runs", 3, 1, 10),
  clients: 1000,
  loadProcesses: 2,
  window: 32,
  saturateMs: quick ? 1500 : 4000,
  rooms: 20,
  steadyRate: 100,
  steadyMs: quick ? 1500 : 4000,
  idleConnections: quick ? 3000 : 10_000,
  idleProcesses: quick ? 2 : 4,
};
const ALL_SETUPS: SetupName[] = ["raw-ws", "raw-ws-batched", "single", "cluster-2", "cluster-3"];
const WORKLOAD = arg("workload") ?? "fanout";
if (!["fanout", "chat", "sharding", "all"].includes(WORKLOAD))
  throw new Error(`--workload: fanout, chat, sharding or all, not "${WORKLOAD}"`);
const BASELINE = arg("baseline");
const AFTER = arg("after");
if ((BASELINE ?? AFTER) !== undefined && WORKLOAD !== "chat")
  throw new Error("--baseline and --after need --workload=chat");
// --setups=raw-ws,single and --runs=N narrow a run while working on one figure; published runs use all.
const SETUP_SPECS = arg("setups")?.split(",");
// Checked before anything starts: a baseline entry is only resolved once the worktree exists.
const PROBE: Baseline = { rev: "", sha: "", root: "", remove: () => undefined };
for (const spec of SETUP_SPECS ?? []) parseSetup(spec, BASELINE === undefined ? undefined : PROBE);
if (WORKLOAD !== "chat" && SETUP_SPECS?.some((s) => s.includes("@")))
  throw new Error("<setup>@base: only with --workload=chat --baseline=<rev>");
const SETUPS = (SETUP_SPECS as SetupName[] | undefined) ?? ALL_SETUPS;
const ROOT = new URL("../", import.meta.url).pathname;

async function connectWorkers(setup: RunningSetup, clients: number, count: number, withPublisher: boolean) {
  const workers = await Promise.all(Array.from({ length: count }, startWorker));
  await Promise.all(
    workers.map((w, i) =>
      w.ask(
        {
          cmd: "connect",
          urls: setup.urls,
          count: clients / count,
          offset: (i * clients) / count,
          mode: setup.mode,
          rooms: P.rooms,
          publisherUrl: withPublisher && i === 0 ? setup.urls[0] : undefined,
        },
        "connected",
      ),
    ),
  );
  return workers;
}

const delivered = async (workers: Worker[]) =>
  (await Promise.all(workers.map((w) => w.ask<{ delivered: number }>({ cmd: "stats" }, "stats")))).reduce(
    (sum, s) => sum + s.delivered,
    0,
  );

function drain(workers: Worker[], expected: number, ms = 30_000): Promise<number> {
  return pollUntil(
    async () => {
      const got = await delivered(workers);
      return got >= expected ? got : undefined;
    },
    { timeoutMs: ms, onTimeout: () => delivered(workers) },
  );
}

/** --verbose: where each server process spent the saturation phase, per delivered message. */
function printProcessCounters(name: string, pids: number[], before: ProcessCounters[], delivered: number) {
  pids.forEach((pid, i) => {
    const now = processCounters(pid);
    const then = before[i] as ProcessCounters;
    const per = (v: number) => ((v * 1e6) / delivered).toFixed(2);
    console.log(
      `  ${name} pid ${pid}: user ${per(now.user - then.user)} µs, sys ${per(now.sys - then.sys)} µs, ` +
        `${((now.writes - then.writes) / delivered).toFixed(3)} writes per delivered message`,
    );
  });
}

/** One run's figures for one setup; the summary holds their medians. */
type Throughput = Omit<SetupSummary, "name" | "rssPerConn" | "runs">;

async function measureThroughput(name: SetupName): Promise<Throughput> {
  const setup = await startSetup(name);
  const workers = await connectWorkers(setup, P.clients, P.loadProcesses, true);
  // Every client and the publisher get each broadcast; a room message reaches its room and the publisher.
  const everyone = P.clients + 1;
  const roomSize = P.clients / P.rooms + 1;
  const [publisher] = workers as [Worker];
  try {
    // Warm-up (JIT, buffers), not measured.
    await Promise.all(workers.map((w) => w.ask({ cmd: "reset", record: false }, "reset")));
    const warm = await publisher.ask<{ sent: number }>({ cmd: "saturate", durationMs: 500, window: P.window }, "sent");
    await drain(workers, warm.sent * everyone);

    await Promise.all(workers.map((w) => w.ask({ cmd: "reset", record: false }, "reset")));
    // --phase=steady skips saturation, so a CPU profile (BENCH_CPU_PROF) shows the steady rate alone.
    const saturateMs = arg("phase") === "steady" ? 0 : P.saturateMs;
    const cpu0 = totalCpu(setup.pids);
    const counters0 = setup.pids.map(processCounters);
    const t0 = performance.now();
    const { sent } = await publisher.ask<{ sent: number }>(
      { cmd: "saturate", durationMs: saturateMs, window: P.window },
      "sent",
    );
    const got = await drain(workers, sent * everyone);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = totalCpu(setup.pids) - cpu0;
    const writes = setup.pids.reduce(
      (sum, pid, i) => sum + processCounters(pid).writes - (counters0[i]?.writes ?? 0),
      0,
    );
    if (verbose) printProcessCounters(name, setup.pids, counters0, got);

    await Promise.all(workers.map((w) => w.ask({ cmd: "reset", record: true }, "reset")));
    const steady = await publisher.ask<{ sent: number }>(
      { cmd: "steady", rate: P.steadyRate, durationMs: P.steadyMs },
      "sent",
    );
    await drain(workers, steady.sent * roomSize, 10_000);
    const samples = await Promise.all(
      workers.map((w) => w.ask<{ latencies: number[]; remoteLatencies: number[] }>({ cmd: "latencies" }, "latencies")),
    );
    const all = samples.flatMap((s) => s.latencies).sort((a, b) => a - b);
    const remote = samples.flatMap((s) => s.remoteLatencies).sort((a, b) => a - b);
    return {
      deliveredPerSec: got / seconds,
      cpuUsPerMsg: (cpu * 1e6) / got,
      writesPerMsg: writes / got,
      deliveryRatio: got / (sent * everyone),
      p50: percentile(all, 50),
      p99: percentile(all, 99),
      remoteP99: percentile(remote, 99),
    };
  } finally {
    await Promise.all(workers.map((w) => w.ask({ cmd: "close" }, "closed").catch(() => undefined)));
    await setup.stop();
  }
}

async function measureIdleRss(name: SetupName): Promise<number> {
  const setup = await startSetup(name);
  try {
    await new Promise((r) => setTimeout(r, 1000));
    const before = rssBytes(setup.mainPid);
    const workers = await connectWorkers(setup, P.idleConnections, P.idleProcesses, false);
    await new Promise((r) => setTimeout(r, 2000));
    const after = rssBytes(setup.mainPid);
    await Promise.all(workers.map((w) => w.ask({ cmd: "close" }, "closed").catch(() => undefined)));
    return (after - before) / P.idleConnections;
  } finally {
    await setup.stop();
  }
}

async function main() {
  const started = Date.now();
  console.log(`bench: ${quick ? "quick" : "full"} run, ${P.runs} runs per setup, ${P.clients} clients`);
  const results: Record<SetupName, Throughput[]> = {
    "raw-ws": [],
    "raw-ws-batched": [],
    vanilla: [],
    "vanilla-cluster-2": [],
    "vanilla-cluster-3": [],
    "vanilla-rtt-cluster-3": [],
    single: [],
    "cluster-2": [],
    "cluster-3": [],
    "cluster-rc-2": [],
    "cluster-rc-3": [],
  };
  const rss: Partial<Record<SetupName, number[]>> = { "raw-ws": [], vanilla: [], single: [] };
  for (let run = 0; run < P.runs; run++) {
    // Rotate the order so no setup always runs first (or last) on a warming machine.
    const order = SETUPS.map((_, i) => SETUPS[(i + run) % SETUPS.length] as SetupName);
    for (const name of order) {
      const r = await measureThroughput(name);
      results[name].push(r);
      console.log(
        `run ${run + 1} ${name.padEnd(14)} ${Math.round(r.deliveredPerSec)} msg/s, ${r.cpuUsPerMsg.toFixed(2)} µs CPU/msg, ` +
          `${r.writesPerMsg.toFixed(3)} writes/msg, ` +
          `p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, delivered ${(r.deliveryRatio * 100).toFixed(2)} %`,
      );
    }
    for (const name of (["raw-ws", "vanilla", "single"] as const).filter((n) => SETUPS.includes(n))) {
      const perConn = await measureIdleRss(name);
      rss[name]?.push(perConn);
      console.log(`run ${run + 1} ${name.padEnd(14)} RSS ${(perConn / 1024).toFixed(2)} KiB per idle connection`);
    }
  }
  const summary: Summary = {
    date: new Date().toISOString(),
    quick,
    params: P,
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? "unknown", memGiB: Math.round(totalmem() / 2 ** 30) },
    node: process.version,
    seconds: Math.round((Date.now() - started) / 1000),
    setups: SETUPS.map((name) => ({
      name,
      deliveredPerSec: median(results[name].map((r) => r.deliveredPerSec)),
      cpuUsPerMsg: median(results[name].map((r) => r.cpuUsPerMsg)),
      writesPerMsg: median(results[name].map((r) => r.writesPerMsg)),
      deliveryRatio: median(results[name].map((r) => r.deliveryRatio)),
      p50: median(results[name].map((r) => r.p50)),
      p99: median(results[name].map((r) => r.p99)),
      remoteP99: median(results[name].map((r) => r.remoteP99)),
      rssPerConn: rss[name] ? median(rss[name]) : undefined,
      runs: results[name],
    })),
  };
  const table = renderTable(summary);
  console.log(`\n${table}`);
  mkdirSync(`${ROOT}bench/results`, { recursive: true });
  writeFileSync(`${ROOT}bench/results/latest.json`, JSON.stringify(summary, null, 2) + "\n");
  writeFileSync(`${ROOT}bench/results/latest.svg`, renderChart(summary));
  if (publish) publishDocs(summary);
}

function publishDocs(summary: Summary): void {
  mkdirSync(`${ROOT}docs`, { recursive: true });
  const analysis = readFileSync(`${ROOT}bench/analysis.md`, "utf8");
  writeFileSync(`${ROOT}docs/benchmark-results.json`, JSON.stringify(summary, null, 2) + "\n");
  writeFileSync(`${ROOT}docs/benchmark-chart.svg`, renderChart(summary));
  writeFileSync(`${ROOT}docs/benchmarks.md`, renderDoc(summary, renderTable(summary), analysis));
  console.log("wrote docs/benchmarks.md, docs/benchmark-chart.svg and docs/benchmark-results.json");
}

// --render rewrites the published page from docs/benchmark-results.json without measuring again.
if (process.argv.includes("--render")) {
  publishDocs(JSON.parse(readFileSync(`${ROOT}docs/benchmark-results.json`, "utf8")) as Summary);
} else {
  if (WORKLOAD === "fanout" || WORKLOAD === "all") await main();
  if (WORKLOAD === "chat" || WORKLOAD === "all") await chat();
  if (WORKLOAD === "sharding" || WORKLOAD === "all") await runSharding(quick);
}

async function chat(): Promise<void> {
  // Ctrl-C: exit through process.exit, so the worktrees' exit hooks remove them.
  const interrupted = () => process.exit(130);
  process.once("SIGINT", interrupted).once("SIGTERM", interrupted);
  const worktrees: Baseline[] = [];
  try {
    const add = (role: string, rev: string | undefined) => {
      if (rev === undefined) return undefined;
      const tree = addBaseline(rev);
      worktrees.push(tree);
      console.log(`${role}: ${tree.rev} (${tree.sha}) checked out in ${tree.root}`);
      return tree;
    };
    const baseline = add("baseline", BASELINE);
    const after = add("after", AFTER);
    const defaults = baseline
      ? CHAT_SETUPS.flatMap((name) => (name.startsWith("vanilla") ? [name] : [`${name}@base`, name]))
      : CHAT_SETUPS;
    const refs = (SETUP_SPECS ?? defaults).map((spec) => parseSetup(spec, baseline, after));
    await runChat(refs, quick, { baseline: baseline?.sha, after: after?.sha });
  } finally {
    for (const tree of worktrees) tree.remove();
    process.off("SIGINT", interrupted).off("SIGTERM", interrupted);
  }
}
