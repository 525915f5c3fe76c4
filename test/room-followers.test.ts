import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { RoomMessage } from "../src/contract.js";
import { startFreezableRedis, startRedis, type RedisServer } from "./support/redis.js";
import {
  cleanupAll,
  connect,
  eventually,
  onCleanup,
  record,
  sleep,
  startServer,
  type ClientSocket,
} from "./support/server.js";

// A room's live messages go to each following replica's own channel, never back to the appending replica
// (src/history/redis-log.ts): these tests read the Redis side of that with clients of their own.

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(() => redis.stop());
afterEach(cleanupAll);

const ROOM = "followed";

async function twoReplicas(on: RedisServer = redis, extraEnv: Record<string, string> = {}) {
  const prefix = `t-${randomUUID()}:`;
  const env = { REDIS_URL: on.url, REDIS_KEY_PREFIX: prefix, RATE_LIMIT_EVENTS_PER_S: "0", ...extraEnv };
  const one = await startServer({ ...env, REPLICA_ID: "one" });
  const two = await startServer({ ...env, REPLICA_ID: "two" });
  await eventually(() => one.app.isReady() && two.app.isReady(), 5000, "redis ready");
  const tag = `${prefix}v1:{r:${ROOM}}:`;
  return { one, two, followers: `${tag}s`, roomChannel: `${tag}c` };
}

function redisClient(): Redis {
  const client = new Redis(redis.url);
  onCleanup(() => void client.disconnect());
  return client;
}

/** Every message published under `prefix`, with its channel (a pattern subscriber: not counted by NUMSUB). */
async function watchChannels(pattern: string): Promise<Array<{ channel: string; payload: string }>> {
  const seen: Array<{ channel: string; payload: string }> = [];
  const client = redisClient();
  client.on("pmessage", (_pattern: string, channel: string, payload: string) => seen.push({ channel, payload }));
  await client.psubscribe(pattern);
  return seen;
}

async function members(urlOne: string, urlTwo: string): Promise<[ClientSocket, ClientSocket]> {
  const a = await connect(urlOne);
  const b = await connect(urlTwo);
  await a.emitWithAck("join-room", ROOM);
  await b.emitWithAck("join-room", ROOM);
  return [a, b];
}

const offsetOf = (payload: string) => Number(payload.split("\n")[1]);
const offsets = (messages: RoomMessage[]) => messages.map((m) => m.offset);

