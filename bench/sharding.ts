/**
 * The sharding workload (`npm run bench -- --workload=sharding`): the chat-rate workload (bench/chat.ts) with
 * each room's members on one replica, on three kinds of cluster:
 * - `vanilla-cluster-N`: Socket.IO with the classic Redis adapter, which sends every room message to every
 *   replica (one channel pattern for all);
 * - `cluster-N`: ours on one Redis: room messages on one channel per room, subscribed only by replicas with
 *   members in it;
 * - `cluster-rc-N`: ours on a Redis Cluster (3 masters, 3 replicas): the same per-room channels, sharded
 *   (SSUBSCRIBE/SPUBLISH), so each message is carried by its room's shard alone.
 *
 * Two figures, each the medians (and spread) of interleaved runs:
 * 1. Idle replicas: every client on the first replica; the CPU the other replicas spend per delivered message
 *    is what a replica pays for rooms it has no member in. Goal ≈ 0 for ours.
 * 2. Scaling: rooms spread evenly, each on one replica; CPU per delivered message of 3 replicas over 2.
 *    Goal ≤ 1.05 for ours (the classic adapter makes every replica pay for every message).
 */
import { writeFileSync } from "node:fs";
import { runChat, type ChatSummary } from "./chat.js";
import { parseSetup, type SetupName } from "./setups.js";

const ROOT = new URL("../", import.meta.url).pathname;

const IDLE_SETUPS: SetupName[] = ["vanilla-cluster-3", "cluster-3", "cluster-rc-3"];
const SCALE_SETUPS: SetupName[] = [
  "vanilla-cluster-2",
  "vanilla-cluster-3",
  "cluster-2",
  "cluster-3",
  "cluster-rc-2",
  "cluster-rc-3",
];

export interface ShardingSummary {
  idle: ChatSummary;
  scale: ChatSummary;
  /** Replica CPU per delivered message, 3 replicas over 2: ratio of the medians, and run by run (median, min–max). */
  scaling: Array<{ family: string; ofMedians: number; paired: { median: number; min: number; max: number } }>;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

function scaling(summary: ChatSummary): ShardingSummary["scaling"] {
  return ["vanilla-cluster", "cluster", "cluster-rc"].flatMap((family) => {
    const two = summary.setups.find((s) => s.setup === `${family}-2`);
    const three = summary.setups.find((s) => s.setup === `${family}-3`);
    if (!two || !three) return [];
    const n = Math.min(two.runs.length, three.runs.length);
    const paired = Array.from(
      { length: n },
      (_, i) => (three.runs[i]?.replicaCpuUsPerMsg as number) / (two.runs[i]?.replicaCpuUsPerMsg as number),
    );
    return [
      {
        family,
        ofMedians: three.stats.replicaCpuUsPerMsg.median / two.stats.replicaCpuUsPerMsg.median,
        paired: { median: median(paired), min: Math.min(...paired), max: Math.max(...paired) },
      },
    ];
  });
}

export function renderScaling(rows: ShardingSummary["scaling"]): string {
  const f = (n: number) => n.toFixed(2);
  return [
    "| family | replica CPU / delivered, 3 replicas ÷ 2 (ratio of medians) | run by run: median (min–max) |",
    "| --- | ---: | ---: |",
    ...rows.map(
      (r) =>
        `| ${r.family}-3 ÷ ${r.family}-2 | ${f(r.ofMedians)} | ${f(r.paired.median)} (${f(r.paired.min)}–${f(r.paired.max)}) |`,
    ),
  ].join("\n");
}

export async function runSharding(quick: boolean): Promise<ShardingSummary> {
  const refs = (names: SetupName[]) => names.map((name) => parseSetup(name, undefined));
  // One room per replica would leave the figures to a handful of sockets: keep the chat defaults (200 clients in
  // rooms of 20, 10 senders each at 2 msg/s), only the placement changes.
  const idle = await runChat(refs(IDLE_SETUPS), quick, {}, { name: "sharding-idle", params: { placement: "one" } });
  const scale = await runChat(
    refs(SCALE_SETUPS),
    quick,
    {},
    { name: "sharding-scale", params: { placement: "local" } },
  );
  const summary: ShardingSummary = { idle, scale, scaling: scaling(scale) };
  const table = renderScaling(summary.scaling);
  console.log(`\n${table}\n`);
  writeFileSync(`${ROOT}bench/results/sharding-latest.json`, JSON.stringify(summary, null, 2) + "\n");
  writeFileSync(`${ROOT}bench/results/sharding-latest.md`, `# sharding, ${idle.date.slice(0, 10)}\n\n${table}\n`);
  console.log("wrote bench/results/sharding-latest.md and bench/results/sharding-latest.json");
  return summary;
}
