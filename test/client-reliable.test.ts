import { afterEach, describe, expect, it } from "vitest";
import {
  createReliableRooms,
  type ReliableRooms,
  type RoomGap,
  type RoomMessageReceived,
  type SentPosition,
} from "../src/client/index.js";
import { cleanupAll, connect, eventually, onCleanup, sleep, startServer, type ClientSocket } from "./support/server.js";

afterEach(cleanupAll);

const ROOM = "reliable";
// Reconnects at once and every time: the tests close transports on purpose.
const RECONNECTING = { reconnection: true, reconnectionDelay: 20, reconnectionDelayMax: 50, randomizationFactor: 0 };

interface Member {
  socket: ClientSocket;
  rooms: ReliableRooms;
  got: RoomMessageReceived[];
  gaps: RoomGap[];
  errors: Error[];
}

async function member(url: string, opts: Parameters<typeof connect>[1] = {}): Promise<Member> {
  const socket = await connect(url, opts);
  const got: RoomMessageReceived[] = [];
  const gaps: RoomGap[] = [];
  const errors: Error[] = [];
  const rooms = createReliableRooms(socket, {
    onMessage: (message) => got.push(message),
    onGap: (gap) => gaps.push(gap),
    onError: (error) => errors.push(error),
    ackTimeoutMs: 2000,
    retryDelayMs: 20,
  });
  onCleanup(() => rooms.close());
  return { socket, rooms, got, gaps, errors };
}

/**
 * Closes the transport under `socket` (it reconnects on its own). Only once connected: an engine closed while it
 * is still opening leaves socket.io-client's manager waiting for its connect timeout (20 s), not reconnecting.
 */