describe("room followers on Redis", () => {
  it("publishes each room message once, to the other replica's channel only: none back to the sender's replica", async () => {
    const { one, two, followers, roomChannel } = await twoReplicas();
    const [a, b] = await members(one.url, two.url);
    const aGot = record(a, "room-message-received");
    const bGot = record(b, "room-message-received");
    const published = await watchChannels(`${roomChannel}*`);
    const ids = await redisClient().smembers(followers);
    expect(ids).toHaveLength(2);

    for (let i = 0; i < 5; i++) await a.emitWithAck("room-message", { room: ROOM, message: `a${i}` });
    for (let i = 0; i < 5; i++) await b.emitWithAck("room-message", { room: ROOM, message: `b${i}` });
    await eventually(() => aGot.length === 10 && bGot.length === 10, 3000, "every member has all ten");

    expect(offsets(aGot)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(offsets(bGot)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(published.filter((p) => p.channel === roomChannel)).toEqual([]);
    const channels = [...new Set(published.map((p) => p.channel))];
    expect(channels.sort()).toEqual(ids.map((id) => `${roomChannel}:${id}`).sort());
    // Each replica's channel carried the other replica's five, in offset order: 1–5 to one channel, 6–10 to the other.
    const byChannel = channels.map((channel) =>
      published.filter((p) => p.channel === channel).map((p) => offsetOf(p.payload)),
    );
    expect(byChannel.sort((x, y) => (x[0] as number) - (y[0] as number))).toEqual([
      [1, 2, 3, 4, 5],
      [6, 7, 8, 9, 10],
    ]);
  });

  it("removes a follower whose channel has no listener (a replica that stopped) at the room's next append, pattern subscribers or not", async () => {
    const { one, two, followers, roomChannel } = await twoReplicas();
    const [a, b] = await members(one.url, two.url);
    const bGot = record(b, "room-message-received");
    const store = redisClient();
    await store.sadd(followers, "stopped-replica");
    // A `PSUBSCRIBE` matching every channel (a debugging session): a publish to the stopped replica's channel reaches
    // it, but the stopped replica is still gone.
    const published = await watchChannels(`${roomChannel}*`);

    await a.emitWithAck("room-message", { room: ROOM, message: "after" });
    await eventually(() => bGot.length === 1, 3000, "delivered");
    expect(await store.sismember(followers, "stopped-replica")).toBe(0);
    expect(await store.scard(followers)).toBe(2);
    expect(published.map((p) => p.channel).filter((c) => c.endsWith(":stopped-replica"))).toEqual([]);
  });

  it("still delivers to a follower missing from the set, through the room's channel, and it joins the set again", async () => {
    const { one, two, followers, roomChannel } = await twoReplicas();
    const [a, b] = await members(one.url, two.url);
    const bGot = record(b, "room-message-received");
    const store = redisClient();
    await store.del(followers);
    const published = await watchChannels(`${roomChannel}*`);

    await a.emitWithAck("room-message", { room: ROOM, message: "while lost" });
    await eventually(() => bGot.length === 1, 3000, "delivered through the room's channel");
    expect(published.map((p) => p.channel)).toEqual([roomChannel]);
    // Both replicas heard it there (the sender's copy is dropped unread), so both joined the set again.
    await eventually(() => published.length === 1 && bGot.length === 1, 1000, "one copy");
    for (let i = 0; i < 40 && (await store.scard(followers)) < 2; i++) await sleep(50);
    expect(await store.scard(followers)).toBe(2);

    await a.emitWithAck("room-message", { room: ROOM, message: "found again" });
    await eventually(() => bGot.length === 2, 3000, "delivered");
    const after = published.slice(1).map((p) => p.channel);
    expect(after).toHaveLength(1);
    expect(after[0]?.startsWith(`${roomChannel}:`)).toBe(true);
    expect(offsets(bGot)).toEqual([1, 2]);
  });

  it("reaches a listener of the room's channel only (a replica of the previous version), and no member twice", async () => {
    const { one, two, roomChannel } = await twoReplicas();
    const [a, b] = await members(one.url, two.url);
    const aGot = record(a, "room-message-received");
    const bGot = record(b, "room-message-received");
    const previous = redisClient();
    const heard: string[] = [];
    previous.on("message", (_channel: string, payload: string) => heard.push(payload));
    await previous.subscribe(roomChannel);

    for (let i = 0; i < 3; i++) await a.emitWithAck("room-message", { room: ROOM, message: `m${i}` });
    await eventually(() => heard.length === 3 && bGot.length === 3, 3000, "all three heard");
    expect(heard.map(offsetOf)).toEqual([1, 2, 3]);
    // A record the previous version can read: its fields as before.
    expect(JSON.parse(heard[0]?.split("\n").slice(2).join("\n") ?? "")).toMatchObject({
      v: 1,
      from: a.id,
      message: "m0",
    });
    expect(offsets(aGot)).toEqual([1, 2, 3]);
    expect(offsets(bGot)).toEqual([1, 2, 3]);
  });

  it("delivers a message stored after its append timed out to the sender's replica too, and a resend of it once", async () => {
    const own = await startFreezableRedis();
    const { one, two } = await twoReplicas(own, { REDIS_COMMAND_TIMEOUT_MS: "400" });
    const [sender, remote] = await members(one.url, two.url);
    const beside = await connect(one.url);
    await beside.emitWithAck("join-room", ROOM);
    const besideGot = record(beside, "room-message-received");
    const remoteGot = record(remote, "room-message-received");

    // Frozen: the append waits in Redis's socket past its deadline, and runs (stored, published) once resumed.
    own.child.kill("SIGSTOP");
    const first = await sender.emitWithAck("room-message", { room: ROOM, message: "late", id: "late-1" });
    own.child.kill("SIGCONT");
    expect(first).toMatchObject({ ok: false, error: { code: "STORE_UNAVAILABLE" } });
    // No live copy comes back to the sender's replica: its members get the message from the history.
    await eventually(() => besideGot.length === 1 && remoteGot.length === 1, 4000, "the stored message everywhere");

    const resent = await sender.emitWithAck("room-message", { room: ROOM, message: "late", id: "late-1" });
    expect(resent).toMatchObject({ ok: true, offset: 1 });
    await sleep(300);
    expect(offsets(besideGot)).toEqual([1]);
    expect(offsets(remoteGot)).toEqual([1]);
  });

  it("delivers two replicas' concurrent messages to members on both in one order, with no gap and no duplicate", async () => {
    const { one, two } = await twoReplicas();
    const [a, b] = await members(one.url, two.url);
    const aGot = record(a, "room-message-received");
    const bGot = record(b, "room-message-received");
    const sends: Array<Promise<unknown>> = [];
    for (let i = 0; i < 40; i++) {
      sends.push(a.emitWithAck("room-message", { room: ROOM, message: `a${i}` }));
      sends.push(b.emitWithAck("room-message", { room: ROOM, message: `b${i}` }));
    }
    const acks = (await Promise.all(sends)) as Array<{ ok: boolean }>;
    expect(acks.every((ack) => ack.ok)).toBe(true);
    await eventually(() => aGot.length === 80 && bGot.length === 80, 5000, "all eighty on both");
    const all = Array.from({ length: 80 }, (_, i) => i + 1);
    expect(offsets(aGot)).toEqual(all);
    expect(offsets(bGot)).toEqual(all);
    expect(bGot.map((m) => m.message)).toEqual(aGot.map((m) => m.message));
  });
});
