import { afterEach, describe, expect, it } from "vitest";
import type { AckResult } from "../src/contract.js";
import { cleanupAll, connect, eventually, next, record, startServer } from "./support/server.js";

afterEach(cleanupAll);

describe.each([["websocket"], ["polling"]] as const)("events over %s", (transport) => {
  const join = async (url: string) => connect(url, { transports: [transport] });

  it("echoes strings, numbers, objects, arrays and binary unchanged", async () => {
    const { url } = await startServer();
    const client = await join(url);
    const payloads: unknown[] = [
      "Hello, server!",
      42,
      { sessionId: "abc", nested: { list: [1, 2] } },
      [1, 2, 3],
      [{ id: 1, name: "Alice" }],
    ];
    for (const payload of payloads) {
      const reply = next(client, "echo-response");
      client.emit("echo", payload);
      expect(await reply).toEqual(payload);
    }
    const bytes = Buffer.from([0, 1, 2, 250, 255]);
    const reply = next(client, "echo-response");
    client.emit("echo", bytes);
    const got = await reply;
    expect(Buffer.isBuffer(got)).toBe(true);
    expect(Buffer.compare(got as Buffer, bytes)).toBe(0);
  });

  it("delivers what the server emitted in the same tick as disconnecting the client", async () => {
    const { url, app } = await startServer();
    const client = await join(url);
    const got = record(client, "broadcast-message");
    const reason = new Promise<string>((resolve) => client.once("disconnect", resolve));
    const [socket] = app.io.of("/").sockets.values();
    for (let i = 0; i < 3; i++) socket?.emit("broadcast-message", { from: "server", message: `last-${i}` });
    socket?.disconnect(true);
    expect(await reason).toBe("io server disconnect");
    expect(got.map((m) => m.message)).toEqual(["last-0", "last-1", "last-2"]);
  });

  it("sends broadcast-message to every client including the sender", async () => {
    const { url } = await startServer();
    const [a, b, c] = await Promise.all([join(url), join(url), join(url)]);
    const got = [a, b, c].map((s) => next(s, "broadcast-message"));
    a.emit("broadcast", "Hi everyone!");
    for (const message of await Promise.all(got)) {
      expect(message).toEqual({ from: a.id, message: "Hi everyone!" });
    }
  });

  it("joins and leaves rooms with room-joined / room-left and acks", async () => {
    const { url } = await startServer();
    const client = await join(url);
    const joined = next(client, "room-joined");
    const ack = await client.emitWithAck("join-room", "test-room");
    expect(ack).toEqual({ ok: true, room: "test-room", epoch: null, offset: 0, recovered: false, missed: 0 });
    expect(await joined).toBe("test-room");
    const info = await client.emitWithAck("server-info");
    expect(info).toMatchObject({ ok: true, rooms: ["test-room"] });

    const left = next(client, "room-left");
    expect(await client.emitWithAck("leave-room", "test-room")).toEqual({ ok: true, room: "test-room" });
    expect(await left).toBe("test-room");
    expect(await client.emitWithAck("server-info")).toMatchObject({ rooms: [] });
  });

  it("delivers room messages to every member including the sender and to no one else", async () => {
    const { url } = await startServer();
    const [sender, member, outsider] = await Promise.all([join(url), join(url), join(url)]);
    await sender.emitWithAck("join-room", "test-room");
    await member.emitWithAck("join-room", "test-room");
    await outsider.emitWithAck("join-room", "other-room");
    const outsiderSaw = record(outsider, "room-message-received");

    const got = [sender, member].map((s) => next(s, "room-message-received"));
    const ack = await sender.emitWithAck("room-message", { room: "test-room", message: "Hello room!" });
    expect(ack).toEqual({ ok: true, room: "test-room", epoch: expect.any(String), offset: 1 });
    for (const message of await Promise.all(got)) {
      expect(message).toEqual({
        from: sender.id,
        room: "test-room",
        message: "Hello room!",
        id: expect.any(String),
        offset: 1,
        epoch: ack.ok && ack.epoch,
      });
    }
    // A round trip on the outsider's own connection orders it after anything the server sent it before.
    await outsider.emitWithAck("get-time");
    expect(outsiderSaw).toEqual([]);
  });

  it("answers get-time with current-time as an ISO string", async () => {
    const { url } = await startServer();
    const client = await join(url);
    const time = next(client, "current-time");
    const before = Date.now();
    client.emit("get-time");
    const iso = await time;
    expect(new Date(iso).toISOString()).toBe(iso);
    expect(Math.abs(Date.parse(iso) - before)).toBeLessThan(5000);
  });

  it("stores update-list and answers with user-list and the count", async () => {
    const { url } = await startServer();
    const client = await join(url);
    const users = [
      { id: 1, name: "Alice" },
      { id: 2, name: "Bob" },
    ];
    const list = next(client, "user-list");
    expect(await client.emitWithAck("update-list", users)).toEqual({ ok: true, count: 2 });
    expect(await list).toEqual(users);
  });

  it("relays chat to every client with its sender", async () => {
    const { url } = await startServer();
    const [a, b] = await Promise.all([join(url), join(url)]);
    const got = [a, b].map((s) => next(s, "chat"));
    a.emit("chat", "Hello!");
    for (const message of await Promise.all(got)) expect(message).toEqual({ from: a.id, message: "Hello!" });
  });

  it("answers server-info with the replica id, socket id and rooms", async () => {
    const { url } = await startServer({ REPLICA_ID: "replica-a" });
    const client = await join(url);
    await client.emitWithAck("join-room", "r1");
    const info = (await client.emitWithAck("server-info")) as AckResult<{ replica: string }>;
    expect(info).toEqual({ ok: true, replica: "replica-a", socketId: client.id, rooms: ["r1"] });
  });

  it("lists room-members by socket id", async () => {
    const { url } = await startServer();
    const [a, b, c] = await Promise.all([join(url), join(url), join(url)]);
    await a.emitWithAck("join-room", "lobby");
    await b.emitWithAck("join-room", "lobby");
    const reply = await c.emitWithAck("room-members", "lobby");
    expect(reply.ok).toBe(true);
    if (!reply.ok) return;
    expect(reply.room).toBe("lobby");
    expect([...reply.members].sort()).toEqual([a.id, b.id].sort());
  });

  it("acks every event with ok when a callback is given", async () => {
    const { url } = await startServer();
    const client = await join(url);
    expect(await client.emitWithAck("echo", "x")).toEqual({ ok: true });
    // Without Redis this process is the whole cluster.
    expect(await client.emitWithAck("broadcast", "x")).toEqual({ ok: true, delivered: "cluster" });
    expect(await client.emitWithAck("chat", "x")).toEqual({ ok: true, delivered: "cluster" });
    const time = await client.emitWithAck("get-time");
    expect(time.ok && typeof time.time).toBe("string");
  });
});