async function closeTransport(socket: ClientSocket): Promise<void> {
  await eventually(() => socket.connected, 3000, "connected before closing the transport");
  socket.io.engine.close();
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Offsets 1…count in one epoch, each message once. */
function expectExactlyOnceInOrder(got: RoomMessageReceived[], count: number): void {
  expect(got.map((m) => m.offset)).toEqual(range(count).map((i) => i + 1));
  expect(new Set(got.map((m) => m.epoch)).size).toBe(1);
  expect(new Set(got.map((m) => m.id)).size).toBe(count);
  expect(new Set(got.map((m) => m.message)).size).toBe(count);
}

/** Sends `count` messages without waiting for each ack, yielding now and then so that traffic interleaves. */
async function sendMany(
  from: Member,
  count: number,
  prefix: string,
  during?: (i: number) => Promise<void> | void,
): Promise<SentPosition[]> {
  const sent: Array<Promise<SentPosition>> = [];
  for (const i of range(count)) {
    sent.push(from.rooms.send(ROOM, `${prefix}-${i}`));
    await during?.(i);
    if (i % 10 === 9) await sleep(2);
  }
  return Promise.all(sent);
}

// These tests send hundreds of messages a second from one socket: the per-socket rate limit is off here.
const NO_RATE_LIMIT = { RATE_LIMIT_EVENTS_PER_S: "0" };

describe("reliable room client", () => {
  it("delivers 200 messages from 2 senders to 3 members exactly once and in offset order", async () => {
    const { url } = await startServer(NO_RATE_LIMIT);
    const members = await Promise.all(range(3).map(() => member(url)));
    await Promise.all(members.map((m) => m.rooms.join(ROOM)));
    const [a, b] = members as [Member, Member, Member];

    const sent = await Promise.all([sendMany(a, 100, "a"), sendMany(b, 100, "b")]);
    expect(
      sent
        .flat()
        .map((p) => p.offset)
        .sort((x, y) => x - y),
    ).toEqual(range(200).map((i) => i + 1));

    await eventually(() => members.every((m) => m.got.length >= 200), 5000, "200 messages at every member");
    await sleep(100); // nothing more may arrive
    for (const m of members) {
      expectExactlyOnceInOrder(m.got, 200);
      // Each sender's messages keep their send order, and land where its acks said.
      for (const [prefix, acks] of [
        ["a", sent[0]],
        ["b", sent[1]],
      ] as const) {
        const mine = m.got.filter((msg) => msg.message.startsWith(`${prefix}-`));
        expect(mine.map((msg) => msg.message)).toEqual(range(100).map((i) => `${prefix}-${i}`));
        expect(mine.map((msg) => msg.offset)).toEqual(acks.map((ack) => ack.offset));
      }
      expect(m.got).toEqual(members[0]?.got);
      expect(m.gaps).toEqual([]);
      expect(m.errors).toEqual([]);
      expect(m.rooms.position(ROOM)).toEqual({ epoch: m.got[0]?.epoch, offset: 200 });
    }
  });

  it("loses and duplicates nothing when a member's transport closes while messages flow", async () => {
    const { url } = await startServer(NO_RATE_LIMIT);
    const sender = await member(url);
    const reader = await member(url, RECONNECTING);
    await Promise.all([sender.rooms.join(ROOM), reader.rooms.join(ROOM)]);
    let reconnects = 0;
    reader.socket.io.on("reconnect", () => reconnects++);

    await sendMany(sender, 300, "m", (i) => (i === 100 || i === 200 ? closeTransport(reader.socket) : undefined));

    await eventually(() => reader.got.length >= 300, 10_000, "300 messages after reconnects");
    await sleep(100);
    expect(reconnects).toBe(2);
    expectExactlyOnceInOrder(reader.got, 300);
    expect(reader.gaps).toEqual([]);
    expect(reader.errors).toEqual([]);
  });

  it("resends a sender's unacknowledged messages after its reconnect, with the same id, delivered once", async () => {
    const { url } = await startServer(NO_RATE_LIMIT);
    const sender = await member(url, RECONNECTING);
    const reader = await member(url);
    await Promise.all([sender.rooms.join(ROOM), reader.rooms.join(ROOM)]);
    const emitted: string[] = [];
    sender.socket.onAnyOutgoing((event: string, payload: { id?: string }) => {
      if (event === "room-message" && payload.id) emitted.push(payload.id);
    });

    let reconnects = 0;
    sender.socket.io.on("reconnect", () => reconnects++);

    const sent = await sendMany(sender, 300, "m", (i) =>
      i === 100 || i === 200 ? closeTransport(sender.socket) : undefined,
    );

    expect(new Set(sent.map((p) => p.offset)).size).toBe(300);
    expect(reconnects).toBe(2);
    await eventually(() => reader.got.length >= 300 && sender.got.length >= 300, 10_000, "300 messages");
    await sleep(100);
    expectExactlyOnceInOrder(reader.got, 300);
    expectExactlyOnceInOrder(sender.got, 300);
    // Messages in flight at each close were emitted again (same id) and still stored and delivered once.
    expect(emitted.length).toBeGreaterThan(300);
    expect(new Set(emitted)).toEqual(new Set(reader.got.map((m) => m.id)));
    expect(reader.got.map((m) => m.message)).toEqual(expect.arrayContaining(range(300).map((i) => `m-${i}`)));
  });

  it("delivers once a message resent with the same id, and acks the resend with the first offset", async () => {
    const { url } = await startServer(NO_RATE_LIMIT);
    const reader = await member(url);
    await reader.rooms.join(ROOM);
    const raw = await connect(url);
    await raw.emitWithAck("join-room", ROOM);
    const rawSeen: RoomMessageReceived[] = [];
    raw.on("room-message-received", (m) => rawSeen.push(m));

    const id = globalThis.crypto.randomUUID();
    const first = await raw.emitWithAck("room-message", { room: ROOM, message: "once", id });
    const again = await raw.emitWithAck("room-message", { room: ROOM, message: "once", id });
    expect(first).toMatchObject({ ok: true, room: ROOM, offset: 1 });
    expect(again).toEqual(first);
    const next = await reader.rooms.send(ROOM, "after");
    expect(next.offset).toBe(2);

    await eventually(() => reader.got.length >= 2 && rawSeen.length >= 2, 3000, "both messages");
    await sleep(100);
    expect(reader.got.map((m) => [m.offset, m.message, m.id === id])).toEqual([
      [1, "once", true],
      [2, "after", false],
    ]);
    expect(rawSeen.map((m) => m.message)).toEqual(["once", "after"]);
  });

  it("pages more than 100 missed messages through room-history after a reconnect", async () => {
    const { url } = await startServer(NO_RATE_LIMIT);
    const sender = await member(url);
    const reader = await member(url);
    await Promise.all([sender.rooms.join(ROOM), reader.rooms.join(ROOM)]);
    await sendMany(sender, 5, "before");
    await eventually(() => reader.got.length >= 5, 3000, "the first 5");

    reader.socket.disconnect();
    await sendMany(sender, 250, "missed");
    const outgoing: string[] = [];
    reader.socket.onAnyOutgoing((event: string) => outgoing.push(event));
    reader.socket.connect();

    await eventually(() => reader.got.length >= 255, 10_000, "255 messages");
    await sleep(100);
    expectExactlyOnceInOrder(reader.got, 255);
    expect(reader.gaps).toEqual([]);
    // One rejoin replays 100, and the other 150 take two pages.
    expect(outgoing.filter((e) => e === "join-room")).toHaveLength(1);
    expect(outgoing.filter((e) => e === "room-history")).toHaveLength(2);
    expect(reader.rooms.position(ROOM)).toEqual({ epoch: reader.got[0]?.epoch, offset: 255 });
  });

  it("reports a gap when the since epoch is unknown and delivers the room's history from its start", async () => {
    const { url } = await startServer(NO_RATE_LIMIT);
    const sender = await member(url);
    await sender.rooms.join(ROOM);
    const sent = await sendMany(sender, 3, "m");
    const epoch = sent[0]?.epoch;

    const reader = await member(url);
    await reader.rooms.join(ROOM, { epoch: "no-such-epoch", offset: 7 });
    expect(reader.gaps).toEqual([
      { room: ROOM, from: { epoch: "no-such-epoch", offset: 7 }, to: { epoch, offset: 0 }, reason: "epoch-changed" },
    ]);
    expect(reader.got.map((m) => [m.epoch, m.offset])).toEqual([
      [epoch, 1],
      [epoch, 2],
      [epoch, 3],
    ]);
    expect(reader.rooms.position(ROOM)).toEqual({ epoch, offset: 3 });
  });

  it("reports a gap when the history was trimmed past the position it rejoins from", async () => {
    const { url } = await startServer({ HISTORY_SIZE: "50" });
    const sender = await member(url);
    const reader = await member(url);
    await Promise.all([sender.rooms.join(ROOM), reader.rooms.join(ROOM)]);
    const [{ epoch }] = (await sendMany(sender, 5, "before")) as [SentPosition];
    await eventually(() => reader.got.length >= 5, 3000, "the first 5");

    reader.socket.disconnect();
    await sendMany(sender, 80, "missed");
    reader.socket.connect();
    await eventually(() => reader.gaps.length > 0, 3000, "a gap");
    expect(reader.gaps).toEqual([
      { room: ROOM, from: { epoch, offset: 5 }, to: { epoch, offset: 85 }, reason: "history-trimmed" },
    ]);

    await sender.rooms.send(ROOM, "after");
    await eventually(() => reader.got.length >= 6, 3000, "the next live message");
    expect(reader.got.map((m) => m.offset)).toEqual([1, 2, 3, 4, 5, 86]);
  });

  it("reports a gap when a live message comes in a new epoch (the room's history expired)", async () => {
    const { url } = await startServer({ HISTORY_TTL_S: "1" });
    const sender = await member(url);
    const reader = await member(url);
    await Promise.all([sender.rooms.join(ROOM), reader.rooms.join(ROOM)]);
    const [{ epoch }] = (await sendMany(sender, 2, "old")) as [SentPosition];
    await eventually(() => reader.got.length >= 2, 3000, "the first 2");

    await sleep(1200);
    const next = await sender.rooms.send(ROOM, "new");
    expect(next.epoch).not.toBe(epoch);
    await eventually(() => reader.got.length >= 3, 3000, "the message in the new epoch");
    expect(reader.gaps).toEqual([
      { room: ROOM, from: { epoch, offset: 2 }, to: { epoch: next.epoch, offset: 0 }, reason: "epoch-changed" },
    ]);
    expect(reader.got.at(-1)).toMatchObject({ epoch: next.epoch, offset: 1, message: "new" });
    expect(reader.rooms.position(ROOM)).toEqual({ epoch: next.epoch, offset: 1 });
  });
});
