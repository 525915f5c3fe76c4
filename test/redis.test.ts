import { randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Post } from "../src/contract.js";
import { startRedis, type RedisServer } from "./support/redis.js";
import { cleanupAll, connect, eventually, next, postJson, record, startServer } from "./support/server.js";

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(() => redis.stop());
afterEach(cleanupAll);

// Two replicas sharing one real redis-server, with a key prefix of their own so tests never see each other.
async function twoReplicas() {
  const env = { REDIS_URL: redis.url, REDIS_KEY_PREFIX: `t-${randomUUID()}:` };
  const one = await startServer({ ...env, REPLICA_ID: "one" });
  const two = await startServer({ ...env, REPLICA_ID: "two" });
  await eventually(() => one.app.isReady() && two.app.isReady(), 5000, "redis ready");
  return [one, two] as const;
}

describe("two replicas through a real Redis", () => {
  it("delivers a broadcast sent on replica 1 to clients on replica 2", async () => {
    const [one, two] = await twoReplicas();
    const sender = await connect(one.url);
    const remote = await connect(two.url);
    const got = [next(sender, "broadcast-message"), next(remote, "broadcast-message")];
    sender.emit("broadcast", "across");
    for (const message of await Promise.all(got)) expect(message).toEqual({ from: sender.id, message: "across" });
  });

  it("delivers a room message sent on replica 1 to members on replica 2 and to no non-member", async () => {
    const [one, two] = await twoReplicas();
    const sender = await connect(one.url);
    const member = await connect(two.url);
    const outsider = await connect(two.url);
    await sender.emitWithAck("join-room", "shared");
    await member.emitWithAck("join-room", "shared");
    const outsiderSaw = record(outsider, "room-message-received");
    const got = next(member, "room-message-received");
    await sender.emitWithAck("room-message", { room: "shared", message: "hi" });
    expect(await got).toMatchObject({ from: sender.id, room: "shared", message: "hi", offset: 1 });
    await sender.emitWithAck("broadcast", "fence");
    await next(outsider, "broadcast-message");
    expect(outsiderSaw).toEqual([]);
  });

  it("pushes post-created from a POST on replica 1 to clients of replica 2, and both list the post", async () => {
    const [one, two] = await twoReplicas();
    const remote = await connect(two.url);
    const pushed = next(remote, "post-created");
    const res = await postJson(`${one.url}/api/posts`, { title: "t", body: "b" });
    expect(res.status).toBe(201);
    const post = (await res.json()) as Post;
    expect(await pushed).toEqual(post);
    expect(await (await fetch(`${two.url}/api/posts`)).json()).toEqual([post]);
    expect(await (await fetch(`${one.url}/api/posts`)).json()).toEqual([post]);
  });

  it("lists room members from both replicas", async () => {
    const [one, two] = await twoReplicas();
    const a = await connect(one.url);
    const b = await connect(two.url);
    await a.emitWithAck("join-room", "presence");
    await b.emitWithAck("join-room", "presence");
    const reply = await a.emitWithAck("room-members", "presence");
    expect(reply.ok && [...reply.members].sort()).toEqual([a.id, b.id].sort());
  });

  it("recovers from a Redis restart: not ready while it is down, then delivers across replicas again", async () => {
    const own = await startRedis();
    const env = { REDIS_URL: own.url, REDIS_KEY_PREFIX: `t-${randomUUID()}:` };
    const one = await startServer({ ...env, REPLICA_ID: "one" });
    const two = await startServer({ ...env, REPLICA_ID: "two" });
    await eventually(() => one.app.isReady() && two.app.isReady(), 5000, "redis ready");
    const sender = await connect(one.url);
    const remote = await connect(two.url);

    await own.stop();
    await eventually(() => !one.app.isReady() && !two.app.isReady(), 5000, "not ready without redis");
    expect((await fetch(`${two.url}/readyz`)).status).toBe(503);
    // Clients stay connected to their replica while Redis is away; posts answer 503, not 500.
    expect(sender.connected && remote.connected).toBe(true);
    const down = await fetch(`${one.url}/api/posts`);
    expect(down.status).toBe(503);
    expect(await down.json()).toEqual({
      error: { code: "STORE_UNAVAILABLE", message: "posts are unavailable, try again shortly" },
    });

    const restarted = await startRedis(own.port);
    try {
      await eventually(() => one.app.isReady() && two.app.isReady(), 10_000, "ready again");
      // Subscriptions are renewed on reconnect: a broadcast crosses replicas again.
      const got = next(remote, "broadcast-message", 5000);
      sender.emit("broadcast", "after restart");
      expect(await got).toEqual({ from: sender.id, message: "after restart" });
    } finally {
      await restarted.stop();
    }
  });

  it("reports not ready while Redis is unreachable", async () => {
    const server = await startServer({ REDIS_URL: "redis://127.0.0.1:1", REPLICA_ID: "lonely" });
    const res = await fetch(`${server.url}/readyz`);
    expect(res.status).toBe(503);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });
});
