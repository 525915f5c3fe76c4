/**
 * `npm run bench:fsync [-- --runs=3 --sequential=2000 --concurrent=20000 --in-flight=64]`: what
 * `appendfsync always` costs the room history against `appendfsync everysec`. Two redis-servers with
 * append-only persistence (one per mode, data in a temporary directory) and the real room log
 * (`createRedisLog` from src/history/redis-log.ts, on the ioredis connections `connectRedis` makes for a
 * replica), driven with bounded appends: sequential (one in flight: the latency of one acknowledged message)
 * and concurrent (`--in-flight` at once: the throughput of one replica's command connection). The two modes
 * are interleaved run by run, the order rotated. Prints a markdown table; writes bench/results/fsync-latest.json.
 */
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { pollUntil } from "../scripts/cluster/poll.js";
import { startRedisServer, type RedisPersistence, type RedisServer } from "../scripts/cluster/redis-server.js";
import { createRedisLog } from "../src/history/redis-log.js";
import type { RoomLog } from "../src/history/log.js";
import { createLogger } from "../src/logger.js";
import { connectRedis, type RedisConnections } from "../src/redis.js";
import { cpuNanoseconds, intArg, median, percentile } from "./proc.js";

const ROOT = new URL("../", import.meta.url).pathname;

const P = {
  runs: intArg("runs", 3, 1, 10),
  sequential: intArg("sequential", 2000, 10, 100_000),
  concurrent: intArg("concurrent", 20_000, 100, 1_000_000),
  inFlight: intArg("in-flight", 64, 2, 1024),
  warmup: 500,
  rooms: 10,
  messageBytes: 100,
};
const MODES: RedisPersistence[] = ["aof-everysec", "aof-always"];
// The replica's defaults (src/config.ts): HISTORY_SIZE, HISTORY_TTL_S, DEDUPE_WINDOW_S, REDIS_COMMAND_TIMEOUT_MS.
const LIMITS = { size: 1000, ttlS: 600, dedupeWindowS: 120 };
const COMMAND_TIMEOUT_MS = 2000;
const MESSAGE = "x".repeat(P.messageBytes);

interface Target {
  mode: RedisPersistence;
  server: RedisServer;
  redis: RedisConnections;
  log: RoomLog;
}

interface Run {
  appends: number;
  seconds: number;
  /** Appends per second: wall time, one replica connection. */
  throughput: number;
  /** Wall time per append (1e6 / throughput). */
  wallUsPerAppend: number;
  p50Us: number;
  p99Us: number;
  redisCpuUsPerAppend: number;
}

async function start(mode: RedisPersistence): Promise<Target> {
  const server = await startRedisServer({ persistence: mode });
  const logger = createLogger({ logLevel: "silent", replicaId: "bench-fsync" });
  const redis = connectRedis({ url: server.url }, logger, { commandTimeoutMs: COMMAND_TIMEOUT_MS });
  await pollUntil(() => redis.isReady() || undefined, {
    timeoutMs: 10_000,
    onTimeout: () => {
      throw new Error(`${mode}: the Redis connections did not come up`);
    },
  });
  const log = createRedisLog({
    commands: redis.pub,
    subscriber: redis.feed,
    keyPrefix: `bench-fsync-${randomUUID()}:`,
    limits: LIMITS,
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    log: logger,
  });
  return { mode, server, redis, log };
}

async function stop(t: Target): Promise<void> {
  t.log.close();
  await t.redis.close();
  await t.server.stop();
}

let appended = 0;
const appendOne = async (log: RoomLog): Promise<number> => {
  const n = appended++;
  const t0 = performance.now();
  await log.append({ room: `room-${n % P.rooms}`, id: randomUUID(), from: "bench", message: MESSAGE }, undefined);
  return performance.now() - t0;
};

