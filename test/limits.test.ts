import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { freePort } from "../scripts/cluster/ports.js";
import { spawnReplica, waitForExit, waitForHttp } from "../scripts/cluster/processes.js";
import { parseConfig } from "../src/config.js";
import type { ErrorPayload, Post } from "../src/contract.js";
import { createUserRateLimiter } from "../src/limits/user-rate.js";
import { openRawWebSocket } from "./support/raw-ws.js";
import { startRedis } from "./support/redis.js";
import { cleanupAll, connect, emitRaw, eventually, onCleanup, record, sleep, startServer } from "./support/server.js";
import { hs256, TEST_JWT_SECRET } from "./support/tokens.js";

afterEach(cleanupAll);

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** A plain HTTP request (node:http: it sends Origin as given, like a browser on another site would). */
function httpRequest(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  return new Promise<Answer>((resolve, reject) => {
    const req = request(url, { method: opts.method ?? "GET", headers: opts.headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

/** A websocket handshake's outcome: "open", or the HTTP status and body it was refused with. */
function websocketHandshake(url: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number | "open"; body: string }>((resolve, reject) => {
    const ws = new WebSocket(`${url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`, { headers });
    ws.once("open", () => {
      ws.terminate();
      resolve({ status: "open", body: "" });
    });
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once("error", reject);
  });
}

const pollingHandshake = (url: string, headers: Record<string, string> = {}) =>
  httpRequest(`${url}/socket.io/?EIO=4&transport=polling`, { headers });

describe("event rate limit per socket", () => {
  it("fans out only the burst and the refill of a flooding socket, answers RATE_LIMITED at most once a second, and keeps the connection", async () => {
    const { url } = await startServer();
    const flooder = await connect(url);
    const listener = await connect(url);
    const fannedOut = record(listener, "chat");
    const errors = record(flooder, "error");
    const started = Date.now();
    for (let i = 0; i < 5000; i++) emitRaw(flooder, "chat", `flood ${i}`);
    const ack = await flooder.timeout(3000).emitWithAck("get-time");
    await sleep(300);
    const elapsedS = (Date.now() - started) / 1000;
    console.log(
      `flood: 5000 chats from one socket in ${elapsedS.toFixed(2)} s → ${fannedOut.length} fanned out, ` +
        `${errors.length} error event(s); the ack of the next event: ${JSON.stringify(ack).slice(0, 80)}`,
    );
    // Burst (100) plus 50/s of refill.
    expect(fannedOut.length).toBeLessThanOrEqual(100 + Math.ceil(50 * elapsedS) + 1);
    expect(fannedOut.length).toBeGreaterThanOrEqual(100);
    expect(errors.length).toBeGreaterThanOrEqual(1);
    expect(errors.length).toBeLessThanOrEqual(Math.ceil(elapsedS) + 1);
    expect(errors[0]).toMatchObject({ event: "chat", code: "RATE_LIMITED" } satisfies Partial<ErrorPayload>);
    expect(ack).toMatchObject({ ok: false, error: { code: "RATE_LIMITED" } });
    // Still connected; once the bucket refills the socket is served again.
    await sleep(200);
    expect(flooder.connected).toBe(true);
    expect(await flooder.emitWithAck("get-time")).toMatchObject({ ok: true });
  });

  it("rate-limits unknown events too, without echoing their names whole", async () => {
    const { url } = await startServer({ RATE_LIMIT_EVENTS_PER_S: "10", RATE_LIMIT_BURST: "5" });
    const client = await connect(url);
    const errors = record(client, "error");
    for (let i = 0; i < 50; i++) emitRaw(client, "nope");
    await sleep(300);
    expect(errors.filter((e) => e.code === "UNKNOWN_EVENT").length).toBe(5);
    expect(errors.filter((e) => e.code === "RATE_LIMITED").length).toBe(1);
  });

  it("disconnects a socket that stays over its limit for more than 10 s", async () => {
    const { url } = await startServer({ RATE_LIMIT_EVENTS_PER_S: "5", RATE_LIMIT_BURST: "5" });
    const client = await connect(url);
    const reason = new Promise<string>((resolve) => client.once("disconnect", resolve));
    const started = Date.now();
    const flood = setInterval(() => {
      for (let i = 0; i < 20; i++) emitRaw(client, "echo", i);
    }, 100);
    onCleanup(() => clearInterval(flood));
    const why = await Promise.race([reason, sleep(14_000).then(() => "still connected")]);
    clearInterval(flood);
    console.log(`sustained flood: disconnected after ${Date.now() - started} ms (${why})`);
    expect(why).toBe("io server disconnect");
    expect(Date.now() - started).toBeGreaterThan(10_000);
  }, 20_000);
});

describe("event rate limit per user, across replicas", () => {
  it("counts a user's events on every replica against one limit in Redis", async () => {
    const redis = await startRedis();
    onCleanup(() => redis.stop());
    const clients = [new Redis(redis.url), new Redis(redis.url)];
    onCleanup(() => clients.forEach((c) => c.disconnect()));
    // Two replicas' limiters, 10 events/s per user, on one Redis.
    const [a, b] = clients.map((c) => createUserRateLimiter({ perS: 10, redis: c, keyPrefix: "t:" })) as [
      ReturnType<typeof createUserRateLimiter>,
      ReturnType<typeof createUserRateLimiter>,
    ];
    // Aligned to the start of a one-second window so that all 20 fall in one.
    await sleep(1000 - (Date.now() % 1000) + 5);
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).consume("alice")));
    const other = await a.consume("bob");
    console.log(`user limit 10/s over 2 replicas: ${results.filter(Boolean).length} of 20 allowed`);
    expect(results.filter(Boolean).length).toBe(10);
    expect(other).toBe(true);
  });

  it("answers one connection in the order it asked, unknown events included, with the limit on", async () => {
    const redis = await startRedis();
    onCleanup(() => redis.stop());
    const { url, app } = await startServer({
      AUTH_MODE: "required",
      AUTH_JWT_SECRET: TEST_JWT_SECRET,
      REDIS_URL: redis.url,
      USER_RATE_LIMIT_PER_S: "100",
    });
    await eventually(() => app.isReady(), 5000, "ready");
    const client = await connect(url, { auth: { token: await hs256("alice") } });
    const order: string[] = [];
    client.on("room-joined", (room) => order.push(`joined ${room}`));
    client.on("error", (e) => order.push(`error ${e.code}`));
    client.on("current-time", () => order.push("time"));
    // Each event waits for the user's count in Redis before it runs; the unknown one must wait its turn too.
    client.emit("join-room", "ordered");
    emitRaw(client, "no-such-event", () => undefined);
    client.emit("get-time");
    await eventually(() => order.length === 3, 5000, "three answers");
    expect(order).toEqual(["joined ordered", "error UNKNOWN_EVENT", "time"]);
  });
});

describe("connections per replica", () => {
  it("refuses handshakes past MAX_CONNECTIONS with 429 and a JSON reason, on both transports", async () => {
    const { url } = await startServer({ MAX_CONNECTIONS: "5" });
    for (let i = 0; i < 5; i++) await connect(url);
    const attempts = 20;
    const polling = await Promise.all(Array.from({ length: attempts }, () => pollingHandshake(url)));
    const websocket = await websocketHandshake(url);
    console.log(
      `MAX_CONNECTIONS=5 with 5 open: ${polling.filter((r) => r.status === 429).length}/${attempts} polling ` +
        `handshakes refused (429), websocket: ${websocket.status} ${websocket.body}`,
    );
    for (const r of polling) {
      expect(r.status).toBe(429);
      expect(JSON.parse(r.body)).toMatchObject({ error: { code: "TOO_MANY_CONNECTIONS" } });
      expect(r.headers["x-replica-id"]).toBe("test-1");
    }
    // The websocket refusal needs Engine.IO's upgrade stand-in to expose its TCP socket (src/limits/engine.ts).
    expect(websocket.status).toBe(429);
    expect(JSON.parse(websocket.body)).toMatchObject({ error: { code: "TOO_MANY_CONNECTIONS" } });
  });
});

describe("packets per polling request", () => {
  it("refuses a polling POST carrying more than MAX_PACKETS_PER_POLL packets with 413 and closes the session", async () => {
    const { url, app } = await startServer();
    const open = await pollingHandshake(url);
    const sid = (JSON.parse(open.body.slice(1)) as { sid: string }).sid;
    const endpoint = `${url}/socket.io/?EIO=4&transport=polling&sid=${sid}`;
    expect((await httpRequest(endpoint, { method: "POST", body: "40" })).status).toBe(200);
    const listener = await connect(url);
    const fannedOut = record(listener, "chat");
    const body = Array.from({ length: 66_000 }, () => '42["chat","x"]').join("\x1e");
    const answer = await httpRequest(endpoint, { method: "POST", body });
    const after = await httpRequest(endpoint);
    await sleep(200);
    console.log(
      `polling POST of ${body.length} bytes / 66000 packets → ${answer.status} ${answer.body}; ` +
        `chats fanned out: ${fannedOut.length}; next poll on the session: ${after.status}`,
    );
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: "TOO_MANY_PACKETS" } });
    expect(fannedOut.length).toBe(0);
    expect(after.status).toBe(400);
    expect(app.io.engine.clientsCount).toBe(1);
  });

  it("still serves a polling client's ordinary requests", async () => {
    const { url } = await startServer({ MAX_PACKETS_PER_POLL: "3" });
    const client = await connect(url, { transports: ["polling"] });
    const echoes = await Promise.all(["a", "b"].map((m) => client.emitWithAck("echo", m)));
    expect(echoes).toEqual([{ ok: true }, { ok: true }]);
  });
});

