/**
 * `npm run bench:metrics`: what counting costs per event, in µs, for the hand-written cells the server used
 * before prom-client and for prom-client's own calls, and what the shipped design costs per event (a cell
 * increment for the counter, one event in TIMING_SAMPLE_EVERY timed into a prom-client histogram), plus one
 * scrape. Bounded loops (fixed iteration counts, warm-up first), median of 5 rounds; a markdown table.
 * `--quick`: a tenth of the iterations.
 */
import { Counter, Histogram, Registry } from "prom-client";
import { createMetrics, TIMING_SAMPLE_EVERY } from "../src/metrics.js";

const quick = process.argv.includes("--quick");
const ITERATIONS = quick ? 200_000 : 2_000_000;
const ROUNDS = 5;

let sink = 0;

/** ns per call of `fn`, the median of ROUNDS rounds of ITERATIONS calls, after a warm-up round. */
function measure(fn: (i: number) => void, iterations = ITERATIONS): number {
  for (let i = 0; i < iterations / 10; i++) fn(i);
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) fn(i);
    rounds.push(Number(process.hrtime.bigint() - start) / iterations);
  }
  rounds.sort((a, b) => a - b);
  return rounds[Math.floor(ROUNDS / 2)] as number;
}

const registry = new Registry();
const counter = new Counter({ name: "c_total", help: "c", labelNames: ["event"], registers: [registry] });
const histogram = new Histogram({
  name: "h_seconds",
  help: "h",
  labelNames: ["event"],
  buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5],
  registers: [registry],
});
const boundCounter = counter.labels("echo");
const boundHistogram = histogram.labels("echo");
const cell = { value: 0 };

// The shipped metrics, driven the way src/events/handler.ts drives them.
const metrics = createMetrics({ replicaId: "bench", version: "0", connections: () => 0, ready: () => true });
const received = metrics.eventReceived("echo");
const handled = metrics.eventHandled("echo");
const shipped = () => {
  if (++received.value % TIMING_SAMPLE_EVERY !== 0) return;
  const start = performance.now();
  sink += start;
  handled((performance.now() - start) / 1000);
};
const timedEvery = () => {
  const start = performance.now();
  sink += start;
  boundHistogram.observe((performance.now() - start) / 1000);
};

const rows: Array<[string, number]> = [
  ["hand-written cell: `cell.value++` (before, and the counter now)", measure(() => void cell.value++)],
  ["prom-client counter, pre-bound child: `counter.labels(e).inc()`", measure(() => boundCounter.inc())],
  ["prom-client counter with labels: `counter.inc({ event })`", measure(() => counter.inc({ event: "echo" }))],
  ["prom-client histogram, pre-bound child: `observe(v)`", measure((i) => boundHistogram.observe((i % 1000) * 1e-6))],
  ["timing one event: 2 × `performance.now()` + `observe`", measure(timedEvery)],
  [`shipped, per event: cell++ and 1 in ${TIMING_SAMPLE_EVERY} timed`, measure(shipped)],
  ["room delivery, per sampled entry: `roomDelivered(s)`", measure((i) => metrics.roomDelivered((i % 100) * 1e-4))],
];

// One scrape of the shipped registry (with Node's default metrics), in µs: not per event, per scrape.
const scrapes = quick ? 20 : 200;
let text = "";
for (let i = 0; i < 5; i++) text = await metrics.render();
const start = process.hrtime.bigint();
for (let i = 0; i < scrapes; i++) text = await metrics.render();
const scrapeUs = Number(process.hrtime.bigint() - start) / scrapes / 1000;
metrics.close();

const fmt = (ns: number) => (ns / 1000).toFixed(4);
console.log(`metrics cost per call, Node ${process.version}, ${ITERATIONS} iterations × ${ROUNDS} rounds (median)\n`);
console.log("| operation | ns | µs |");
console.log("| --- | ---: | ---: |");
for (const [name, ns] of rows) console.log(`| ${name} | ${ns.toFixed(1)} | ${fmt(ns)} |`);
console.log(
  `\none scrape (render(), ${text.split("\n").length} lines with Node's default metrics): ${scrapeUs.toFixed(0)} µs`,
);
if (sink === -1) console.log(sink);