/** `total` appends with at most `inFlight` outstanding; latencies in ms. */
async function drive(t: Target, total: number, inFlight: number): Promise<Run> {
  const latencies: number[] = [];
  let next = 0;
  const cpu0 = cpuNanoseconds(t.server.child.pid as number);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(inFlight, total) }, async () => {
      while (next < total) {
        next++;
        latencies.push(await appendOne(t.log));
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuNanoseconds(t.server.child.pid as number) - cpu0;
  latencies.sort((a, b) => a - b);
  return {
    appends: total,
    seconds,
    throughput: total / seconds,
    wallUsPerAppend: (seconds * 1e6) / total,
    p50Us: percentile(latencies, 50) * 1000,
    p99Us: percentile(latencies, 99) * 1000,
    redisCpuUsPerAppend: cpu / 1000 / total,
  };
}

type Kind = "sequential" | "concurrent";
const METRICS = ["throughput", "wallUsPerAppend", "p50Us", "p99Us", "redisCpuUsPerAppend"] as const;
type Metric = (typeof METRICS)[number];
interface Spread {
  median: number;
  min: number;
  max: number;
}
const spread = (values: number[]): Spread => ({
  median: median(values),
  min: Math.min(...values),
  max: Math.max(...values),
});
const f = (n: number, digits: number) =>
  n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
const cell = (s: Spread, digits = 0) => `${f(s.median, digits)} (${f(s.min, digits)}–${f(s.max, digits)})`;

async function main() {
  const started = Date.now();
  console.log(
    `bench:fsync: ${P.runs} runs; sequential ${P.sequential} appends (1 in flight), concurrent ${P.concurrent} ` +
      `(${P.inFlight} in flight), ${P.rooms} rooms, ${P.messageBytes}-byte messages`,
  );
  const targets: Target[] = [];
  try {
    for (const mode of MODES) targets.push(await start(mode));
    // Warm-up (JIT, script load, AOF file creation), not measured.
    for (const t of targets) await drive(t, P.warmup, 8);
    const results = new Map<string, Run[]>();
    for (let run = 0; run < P.runs; run++) {
      const order = targets.map((_, i) => targets[(i + run) % targets.length] as Target);
      for (const t of order) {
        for (const kind of ["sequential", "concurrent"] as Kind[]) {
          const r = kind === "sequential" ? await drive(t, P.sequential, 1) : await drive(t, P.concurrent, P.inFlight);
          const key = `${t.mode} ${kind}`;
          results.set(key, [...(results.get(key) ?? []), r]);
          console.log(
            `run ${run + 1} ${key.padEnd(23)} ${f(r.throughput, 0)} appends/s, p50 ${f(r.p50Us, 0)} µs, ` +
              `p99 ${f(r.p99Us, 0)} µs, Redis CPU ${f(r.redisCpuUsPerAppend, 1)} µs/append`,
          );
        }
      }
    }
    const aofBytes = (t: Target) => {
      try {
        // Redis 7 keeps a manifest and base/incr files in appendonlydir/.
        const dir = join(t.server.dir as string, "appendonlydir");
        return statSync(dir).isDirectory() ? duBytes(dir) : 0;
      } catch {
        return NaN;
      }
    };
    const rows: string[] = [];
    const summary: Record<string, Record<Metric, Spread>> = {};
    for (const kind of ["sequential", "concurrent"] as Kind[]) {
      for (const t of targets) {
        const runs = results.get(`${t.mode} ${kind}`) ?? [];
        const s = Object.fromEntries(METRICS.map((m) => [m, spread(runs.map((r) => r[m]))])) as Record<Metric, Spread>;
        summary[`${t.mode} ${kind}`] = s;
        const inFlight = kind === "sequential" ? 1 : P.inFlight;
        const appends = kind === "sequential" ? P.sequential : P.concurrent;
        rows.push(
          `| ${t.mode.replace("aof-", "appendfsync ")} | ${kind} (${inFlight} in flight, ${appends.toLocaleString("en-US")}) | ` +
            `${cell(s.throughput)} | ${cell(s.wallUsPerAppend, 1)} | ${cell(s.p50Us)} | ${cell(s.p99Us)} | ` +
            `${cell(s.redisCpuUsPerAppend, 1)} |`,
        );
      }
    }
    const ratio = (kind: Kind, m: Metric) =>
      (summary[`aof-always ${kind}`]?.[m].median ?? NaN) / (summary[`aof-everysec ${kind}`]?.[m].median ?? NaN);
    const table = [
      `Room-log appends (createRedisLog, one ioredis command connection as a replica makes it), ${P.rooms} rooms, ` +
        `${P.messageBytes}-byte messages, one redis-server per mode (appendonly yes, data on ${fsType()}); median ` +
        `(min–max) of ${P.runs} runs, the modes interleaved.`,
      "",
      "| persistence | appends | appends/s | wall µs / append | p50 µs | p99 µs | Redis CPU µs / append |",
      "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
      ...rows,
      "",
      `always / everysec: sequential p50 ${f(ratio("sequential", "p50Us"), 2)}×, p99 ${f(ratio("sequential", "p99Us"), 2)}×; ` +
        `concurrent throughput ${f(ratio("concurrent", "throughput"), 2)}×; Redis CPU per append ` +
        `${f(ratio("sequential", "redisCpuUsPerAppend"), 2)}× (sequential), ${f(ratio("concurrent", "redisCpuUsPerAppend"), 2)}× (concurrent). ` +
        `AOF size at the end: ${targets.map((t) => `${t.mode} ${f(aofBytes(t) / 2 ** 20, 1)} MiB`).join(", ")}.`,
    ].join("\n");
    console.log(`\n${table}\n`);
    mkdirSync(`${ROOT}bench/results`, { recursive: true });
    writeFileSync(
      `${ROOT}bench/results/fsync-latest.json`,
      JSON.stringify(
        {
          date: new Date().toISOString(),
          params: P,
          machine: { cpus: cpus().length, model: cpus()[0]?.model ?? "unknown" },
          node: process.version,
          seconds: Math.round((Date.now() - started) / 1000),
          summary,
          runs: Object.fromEntries(results),
        },
        null,
        2,
      ) + "\n",
    );
    console.log("wrote bench/results/fsync-latest.json");
  } finally {
    await Promise.all(targets.map(stop));
  }
}

/** The filesystem type of the temporary directory the AOFs are written to (fsync is a no-op on tmpfs). */
function fsType(): string {
  try {
    const out = execFileSync("df", ["--output=fstype", tmpdir()], { encoding: "utf8" }).trim().split("\n");
    return `${out[out.length - 1]} (${tmpdir()})`;
  } catch {
    return tmpdir();
  }
}

function duBytes(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir)) total += statSync(join(dir, name)).size;
  return total;
}

await main();
