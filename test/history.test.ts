import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { RoomMessage } from "../src/contract.js";
import { startRedis, type RedisServer } from "./support/redis.js";
import {
  cleanupAll,
  connect,
  emitRaw,
  eventually,
  next,
  record,
  sleep,
  startServer,
  type ClientSocket,
} from "./support/server.js";

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(() => redis.stop());
afterEach(cleanupAll);

type Store = "memory" | "redis";
type Transport = "websocket" | "polling";

function ackOf<T = Record<string, unknown>>(client: ClientSocket, event: string, ...args: unknown[]): Promise<T> {
  return new Promise((resolve) => emitRaw(client, event, ...args, resolve));
}

async function server(store: Store, env: Record<string, string> = {}) {
  const redisEnv: Record<string, string> =
    store === "redis" ? { REDIS_URL: redis.url, REDIS_KEY_PREFIX: `t-${randomUUID()}:` } : {};
  // These tests send hundreds of messages a second from one socket: the per-socket rate limit is off here.
  const started = await startServer({ RATE_LIMIT_EVENTS_PER_S: "0", ...redisEnv, ...env });
  await eventually(() => started.app.isReady(), 5000, "ready");
  return started;
}

interface Ack {
  ok: boolean;
  room: string;
  epoch: string | null;
  offset: number;
  recovered: boolean;
  missed: number;
  messages: RoomMessage[];
  error?: { code: string; message: string };
}

async function send(client: ClientSocket, room: string, message: string, id?: string): Promise<Ack> {
  return ackOf<Ack>(client, "room-message", id === undefined ? { room, message } : { room, message, id });
}

const offsets = (messages: RoomMessage[]) => messages.map((m) => m.offset);