describe("origin allow-list", () => {
  const GOOD = "https://good.example";
  const EVIL = "https://evil.example";

  it("refuses websocket and polling handshakes from another origin with 403, and keeps those without Origin", async () => {
    const { url } = await startServer({ CORS_ORIGIN: GOOD });
    const ws = await websocketHandshake(url, { Origin: EVIL });
    const poll = await pollingHandshake(url, { Origin: EVIL });
    console.log(`Origin ${EVIL}: websocket ${ws.status} ${ws.body}; polling ${poll.status} ${poll.body}`);
    expect(ws.status).toBe(403);
    expect(JSON.parse(ws.body)).toMatchObject({ error: { code: "ORIGIN_NOT_ALLOWED" } });
    expect(poll.status).toBe(403);
    expect(JSON.parse(poll.body)).toMatchObject({ error: { code: "ORIGIN_NOT_ALLOWED" } });
    expect((await websocketHandshake(url, { Origin: GOOD })).status).toBe("open");
    expect((await pollingHandshake(url, { Origin: GOOD })).status).toBe(200);
    // Node clients send no Origin.
    const client = await connect(url);
    expect(await client.emitWithAck("get-time")).toMatchObject({ ok: true });
  });

  it("refuses a cross-origin POST /api/posts with 403 and creates nothing", async () => {
    const { url } = await startServer({ CORS_ORIGIN: GOOD });
    const post = (origin?: string) =>
      httpRequest(`${url}/api/posts`, {
        method: "POST",
        headers: { "Content-Type": "application/json", ...(origin ? { Origin: origin } : {}) },
        body: JSON.stringify({ title: origin ?? "none", body: "b" }),
      });
    const evil = await post(EVIL);
    console.log(`cross-origin POST from ${EVIL}: ${evil.status} ${evil.body}`);
    expect(evil.status).toBe(403);
    expect(JSON.parse(evil.body)).toMatchObject({ error: { code: "ORIGIN_NOT_ALLOWED" } });
    expect((await post(GOOD)).status).toBe(201);
    expect((await post()).status).toBe(201);
    const titles = (JSON.parse((await httpRequest(`${url}/api/posts`)).body) as Post[]).map((p) => p.title);
    expect(titles.sort()).toEqual([GOOD, "none"]);
  });
});

