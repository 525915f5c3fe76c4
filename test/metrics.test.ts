import { afterEach, describe, expect, it } from "vitest";
import type { AckResult } from "../src/contract.js";
import { randomUUID } from "node:crypto";
import { startRedis } from "./support/redis.js";
import { cleanupAll, connect, eventually, onCleanup, sleep, startServer } from "./support/server.js";

afterEach(cleanupAll);

/** Parses the exposition text into `name{labels}` → value, checking every line's shape on the way. */
async function scrape(url: string): Promise<Map<string, number>> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  const samples = new Map<string, number>();
  const typed = new Set<string>();
  for (const line of (await res.text()).trimEnd().split("\n")) {
    const type = /^# TYPE ([a-z_]+) (counter|gauge)$/.exec(line);
    if (type) typed.add(type[1] as string);
    if (line.startsWith("#")) {
      expect(line).toMatch(/^# (HELP|TYPE) [a-z_]+ .+/);
      continue;
    }
    const sample = /^([a-z_]+)(\{[^}]*\})? (-?[0-9.e+-]+)$/.exec(line);
    expect(sample, line).not.toBeNull();
    const [, name, labels = "", value] = sample as RegExpExecArray;
    expect(typed.has(name as string), `${name} has a TYPE line`).toBe(true);
    samples.set(`${name}${labels}`, Number(value));
  }
  return samples;
}

const ack = <T extends object>(send: (cb: (r: AckResult<T>) => void) => void) =>
  new Promise<AckResult<T>>((resolve) => send(resolve));

describe("GET /metrics", () => {
  it("counts connections, events by name and rejections by event and code", async () => {
    const { url } = await startServer({ REPLICA_ID: "m-1" });
    const [a, b] = await Promise.all([connect(url), connect(url)]);
    await ack((cb) => a.emit("echo", "hi", cb));
    await ack((cb) => a.emit("echo", { x: 1 }, cb));
    await ack((cb) => b.emit("join-room", "lobby", cb));
    await ack((cb) => b.emit("join-room", "bad room!", cb));
    await ack((cb) => b.emit("room-message", { room: "elsewhere", message: "x" }, cb));
    await ack((cb) => (b as unknown as { emit(e: string, cb: unknown): void }).emit("no-such-event", cb));

    const m = await scrape(url);
    expect(m.get('realtime_replica_info{replica="m-1",version="0.0.0"}')).toBe(1);
    expect(m.get("realtime_connections")).toBe(2);
    expect(m.get("realtime_connections_opened_total")).toBe(2);
    expect(m.get('realtime_events_received_total{event="echo"}')).toBe(2);
    expect(m.get('realtime_events_received_total{event="join-room"}')).toBe(2);
    expect(m.get('realtime_events_received_total{event="unknown"}')).toBe(1);
    expect(m.get('realtime_events_rejected_total{event="join-room",code="INVALID_PAYLOAD"}')).toBe(1);
    expect(m.get('realtime_events_rejected_total{event="room-message",code="NOT_A_MEMBER"}')).toBe(1);
    // A client-chosen event name never becomes a label of its own.
    expect(m.get('realtime_events_rejected_total{event="unknown",code="UNKNOWN_EVENT"}')).toBe(1);
    expect([...m.keys()].some((k) => k.includes("no-such-event"))).toBe(false);
    expect(m.get("realtime_ready")).toBe(1);
    expect(m.has("realtime_redis_connected")).toBe(false);
    expect(m.get("process_resident_memory_bytes")).toBeGreaterThan(0);
    expect(Number.isFinite(m.get('realtime_event_loop_delay_seconds{quantile="0.99"}'))).toBe(true);

    a.disconnect();
    let after = await scrape(url);
    for (let i = 0; i < 100 && after.get("realtime_connections") !== 1; i++) {
      await sleep(20);
      after = await scrape(url);
    }
    expect(after.get("realtime_connections")).toBe(1);
    expect(after.get('realtime_connections_closed_total{reason="client namespace disconnect"}')).toBe(1);
  });

  it("counts created posts and reports Redis as connected when it is configured", async () => {
    const redis = await startRedis();
    onCleanup(() => redis.stop());
    const { url, app } = await startServer({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: `t-${randomUUID()}:` });
    await eventually(() => app.isReady(), 5000, "redis ready");
    const res = await fetch(`${url}/api/posts`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ title: "t", body: "b" }),
    });
    expect(res.status).toBe(201);
    const m = await scrape(url);
    expect(m.get("realtime_posts_created_total")).toBe(1);
    expect(m.get("realtime_redis_connected")).toBe(1);
    expect(m.get("realtime_ready")).toBe(1);
  });
});