describe.each<[Store, Transport]>([
  ["memory", "websocket"],
  ["memory", "polling"],
  ["redis", "websocket"],
  ["redis", "polling"],
])("room history (%s store, %s)", (store, transport) => {
  const join = (url: string) => connect(url, { transports: [transport] });

  it("numbers a room's messages 1, 2, 3 … and delivers them in order to every member, sender included", async () => {
    const { url } = await server(store);
    const [a, b] = await Promise.all([join(url), join(url)]);
    const first = await ackOf<Ack>(a, "join-room", "numbers");
    expect(first).toEqual({ ok: true, room: "numbers", epoch: null, offset: 0, recovered: false, missed: 0 });
    await ackOf(b, "join-room", { room: "numbers" });
    const seenA = record(a, "room-message-received");
    const seenB = record(b, "room-message-received");
    const acks = await Promise.all(Array.from({ length: 30 }, (_, i) => send(i % 2 ? a : b, "numbers", `m${i}`)));
    const epoch = acks[0]?.epoch;
    expect(typeof epoch).toBe("string");
    expect(acks.map((ack) => ack.epoch)).toEqual(acks.map(() => epoch));
    expect(acks.map((ack) => ack.offset).sort((x, y) => x - y)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    await eventually(() => seenA.length === 30 && seenB.length === 30, 5000, "30 deliveries each");
    const expected = Array.from({ length: 30 }, (_, i) => i + 1);
    expect(offsets(seenA)).toEqual(expected);
    expect(offsets(seenB)).toEqual(expected);
    expect(seenA).toEqual(seenB);
    // Each message carries the offset its sender was acknowledged with.
    for (const [i, ack] of acks.entries()) {
      expect(seenA.find((m) => m.offset === ack.offset)).toMatchObject({ message: `m${i}`, epoch, room: "numbers" });
    }
  });

  it("keeps the seed client's printout order: echo, broadcast, join-room, room-message, get-time unawaited", async () => {
    const { url } = await server(store);
    const client = await join(url);
    const order: string[] = [];
    client.on("echo-response", (m) => order.push(`echo ${String(m)}`));
    client.on("broadcast-message", (m) => order.push(`broadcast ${m.message}`));
    client.on("room-joined", (room) => order.push(`joined ${room}`));
    client.on("room-message-received", (m) => order.push(`message ${m.message}`));
    client.on("current-time", () => order.push("time"));
    client.emit("echo", "Hello, server!");
    client.emit("broadcast", "Hi everyone!");
    client.emit("join-room", "test-room");
    client.emit("room-message", { room: "test-room", message: "Hello room!" });
    client.emit("get-time");
    await eventually(() => order.length === 5, 5000, "five answers");
    expect(order).toEqual([
      "echo Hello, server!",
      "broadcast Hi everyone!",
      "joined test-room",
      "message Hello room!",
      "time",
    ]);
  });

  it("answers an unknown event sent while a join replays after the join, in the order sent", async () => {
    const { url } = await server(store);
    const client = await join(url);
    const order: string[] = [];
    client.on("room-joined", (room) => order.push(`joined ${room}`));
    client.on("error", (e) => order.push(`error ${e.code}`));
    client.on("current-time", () => order.push("time"));
    const acks: string[] = [];
    emitRaw(client, "join-room", "ordered", () => acks.push("join"));
    emitRaw(client, "no-such-event", (r: { error?: { code: string } }) => acks.push(`unknown ${r.error?.code}`));
    client.emit("get-time");
    await eventually(() => order.length === 3 && acks.length === 2, 5000, "three answers and two acks");
    expect(order).toEqual(["joined ordered", "error UNKNOWN_EVENT", "time"]);
    expect(acks).toEqual(["join", "unknown UNKNOWN_EVENT"]);
  });

  it("acknowledges a resend with the same id with the first offset and does not deliver it again", async () => {
    const { url } = await server(store);
    const [a, b] = await Promise.all([join(url), join(url)]);
    await ackOf(a, "join-room", "dedupe");
    await ackOf(b, "join-room", "dedupe");
    const seen = record(b, "room-message-received");
    const first = await send(a, "dedupe", "once", "id-1");
    const again = await send(a, "dedupe", "changed body", "id-1");
    const other = await send(a, "dedupe", "next", "id-2");
    expect(again).toEqual(first);
    expect(other.offset).toBe(first.offset + 1);
    await eventually(() => seen.length === 2, 5000, "two deliveries");
    await sleep(100);
    expect(seen.map((m) => [m.id, m.message, m.offset])).toEqual([
      ["id-1", "once", 1],
      ["id-2", "next", 2],
    ]);
  });

  it("replays what a member missed before its join ack, then delivers live messages after it", async () => {
    const { url } = await server(store);
    const [sender, member] = await Promise.all([join(url), join(url)]);
    await ackOf(sender, "join-room", "replay");
    for (let i = 1; i <= 5; i++) await send(sender, "replay", `before ${i}`);
    const epoch = (await send(sender, "replay", "before 6")).epoch;
    const events: string[] = [];
    member.on("room-message-received", (m) => events.push(`message ${m.offset}`));
    const ack = await ackOf<Ack>(member, "join-room", { room: "replay", since: { epoch, offset: 2 } });
    events.push("ack");
    expect(ack).toEqual({ ok: true, room: "replay", epoch, offset: 6, recovered: true, missed: 4 });
    await send(sender, "replay", "after");
    await eventually(() => events.length === 6, 5000, "live message");
    expect(events).toEqual(["message 3", "message 4", "message 5", "message 6", "ack", "message 7"]);
  });

  it("holds a joining member's live messages until its replay and ack are out, with no gap and no duplicate", async () => {
    const { url } = await server(store);
    const [sender, member] = await Promise.all([join(url), join(url)]);
    await ackOf(sender, "join-room", "busy");
    const epoch = (await send(sender, "busy", "m1")).epoch;
    // Messages keep flowing while the member joins: it must see 2.. without a hole, each once, in order.
    let sending = true;
    const flow = (async () => {
      while (sending) await send(sender, "busy", "flow");
    })();
    const seen: number[] = [];
    member.on("room-message-received", (m) => seen.push(m.offset));
    await sleep(20);
    const ack = await ackOf<Ack>(member, "join-room", { room: "busy", since: { epoch, offset: 1 } });
    expect(ack.recovered).toBe(true);
    await sleep(50);
    sending = false;
    await flow;
    const last = (await send(sender, "busy", "last")).offset;
    await eventually(() => seen.at(-1) === last, 5000, "last message");
    const dupes = seen.filter((o, i) => seen.indexOf(o) !== i);
    expect(dupes).toEqual([]);
    expect(seen).toEqual(Array.from({ length: last - 1 }, (_, i) => i + 2));
  });

  it("says recovered: false for another epoch, a future offset, or a trimmed history", async () => {
    const { url } = await server(store, { HISTORY_SIZE: "5" });
    const [sender, member] = await Promise.all([join(url), join(url)]);
    await ackOf(sender, "join-room", "trim");
    let epoch: string | null = null;
    for (let i = 1; i <= 8; i++) epoch = (await send(sender, "trim", `m${i}`)).epoch;
    const seen = record(member, "room-message-received");
    const gap = { ok: true, room: "trim", epoch, offset: 8, recovered: false, missed: 0 };
    expect(await ackOf(member, "join-room", { room: "trim", since: { epoch: "other", offset: 3 } })).toEqual(gap);
    expect(await ackOf(member, "join-room", { room: "trim", since: { epoch, offset: 9 } })).toEqual(gap);
    expect(await ackOf(member, "join-room", { room: "trim", since: { epoch, offset: 2 } })).toEqual(gap);
    expect(seen).toEqual([]);
    // The 5 newest are kept: from offset 3 on, everything after is there.
    const kept = await ackOf<Ack>(member, "join-room", { room: "trim", since: { epoch, offset: 3 } });
    expect(kept).toMatchObject({ recovered: true, missed: 5 });
    expect(offsets(seen)).toEqual([4, 5, 6, 7, 8]);
  });

  it("replays at most 100 before the ack and pages the rest with room-history", async () => {
    const { url } = await server(store);
    const [sender, member] = await Promise.all([join(url), join(url)]);
    await ackOf(sender, "join-room", "long");
    const acks = await Promise.all(Array.from({ length: 250 }, (_, i) => send(sender, "long", `m${i}`)));
    const epoch = acks[0]?.epoch ?? null;
    const seen = record(member, "room-message-received");
    const ack = await ackOf<Ack>(member, "join-room", { room: "long", since: { epoch, offset: 0 } });
    expect(ack).toMatchObject({ recovered: true, missed: 100, offset: 250 });
    expect(offsets(seen)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    const page = await ackOf<Ack>(member, "room-history", { room: "long", since: { epoch, offset: 100 } });
    expect(page).toMatchObject({ ok: true, room: "long", epoch, offset: 250, recovered: true });
    expect(offsets(page.messages)).toEqual(Array.from({ length: 100 }, (_, i) => i + 101));
    const rest = await ackOf<Ack>(member, "room-history", { room: "long", since: { epoch, offset: 200 }, limit: 30 });
    expect(offsets(rest.messages)).toEqual(Array.from({ length: 30 }, (_, i) => i + 201));
    const end = await ackOf<Ack>(member, "room-history", { room: "long", since: { epoch, offset: 250 } });
    expect(end).toMatchObject({ recovered: true, messages: [] });
  });

  it("pages a replay of large messages below the slow-consumer cap, and room-history pages the rest", async () => {
    const { url } = await server(store);
    const [sender, member] = await Promise.all([join(url), join(url)]);
    await ackOf(sender, "join-room", "big");
    const body = (i: number) => `${i}:`.padEnd(16 * 1024, "x");
    let epoch: string | null = null;
    for (let i = 1; i <= 40; i++) epoch = (await send(sender, "big", body(i))).epoch;
    const seen = record(member, "room-message-received");
    const ack = await ackOf<Ack>(member, "join-room", { room: "big", since: { epoch, offset: 0 } });
    expect(ack).toMatchObject({ recovered: true, offset: 40 });
    expect(ack.missed).toBeGreaterThan(0);
    expect(ack.missed).toBeLessThan(20);
    expect(offsets(seen)).toEqual(Array.from({ length: ack.missed }, (_, i) => i + 1));
    let at = ack.missed;
    while (at < 40) {
      const page = await ackOf<Ack>(member, "room-history", { room: "big", since: { epoch, offset: at } });
      expect(page.messages.length).toBeGreaterThan(0);
      expect(page.messages.length).toBeLessThan(20);
      expect(page.messages[0]?.offset).toBe(at + 1);
      at = page.messages.at(-1)?.offset ?? at;
    }
    expect(member.connected).toBe(true);
  });

  it("rejects since and room-history of the wrong types with INVALID_PAYLOAD, and history for non-members", async () => {
    const { url } = await server(store);
    const client = await join(url);
    const bad: unknown[] = [
      { room: "r", since: 3 },
      { room: "r", since: { epoch: 1, offset: 0 } },
      { room: "r", since: { epoch: "e", offset: -1 } },
      { room: "r", since: { epoch: "e", offset: 1.5 } },
      { room: "r", since: { epoch: "e", offset: "2" } },
      { since: { epoch: "e", offset: 1 } },
    ];
    for (const payload of bad) {
      const error = next(client, "error");
      const ack = await ackOf<Ack>(client, "join-room", payload);
      expect(ack).toMatchObject({ ok: false, error: { code: "INVALID_PAYLOAD" } });
      expect(await error).toMatchObject({ event: "join-room", code: "INVALID_PAYLOAD" });
    }
    const wrongLimit = await ackOf<Ack>(client, "room-history", {
      room: "r",
      since: { epoch: null, offset: 0 },
      limit: 101,
    });
    expect(wrongLimit).toMatchObject({ ok: false, error: { code: "INVALID_PAYLOAD" } });
    const tooLong = await send(client, "r", "x", "i".repeat(65));
    expect(tooLong).toMatchObject({ ok: false, error: { code: "INVALID_PAYLOAD" } });
    const outsider = await ackOf<Ack>(client, "room-history", { room: "r", since: { epoch: null, offset: 0 } });
    expect(outsider).toMatchObject({ ok: false, error: { code: "NOT_A_MEMBER" } });
    const error = next(client, "error");
    emitRaw(client, "room-history", { room: "r", since: { epoch: null, offset: 0 } });
    expect(await error).toMatchObject({ event: "room-history", code: "ACK_REQUIRED" });
  });

  it("forgets ids after the dedupe window and the whole history after its TTL, with a new epoch", async () => {
    const { url } = await server(store, { DEDUPE_WINDOW_S: "1", HISTORY_TTL_S: "2" });
    const client = await join(url);
    await ackOf(client, "join-room", "ttl");
    const first = await send(client, "ttl", "a", "same");
    await sleep(1200);
    const again = await send(client, "ttl", "a again", "same");
    expect(again).toMatchObject({ epoch: first.epoch, offset: 2 });
    await sleep(2200);
    const other = await join(url);
    expect(await ackOf(other, "join-room", { room: "ttl", since: { epoch: first.epoch, offset: 2 } })).toMatchObject({
      epoch: null,
      offset: 0,
      recovered: false,
    });
    const fresh = await send(client, "ttl", "after expiry", "same");
    expect(fresh.offset).toBe(1);
    expect(fresh.epoch).not.toBe(first.epoch);
  }, 15_000);
});

describe("room history on Redis failures", () => {
  it("answers STORE_UNAVAILABLE (outcome unknown) while Redis is away, and a resend with the same id lands once", async () => {
    const own = await startRedis();
    const { url } = await server("redis", { REDIS_URL: own.url, REDIS_COMMAND_TIMEOUT_MS: "300" });
    const [a, b] = await Promise.all([connect(url), connect(url)]);
    await ackOf(a, "join-room", "outage");
    await ackOf(b, "join-room", "outage");
    const seen = record(b, "room-message-received");
    expect(await send(a, "outage", "before", "k1")).toMatchObject({ ok: true, offset: 1 });
    await own.stop();
    const failed = await send(a, "outage", "during", "k2");
    expect(failed).toMatchObject({ ok: false, error: { code: "STORE_UNAVAILABLE" } });
    const restarted = await startRedis(own.port);
    try {
      await eventually(() => seen.length >= 0 && a.connected, 1000);
      let retried: Ack | undefined;
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline) {
        retried = await send(a, "outage", "during", "k2");
        if (retried.ok) break;
        await sleep(200);
      }
      // Redis came back empty (no persistence): the room starts a new epoch, and the resend lands once.
      expect(retried).toMatchObject({ ok: true, offset: 1 });
      expect(await send(a, "outage", "during", "k2")).toEqual(retried);
      await eventually(() => seen.some((m) => m.id === "k2"), 5000, "delivery after the outage");
      expect(seen.filter((m) => m.id === "k2")).toHaveLength(1);
    } finally {
      await restarted.stop();
    }
  }, 30_000);

  it("fills the gap left by a subscriber that Redis disconnected for lagging (client-output-buffer-limit)", async () => {
    const own = await startRedis();
    const env = { REDIS_URL: own.url, REDIS_KEY_PREFIX: `t-${randomUUID()}:` };
    const one = await startServer({ ...env, REPLICA_ID: "one", RATE_LIMIT_EVENTS_PER_S: "0" });
    const two = await startServer({ ...env, REPLICA_ID: "two", RATE_LIMIT_EVENTS_PER_S: "0" });
    await eventually(() => one.app.isReady() && two.app.isReady(), 5000, "ready");
    const sender = await connect(one.url);
    const member = await connect(two.url);
    await ackOf(sender, "join-room", "laggy");
    await ackOf(member, "join-room", "laggy");
    const seen = record(member, "room-message-received");
    const admin = new Redis(own.port, "127.0.0.1");
    try {
      const subscriberIds = async () =>
        String(await admin.call("CLIENT", "LIST", "TYPE", "pubsub"))
          .split("\n")
          .filter(Boolean)
          .map((line) => /id=(\d+)/.exec(line)?.[1]);
      const before = await subscriberIds();
      // Every publish of a room message now exceeds the pub/sub output buffer: Redis drops the subscribers.
      await admin.config("SET", "client-output-buffer-limit", "pubsub 1 1 0");
      // Each one larger than Redis's 16 KB reply buffer: the rest queues, past the 1-byte limit.
      const body = (i: number) => `${i}:`.padEnd(16 * 1024, "x");
      const acks = await Promise.all(Array.from({ length: 20 }, (_, i) => send(sender, "laggy", body(i))));
      expect(acks.every((ack) => ack.ok)).toBe(true);
      await admin.config("SET", "client-output-buffer-limit", "pubsub 32mb 8mb 60");
      await send(sender, "laggy", "after");
      // The subscriber really was cut off (it came back as another client).
      await eventually(() => two.app.isReady(), 5000, "subscriber back");
      expect((await subscriberIds()).filter((id) => before.includes(id)).length).toBeLessThan(before.length);
      await eventually(() => seen.length === 21, 10_000, "all 21 messages on the other replica");
      expect(offsets(seen)).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
    } finally {
      admin.disconnect();
      await own.stop();
    }
  }, 30_000);

  it("starts a new epoch when Redis comes back without the writes it acknowledged", async () => {
    const own = await startRedis();
    const { url } = await server("redis", { REDIS_URL: own.url });
    const [a, b] = await Promise.all([connect(url), connect(url)]);
    await ackOf(a, "join-room", "lost");
    await ackOf(b, "join-room", "lost");
    const seen = record(b, "room-message-received");
    const before = await send(a, "lost", "one");
    await send(a, "lost", "two");
    await sleep(1200); // a heartbeat or two
    await own.stop();
    const restarted = await startRedis(own.port);
    try {
      let after: Ack | undefined;
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline) {
        after = await send(a, "lost", "three");
        if (after.ok) break;
        await sleep(200);
      }
      expect(after).toMatchObject({ ok: true, offset: 1 });
      expect(after?.epoch).not.toBe(before.epoch);
      await eventually(() => seen.length === 3, 5000, "three deliveries");
      expect(seen.map((m) => [m.message, m.offset, m.epoch === before.epoch])).toEqual([
        ["one", 1, true],
        ["two", 2, true],
        ["three", 1, false],
      ]);
    } finally {
      await restarted.stop();
    }
  }, 30_000);
});