describe("slow consumers", () => {
  it("closes a websocket that stops reading once its buffer passes MAX_SOCKET_BUFFER_BYTES, and server memory stays bounded", async () => {
    // A separate process, so that its RSS is the server's alone.
    const [port, metricsPort] = [await freePort(), await freePort()];
    const child: ChildProcess = spawnReplica(
      port,
      {
        REPLICA_ID: "slow-1",
        LOG_LEVEL: "warn",
        METRICS_PORT: String(metricsPort),
        // The sender below broadcasts far above the default event rate: raised so that only the buffer limit acts.
        RATE_LIMIT_EVENTS_PER_S: "100000",
        RATE_LIMIT_BURST: "100000",
      },
      ["ignore", "ignore", "inherit"],
      // A fixed young generation: under this allocation rate V8 may or may not grow it to its 48 MB maximum
      // (its heuristics flip with as little as the code loaded), which moves RSS by ~36 MB either way.
      ["--max-semi-space-size=4"],
    );
    onCleanup(() => (child.kill("SIGTERM"), waitForExit(child, 10_000)));
    const url = `http://127.0.0.1:${port}`;
    await waitForHttp(`${url}/readyz`, "replica", child);
    const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))?.[1]) * 1024;
    const slowConsumers = async () => {
      const text = (await httpRequest(`http://127.0.0.1:${metricsPort}/metrics`)).body;
      const line = text.split("\n").find((l) => l.startsWith('realtime_limit_refusals_total{code="SLOW_CONSUMER"}'));
      return line ? Number(line.split(" ").pop()) : 0;
    };
    const connections = async () =>
      (JSON.parse((await httpRequest(`${url}/api/info`)).body) as { connections: number }).connections;

    const sender = await connect(url);
    const healthy = await connect(url);
    let healthyGot = 0;
    healthy.on("broadcast-message", () => healthyGot++);
    const stuck = await openRawWebSocket(url);
    await sleep(200);
    expect(await connections()).toBe(3);
    stuck.stopReading();
    const rssBefore = rss();

    const message = "x".repeat(16 * 1024);
    const started = Date.now();
    let sent = 0;
    let evictedAt: number | undefined;
    // 16 KiB broadcasts for 6 s (the non-reading client grew the server by 167 MB in 12 s).
    while (Date.now() - started < 6000) {
      for (let i = 0; i < 20; i++) sender.emit("broadcast", message);
      sent += 20;
      await sender.emitWithAck("get-time");
      if (evictedAt === undefined && (await connections()) === 2) evictedAt = Date.now() - started;
    }
    await eventually(() => healthyGot === sent, 10_000, "the healthy client receiving every broadcast");
    const rssAfter = rss();
    const growthMb = (rssAfter - rssBefore) / 1e6;
    // Reading again, the stuck client finds its connection closed (after what the kernels still held).
    stuck.tcp.resume();
    await Promise.race([stuck.closed, sleep(5000)]);
    console.log(
      `slow consumer: ${sent} broadcasts of 16 KiB (${((sent * 16) / 1024).toFixed(0)} MiB per client); the ` +
        `non-reading websocket was closed by the server after ${evictedAt} ms; healthy client got ` +
        `${healthyGot}/${sent}; server RSS ${(rssBefore / 1e6).toFixed(0)} → ${(rssAfter / 1e6).toFixed(0)} MB ` +
        `(${growthMb >= 0 ? "+" : ""}${growthMb.toFixed(1)} MB)`,
    );
    expect(evictedAt).toBeDefined();
    expect(await slowConsumers()).toBe(1);
    expect(stuck.tcp.destroyed).toBe(true);
    expect(healthy.connected).toBe(true);
    expect(growthMb).toBeLessThan(60);
  }, 40_000);
  it("closes a room member that stops reading once room messages (written to it as prepared frames) pass the bound", async () => {
    const server = await startServer({
      MAX_SOCKET_BUFFER_BYTES: String(256 * 1024),
      RATE_LIMIT_EVENTS_PER_S: "100000",
      RATE_LIMIT_BURST: "100000",
    });
    const sender = await connect(server.url);
    const healthy = await connect(server.url);
    for (const c of [sender, healthy]) await c.emitWithAck("join-room", { room: "slow" });
    const stuck = await openRawWebSocket(server.url);
    stuck.send('42["join-room",{"room":"slow"}]');
    await eventually(() => server.app.io.of("/").adapter.rooms.get("room:slow")?.size === 3, 3000, "three members");
    let healthyGot = 0;
    healthy.on("room-message-received", () => healthyGot++);
    stuck.stopReading();

    const message = "x".repeat(16 * 1024);
    let sent = 0;
    // 16 KiB messages until the stuck member is gone (the kernels hold a few MiB first), at most 10 s.
    const started = Date.now();
    while (server.app.io.of("/").sockets.size === 3 && Date.now() - started < 10_000) {
      await Promise.all(
        Array.from({ length: 20 }, () => sender.emitWithAck("room-message", { room: "slow", message })),
      );
      sent += 20;
    }
    expect(server.app.io.of("/").sockets.size).toBe(2);
    await eventually(() => healthyGot === sent, 10_000, "the healthy member receiving every message");
    expect(healthy.connected).toBe(true);
  }, 30_000);
});

