import { afterEach, describe, expect, it } from "vitest";
import type { AckResult } from "../src/contract.js";
import { randomUUID } from "node:crypto";
import { startRedis } from "./support/redis.js";
import type { AddressInfo } from "node:net";
import type { App } from "../src/app.js";
import { pollUntil } from "../scripts/cluster/poll.js";
import { cleanupAll, connect, eventually, onCleanup, postJson, startServer } from "./support/server.js";

afterEach(cleanupAll);

/** Parses the exposition text into `name{labels}` → value, checking every line's shape on the way. */
async function scrape(url: string): Promise<Map<string, number>> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(await res.text());
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";

function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const typed = new Map<string, string>();
  for (const line of text.trimEnd().split("\n")) {
    if (line === "") continue;
    const type = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary)$`).exec(line);
    if (type) typed.set(type[1] as string, type[2] as string);
    if (line.startsWith("#")) {
      expect(line).toMatch(new RegExp(`^# (HELP|TYPE) ${NAME} .+`));
      continue;
    }
    const sample = new RegExp(`^(${NAME})(\\{[^}]*\\})? (-?[0-9.e+-]+|[Nn]a[Nn]|[+-]Inf)$`).exec(line);
    expect(sample, line).not.toBeNull();
    const [, name, labels = "", value] = sample as RegExpExecArray;
    // A histogram's or summary's series are its name plus _bucket, _sum or _count.
    const family = typed.has(name as string) ? (name as string) : (name as string).replace(/_(bucket|sum|count)$/, "");
    expect(typed.has(family), `${name} has a TYPE line`).toBe(true);
    expect(samples.has(`${name}${labels}`), `${name}${labels} once`).toBe(false);
    samples.set(`${name}${labels}`, Number(value));
  }
  return samples;
}

