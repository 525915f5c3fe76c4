/**
 * `npx tsx bench/rate-limit.ts`: what the event limits cost per event.
 *   - per-socket bucket: the synchronous check every client event passes (src/limits/rate.ts);
 *   - per-user limit without Redis (one process);
 *   - per-user limit over Redis (src/limits/user-rate.ts), one event at a time (each waits for its answer:
 *     the latency an event gains) and 100 in flight (how much Redis work each event adds under load).
 */
import { Redis } from "ioredis";
import type { AppContext, TypedSocket } from "../src/events/handler.js";
import { createEventGate } from "../src/limits/rate.js";
import { createUserRateLimiter } from "../src/limits/user-rate.js";
import { startRedisServer } from "../scripts/cluster/redis-server.js";

const N = Number(process.env.N ?? 200_000);

function perEvent(label: string, started: bigint, count: number): void {
  const us = Number(process.hrtime.bigint() - started) / 1000 / count;
  console.log(`${label.padEnd(44)} ${us < 1 ? `${(us * 1000).toFixed(0)} ns` : `${us.toFixed(2)} µs`} per event`);
}

// The gate only touches metrics and log when it refuses; the bench stays under the limit.
const app = {
  metrics: { eventRejected: () => undefined },
  log: { info: () => undefined, warn: () => undefined },
} as unknown as AppContext;
const sockets = Array.from({ length: 1000 }, (_, i) => ({ id: `s${i}`, connected: true }) as unknown as TypedSocket);
const gate = createEventGate(app, { eventsPerS: 1e9, burst: 1e9 });
for (const s of sockets) gate.admit(s, "chat", undefined);
let t = process.hrtime.bigint();
for (let i = 0; i < N * 10; i++) gate.admit(sockets[i % 1000] as TypedSocket, "chat", undefined);
perEvent("per-socket bucket (1,000 sockets)", t, N * 10);

const memory = createUserRateLimiter({ perS: 1e9 });
t = process.hrtime.bigint();
for (let i = 0; i < N; i++) await memory.consume(`u${i % 1000}`);
perEvent("per-user limit, no Redis", t, N);

const server = await startRedisServer();
const redis = new Redis(server.url, { enableAutoPipelining: true });
try {
  const users = createUserRateLimiter({ perS: 1e9, redis, keyPrefix: "bench:" });
  await users.consume("warm-up");
  const sequential = Math.min(N, 20_000);
  t = process.hrtime.bigint();
  for (let i = 0; i < sequential; i++) await users.consume(`u${i % 1000}`);
  perEvent("per-user limit over Redis, 1 in flight", t, sequential);
  t = process.hrtime.bigint();
  for (let i = 0; i < N; i += 100)
    await Promise.all(Array.from({ length: 100 }, (_, j) => users.consume(`u${(i + j) % 1000}`)));
  perEvent("per-user limit over Redis, 100 in flight", t, N);
} finally {
  redis.disconnect();
  await server.stop();
}