describe("bounded replies", () => {
  it("pages GET /api/posts (limit ≤ 100, default 50, before=<id>) and names a bad parameter", async () => {
    const redis = await startRedis();
    onCleanup(() => redis.stop());
    for (const env of [{}, { REDIS_URL: redis.url }] as Array<Record<string, string>>) {
      const { url, app } = await startServer(env);
      await eventually(() => app.isReady(), 5000, "redis ready");
      for (let i = 0; i < 120; i++)
        await httpRequest(`${url}/api/posts`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ title: `p${i}`, body: "b" }),
        });
      const page = async (query: string) => {
        const r = await httpRequest(`${url}/api/posts${query}`);
        return { ...r, posts: r.status === 200 ? (JSON.parse(r.body) as Post[]) : [] };
      };
      const first = await page("");
      const second = await page(`?limit=100&before=${first.posts.at(-1)?.id}`);
      const tail = await page(`?before=${second.posts.at(-1)?.id}`);
      console.log(
        `${"REDIS_URL" in env ? "redis" : "memory"} store, 120 posts: default page ${first.posts.length} ` +
          `(${first.body.length} bytes), next ${second.posts.length}, last ${tail.posts.length}`,
      );
      expect(first.posts.map((p) => p.title)).toEqual(Array.from({ length: 50 }, (_, i) => `p${119 - i}`));
      expect(second.posts.map((p) => p.title)).toEqual(Array.from({ length: 70 }, (_, i) => `p${69 - i}`));
      expect(tail.posts).toEqual([]);
      for (const [query, field] of [
        ["?limit=101", "limit"],
        ["?limit=0", "limit"],
        ["?limit=abc", "limit"],
        ["?before=nope", "before"],
      ] as const) {
        const bad = await page(query);
        expect(bad.status).toBe(400);
        expect(JSON.parse(bad.body)).toMatchObject({ error: { code: "INVALID_QUERY", field } });
      }
    }
  }, 30_000);

  it("answers a 900 KB event name with a bounded error", async () => {
    const { url } = await startServer();
    const client = await connect(url);
    const name = "e".repeat(900 * 1024);
    const error = new Promise<ErrorPayload>((resolve) => client.once("error", resolve));
    const ack = await new Promise<unknown>((resolve) => emitRaw(client, name, 1, resolve));
    const size = JSON.stringify(await error).length + JSON.stringify(ack).length;
    console.log(`unknown event with a ${name.length}-byte name → error event + ack: ${size} bytes`);
    expect(size).toBeLessThan(600);
    expect((await error).code).toBe("UNKNOWN_EVENT");
  });

  it("trusts X-Forwarded-For from loopback only by default, and names TRUST_PROXY when it is wrong", () => {
    expect(parseConfig({}).limits.trustProxy).toEqual(["loopback"]);
    expect(parseConfig({ TRUST_PROXY: "10.0.0.0/8, uniquelocal" }).limits.trustProxy).toEqual([
      "10.0.0.0/8",
      "uniquelocal",
    ]);
    expect(() => parseConfig({ TRUST_PROXY: "true" })).toThrow(/TRUST_PROXY/);
    expect(() => parseConfig({ RATE_LIMIT_EVENTS_PER_S: "x" })).toThrow(/RATE_LIMIT_EVENTS_PER_S/);
  });
});
