import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, startFreezableRedis, startRedis } from "./support/redis.js";
import { startLoggedServer } from "./support/capture-log.js";
import {
  cleanupAll,
  connect,
  eventually,
  next,
  onCleanup,
  postJson,
  record,
  sleep,
  startServer,
} from "./support/server.js";

afterEach(cleanupAll);

const readyz = (url: string) => fetch(`${url}/readyz`).then((r) => r.status);
const post = (url: string) => postJson(`${url}/api/posts`, { title: "t", body: "b" });

async function redisWithApps(count: number) {
  const redis = await startFreezableRedis();
  const prefix = `t-${randomUUID()}:`;
  const servers = [];
  for (let i = 0; i < count; i++) {
    servers.push(await startServer({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, REPLICA_ID: `r${i + 1}` }));
  }
  for (const s of servers) await eventually(() => s.app.isReady(), 5000, "redis ready");
  return { redis, servers };
}

describe("a frozen Redis (SIGSTOP)", () => {
  it("turns /readyz 503 within 3 s, and 200 again once Redis answers", async () => {
    const { redis, servers } = await redisWithApps(1);
    const { url } = servers[0]!;
    expect(await readyz(url)).toBe(200);
    redis.child.kill("SIGSTOP");
    const frozen = Date.now();
    while ((await readyz(url)) === 200) {
      expect(Date.now() - frozen).toBeLessThan(3500);
      await sleep(50);
    }
    const noticedMs = Date.now() - frozen;
    expect(noticedMs).toBeLessThan(3500);
    redis.child.kill("SIGCONT");
    await eventually(() => servers[0]!.app.isReady(), 5000, "ready again");
  });

  it("answers POST /api/posts 503 STORE_UNAVAILABLE within ~2 s, and at once after readiness noticed", async () => {
    const { redis, servers } = await redisWithApps(1);
    const { url, app } = servers[0]!;
    redis.child.kill("SIGSTOP");
    let started = Date.now();
    const first = await post(url);
    expect(first.status).toBe(503);
    expect(await first.json()).toMatchObject({ error: { code: "STORE_UNAVAILABLE" } });
    expect(Date.now() - started).toBeLessThan(2600);
    await eventually(() => !app.isReady(), 4000, "not ready");
    started = Date.now();
    expect((await post(url)).status).toBe(503);
    expect((await fetch(`${url}/api/posts`)).status).toBe(503);
    expect(Date.now() - started).toBeLessThan(100);
  });
});

describe("broadcast and chat while Redis is away", () => {
  it("ack delivered: local and reach this replica's clients only; delivered: cluster again when Redis is back", async () => {
    const { redis, servers } = await redisWithApps(2);
    const [one, two] = servers as [(typeof servers)[0], (typeof servers)[0]];
    const sender = await connect(one.url);
    const neighbour = await connect(one.url);
    const remote = await connect(two.url);
    const arrived = [next(remote, "broadcast-message"), next(remote, "chat")];
    expect(await sender.emitWithAck("broadcast", "up")).toEqual({ ok: true, delivered: "cluster" });
    expect(await sender.emitWithAck("chat", "up")).toEqual({ ok: true, delivered: "cluster" });
    await Promise.all(arrived);

    const remoteSaw = record(remote, "broadcast-message");
    const remoteChat = record(remote, "chat");
    await redis.kill("SIGKILL");
    await eventually(() => !one.app.isReady(), 4000, "not ready");
    const local = next(neighbour, "broadcast-message");
    expect(await sender.emitWithAck("broadcast", "down")).toEqual({ ok: true, delivered: "local" });
    expect(await sender.emitWithAck("chat", "down")).toEqual({ ok: true, delivered: "local" });
    expect(await local).toMatchObject({ message: "down" });

    await redis.restart();
    await eventually(() => one.app.isReady() && two.app.isReady(), 8000, "ready again");
    const back = next(remote, "broadcast-message");
    expect(await sender.emitWithAck("broadcast", "back")).toEqual({ ok: true, delivered: "cluster" });
    expect(await back).toMatchObject({ message: "back" });
    // Nothing sent during the outage arrived later on the other replica.
    expect(remoteSaw.map((m) => m.message)).toEqual(["back"]);
    expect(remoteChat).toEqual([]);
  });

  it("counts each failure in realtime_redis_failures_total and logs them once a second with a count", async () => {
    const redis = await startRedis();
    onCleanup(() => redis.stop());
    const { app, url, lines } = await startLoggedServer({ REDIS_URL: redis.url, LOG_LEVEL: "warn" });
    await eventually(() => app.isReady(), 5000, "ready");
    const sender = await connect(url);
    await redis.kill("SIGKILL");
    await eventually(() => !app.isReady(), 4000, "not ready");
    for (let i = 0; i < 50; i++) await sender.emitWithAck("broadcast", `m${i}`);
    for (let i = 0; i < 5; i++) await post(url);
    await sleep(1100);
    const text = await app.metrics.render();
    expect(text).toMatch(/^realtime_redis_failures_total\{kind="publish"\} 50$/m);
    expect(text).toMatch(/^realtime_redis_failures_total\{kind="posts"\} 5$/m);
    const publishLines = lines.filter((l) => l.kind === "redis-publish");
    expect(publishLines.length).toBeLessThanOrEqual(3);
    expect(publishLines.reduce((sum, l) => sum + (l.count as number), 0)).toBe(50);
  });
});

describe("Redis with a password", () => {
  it("is ready with the password in REDIS_URL and not ready with a wrong one", async () => {
    const port = await freePort();
    const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--requirepass", "s3cret"], {
      stdio: "ignore",
    });
    onCleanup(() => void child.kill("SIGKILL"));
    await sleep(300);
    const good = await startServer({ REDIS_URL: `redis://:s3cret@127.0.0.1:${port}`, REPLICA_ID: "good" });
    await eventually(() => good.app.isReady(), 5000, "ready with the password");
    expect((await post(good.url)).status).toBe(201);
    const bad = await startServer({ REDIS_URL: `redis://:wrong@127.0.0.1:${port}`, REPLICA_ID: "bad" });
    await sleep(1500);
    expect(await readyz(bad.url)).toBe(503);
  });
});