it("keeps a client that joins a room named like another socket's id out of that socket's private room", async () => {
  const { url, app } = await startServer();
  const [victim, spy] = await Promise.all([connect(url), connect(url)]);
  expect(await spy.emitWithAck("join-room", victim.id as string)).toMatchObject({ ok: true, room: victim.id });
  const inPrivateRoom = await app.io.in(victim.id as string).fetchSockets();
  expect(inPrivateRoom.map((s) => s.id)).toEqual([victim.id]);
});

it("delivers a burst of broadcasts sent in one tick completely and in order (coalesced writes)", async () => {
  const { url, app } = await startServer();
  const [a, b] = await Promise.all([connect(url), connect(url)]);
  const seen = [record(a, "broadcast-message"), record(b, "broadcast-message")];
  // Server-side emits in one tick queue several packets per socket; the flush waits for the end of the
  // tick and the batch leaves in one corked writev, not one write (or writev of header + payload) per packet.
  const writes: number[] = [];
  for (const socket of app.io.of("/").sockets.values()) {
    type Tcp = { _writev(...args: unknown[]): unknown; _write(...args: unknown[]): unknown };
    const tcp = (socket.conn.transport as unknown as { socket: { _socket: Tcp } }).socket._socket;
    const index = writes.push(0) - 1;
    for (const method of ["_writev", "_write"] as const) {
      const original = tcp[method].bind(tcp);
      tcp[method] = (...args: unknown[]) => {
        writes[index] = (writes[index] ?? 0) + 1;
        return original(...args);
      };
    }
  }
  for (let i = 0; i < 300; i++) app.io.emit("broadcast-message", { from: "server", message: `m${i}` });
  const expected = Array.from({ length: 300 }, (_, i) => `m${i}`);
  await eventually(() => seen.every((s) => s.length === 300), 5000, "all 300 broadcasts");
  for (const got of seen) expect(got.map((m) => m.message)).toEqual(expected);
  expect(writes).toEqual([1, 1]);
});
