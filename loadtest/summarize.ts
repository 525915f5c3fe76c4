/**
 * One markdown table from the k6 summaries scripts/ci-k6.sh writes (`k6 run --summary-export <dir>/<name>.json`):
 * per scenario, the latency trend in fractional milliseconds, delivery, errors and each threshold's verdict.
 *   npx tsx loadtest/summarize.ts .ci-work/k6
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

interface Metric {
  [stat: string]: number | Record<string, boolean> | undefined;
  thresholds?: Record<string, boolean>;
}
interface Export {
  metrics: Record<string, Metric>;
}

const SCENARIOS = [
  { name: "connect-storm", latency: "handshake_duration", success: "connect_success" },
  { name: "room-chat", latency: "room_message_latency", success: "room_delivery" },
  { name: "broadcast", latency: "broadcast_latency", success: "broadcast_delivery" },
] as const;

const dir = process.argv[2] ?? ".ci-work/k6";
const ms = (m: Metric | undefined, stat: string) => {
  const v = m?.[stat];
  return typeof v === "number" ? v.toFixed(2) : "–";
};
const count = (m: Metric | undefined) => (typeof m?.count === "number" ? m.count.toLocaleString("en-US") : "0");

const rows: string[] = [];
const verdicts: string[] = [];
for (const s of SCENARIOS) {
  const file = join(dir, `${s.name}.json`);
  if (!existsSync(file)) {
    rows.push(`| ${s.name} | (no summary) |  |  |  |  |  |  |  |`);
    continue;
  }
  const { metrics } = JSON.parse(readFileSync(file, "utf8")) as Export;
  const lat = metrics[s.latency];
  const ok = metrics[s.success];
  const passes = typeof ok?.passes === "number" ? ok.passes : 0;
  const fails = typeof ok?.fails === "number" ? ok.fails : 0;
  const rate = passes + fails > 0 ? ((100 * passes) / (passes + fails)).toFixed(3) : "–";
  const errors = s.name === "connect-storm" ? "–" : count(metrics.socket_errors);
  rows.push(
    `| ${s.name} | ${s.latency} | ${ms(lat, "med")} | ${ms(lat, "p(95)")} | ${ms(lat, "p(99)")} | ${ms(lat, "max")} | ` +
      `${rate} % (${passes.toLocaleString("en-US")}/${(passes + fails).toLocaleString("en-US")}) | ${errors} | ` +
      `${s.name === "room-chat" ? count(metrics.room_offset_gaps) : "–"} |`,
  );
  // Legacy summary export: a threshold's value is true when it was crossed.
  for (const [name, m] of Object.entries(metrics))
    for (const [expr, crossed] of Object.entries(m.thresholds ?? {}))
      verdicts.push(`${s.name}: ${name} ${expr} ${crossed ? "FAILED" : "ok"}`);
}

console.log(`| scenario | latency metric | p50 ms | p95 ms | p99 ms | max ms | delivered | errors | offset gaps |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.join("\n")}

${verdicts.map((v) => `- ${v}`).join("\n")}`);