/** Listens the app's metrics server on a free port (main.ts uses METRICS_PORT); app.close() closes it. */
async function metricsUrl(app: App): Promise<string> {
  const server = app.metricsServer;
  if (!server) throw new Error("metrics are off (METRICS_PORT=0)");
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const ack = <T extends object>(send: (cb: (r: AckResult<T>) => void) => void) =>
  new Promise<AckResult<T>>((resolve) => send(resolve));

describe("GET /metrics", () => {
  it("counts connections, events by name and rejections by event and code", async () => {
    const { url, app } = await startServer({ REPLICA_ID: "m-1" });
    const metrics = await metricsUrl(app);
    const [a, b] = await Promise.all([connect(url), connect(url)]);
    await ack((cb) => a.emit("echo", "hi", cb));
    await ack((cb) => a.emit("echo", { x: 1 }, cb));
    await ack((cb) => b.emit("join-room", "lobby", cb));
    await ack((cb) => b.emit("join-room", "bad room!", cb));
    await ack((cb) => b.emit("room-message", { room: "elsewhere", message: "x" }, cb));
    await ack((cb) => (b as unknown as { emit(e: string, cb: unknown): void }).emit("no-such-event", cb));

    const m = await scrape(metrics);
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
    // Node's default metrics (prom-client) alongside the app's.
    expect(m.get("process_cpu_seconds_total")).toBeGreaterThan(0);
    expect(m.get("nodejs_heap_used_bytes")).toBeGreaterThan(0);
    expect(m.get("nodejs_heap_size_used_bytes")).toBeGreaterThan(0);
    expect(m.has("nodejs_eventloop_lag_p99_seconds")).toBe(true);
    // Every event's handling-time series exists from start-up; none was timed yet (one in 8 is).
    expect(m.get('realtime_event_handling_seconds_count{event="get-time"}')).toBe(0);
    expect(m.get('realtime_event_handling_seconds_count{event="echo"}')).toBe(0);
    // No Redis, no cross-replica delivery: the histogram is there, empty.
    expect(m.get('realtime_room_delivery_seconds_bucket{le="+Inf"}')).toBe(0);

    a.disconnect();
    const after = await pollUntil(
      async () => {
        const m = await scrape(metrics);
        return m.get("realtime_connections") === 1 ? m : undefined;
      },
      { timeoutMs: 2000, onTimeout: () => scrape(metrics) },
    );
    expect(after.get("realtime_connections")).toBe(1);
    expect(after.get('realtime_connections_closed_total{reason="client namespace disconnect"}')).toBe(1);
  });

  it("counts created posts and reports Redis as connected when it is configured", async () => {
    const redis = await startRedis();
    onCleanup(() => redis.stop());
    const { url, app } = await startServer({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: `t-${randomUUID()}:` });
    await eventually(() => app.isReady(), 5000, "redis ready");
    const res = await postJson(`${url}/api/posts`, { title: "t", body: "b" });
    expect(res.status).toBe(201);
    const m = await scrape(await metricsUrl(app));
    expect(m.get("realtime_posts_created_total")).toBe(1);
    expect(m.get("realtime_redis_connected")).toBe(1);
    expect(m.get("realtime_ready")).toBe(1);
  });

  it("times one event in 8 per event name, from arrival to answer", async () => {
    const { url, app } = await startServer();
    const metrics = await metricsUrl(app);
    const socket = await connect(url);
    for (let i = 0; i < 17; i++) await ack((cb) => socket.emit("get-time", cb));
    const m = await scrape(metrics);
    expect(m.get('realtime_events_received_total{event="get-time"}')).toBe(17);
    expect(m.get('realtime_event_handling_seconds_count{event="get-time"}')).toBe(2);
    const sum = m.get('realtime_event_handling_seconds_sum{event="get-time"}') as number;
    expect(sum).toBeGreaterThan(0);
    expect(sum).toBeLessThan(1);
    expect(m.get('realtime_event_handling_seconds_bucket{le="+Inf",event="get-time"}')).toBe(2);
  });

  it("observes cross-replica room delivery latency on sampled entries (one append in 8)", async () => {
    const redis = await startRedis();
    onCleanup(() => redis.stop());
    const env = { REDIS_URL: redis.url, REDIS_KEY_PREFIX: `t-${randomUUID()}:` };
    const [one, two] = await Promise.all([
      startServer({ ...env, REPLICA_ID: "a" }),
      startServer({ ...env, REPLICA_ID: "b" }),
    ]);
    await eventually(() => one.app.isReady() && two.app.isReady(), 5000, "redis ready");
    const sender = await connect(one.url);
    const member = await connect(two.url);
    await ack((cb) => member.emit("join-room", "lat", cb));
    await ack((cb) => sender.emit("join-room", "lat", cb));
    let received = 0;
    member.on("room-message-received", () => received++);
    for (let i = 0; i < 16; i++) await ack((cb) => sender.emit("room-message", { room: "lat", message: `m${i}` }, cb));
    await eventually(() => received === 16, 5000, "16 deliveries");
    const m = await scrape(await metricsUrl(two.app));
    expect(m.get("realtime_room_delivery_seconds_count")).toBe(2);
    const sum = m.get("realtime_room_delivery_seconds_sum") as number;
    expect(sum).toBeGreaterThan(0);
    expect(sum).toBeLessThan(2);
  });

  it("is served on the metrics port only: every spelling of /metrics is 404 on the main port", async () => {
    const { url, app } = await startServer();
    const metrics = await metricsUrl(app);
    for (const path of ["/metrics", "/metrics/", "/Metrics", "/METRICS/", "/metrics?x=1"]) {
      expect((await fetch(`${url}${path}`)).status, `main port ${path}`).toBe(404);
    }
    expect((await fetch(`${metrics}/metrics?x=1`)).status).toBe(200);
    // The metrics port serves nothing of the app, and no other spelling either.
    for (const path of [
      "/",
      "/healthz",
      "/api/posts",
      "/metrics/",
      "/Metrics",
      "/socket.io/?EIO=4&transport=polling",
    ]) {
      expect((await fetch(`${metrics}${path}`)).status, `metrics port ${path}`).toBe(404);
    }
    expect((await fetch(`${metrics}/metrics`, { method: "POST" })).status).toBe(404);
  });

  it("has no metrics listener at all with METRICS_PORT=0", async () => {
    const { app } = await startServer({ METRICS_PORT: "0" });
    expect(app.metricsServer).toBeUndefined();
  });
});
