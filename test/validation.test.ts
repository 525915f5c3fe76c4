import { afterEach, describe, expect, it } from "vitest";
import fc from "fast-check";
import { WebSocket } from "ws";
import type { ErrorPayload } from "../src/contract.js";
import { list, MAX_LIST_DEPTH, nestsWithin, roomMessage, roomMessageFast } from "../src/schemas.js";
import { cleanupAll, connect, emitRaw, next, startServer, type ClientSocket } from "./support/server.js";

afterEach(cleanupAll);

async function expectRejection(client: ClientSocket, event: string, args: unknown[], code: string, text: RegExp) {
  const error = next(client, "error");
  const ack = new Promise<unknown>((resolve) => emitRaw(client, event, ...args, resolve));
  const payload: ErrorPayload = await error;
  expect(payload).toMatchObject({ event, code });
  expect(payload.message).toMatch(text);
  expect(await ack).toEqual({ ok: false, error: { code, message: payload.message } });
}

describe("rejected input", () => {
  const longRoom = "r".repeat(65);
  const bigMessage = "x".repeat(16 * 1024 + 1);
  const cases: Array<[string, string, unknown[], string, RegExp]> = [
    ["join-room with a non-string room", "join-room", [42], "INVALID_PAYLOAD", /expected a room name/],
    ["join-room with an empty room", "join-room", [""], "INVALID_PAYLOAD", /1-64 characters/],
    ["join-room with a 65-character room", "join-room", [longRoom], "INVALID_PAYLOAD", /1-64 characters/],
    ["join-room with a space in the room", "join-room", ["a room"], "INVALID_PAYLOAD", /1-64 characters/],
    ["leave-room with an invalid room", "leave-room", ["bad/room"], "INVALID_PAYLOAD", /1-64 characters/],
    ["leave-room for a room not joined", "leave-room", ["elsewhere"], "NOT_A_MEMBER", /not a member/],
    ["broadcast with a non-string", "broadcast", [{ text: "hi" }], "INVALID_PAYLOAD", /message must be a string/],
    ["broadcast over 16 KiB", "broadcast", [bigMessage], "INVALID_PAYLOAD", /at most 16384 bytes/],
    ["chat without a message", "chat", [], "INVALID_PAYLOAD", /message must be a string/],
    [
      "room-message without an object",
      "room-message",
      ["hello"],
      "INVALID_PAYLOAD",
      /expected \{ room, message, id\? \}/,
    ],
    ["room-message with a bad room", "room-message", [{ room: "", message: "x" }], "INVALID_PAYLOAD", /room/],
    ["room-message over 16 KiB", "room-message", [{ room: "r", message: bigMessage }], "INVALID_PAYLOAD", /16384/],
    ["room-message to a room not joined", "room-message", [{ room: "r", message: "x" }], "NOT_A_MEMBER", /"r"/],
    ["update-list with a non-array", "update-list", ["nope"], "INVALID_PAYLOAD", /expected an array/],
    ["update-list with 1001 items", "update-list", [new Array(1001).fill(0)], "INVALID_PAYLOAD", /at most 1000/],
    ["room-members with a bad room", "room-members", ["!"], "INVALID_PAYLOAD", /1-64 characters/],
    ["an unknown event", "no-such-event", [1], "UNKNOWN_EVENT", /unknown event "no-such-event"/],
  ];

  it.each(cases)("answers %s with an error event and a failed ack", async (_name, event, args, code, text) => {
    const { url } = await startServer();
    const client = await connect(url);
    await expectRejection(client, event, args, code, text);
    // The connection and the process survive: the next valid event is served.
    expect(await client.emitWithAck("echo", "still here")).toEqual({ ok: true });
  });

  it("answers a rejected event without an ack with the error event alone", async () => {
    const { url } = await startServer();
    const client = await connect(url);
    const error = next(client, "error");
    emitRaw(client, "join-room", null);
    expect(await error).toMatchObject({ event: "join-room", code: "INVALID_PAYLOAD" });
  });

  it.each([["server-info"], ["room-members"]])("rejects %s without an acknowledgement", async (event) => {
    const { url } = await startServer();
    const client = await connect(url);
    const error = next(client, "error");
    emitRaw(client, event, "lobby");
    expect(await error).toEqual({ event, code: "ACK_REQUIRED", message: `${event} needs an acknowledgement callback` });
  });

  it("does not deliver a room message from a client that left the room", async () => {
    const { url } = await startServer();
    const client = await connect(url);
    await client.emitWithAck("join-room", "r");
    await client.emitWithAck("leave-room", "r");
    const reply = await client.emitWithAck("room-message", { room: "r", message: "x" });
    expect(reply).toMatchObject({ ok: false, error: { code: "NOT_A_MEMBER" } });
  });

  it("closes a connection whose frame exceeds maxHttpBufferSize and keeps serving others", async () => {
    const { url } = await startServer({ MAX_HTTP_BUFFER_SIZE: "2048" });
    const [big, other] = await Promise.all([connect(url), connect(url)]);
    const closed = new Promise<string>((resolve) => big.once("disconnect", resolve));
    big.emit("echo", "x".repeat(4096));
    expect(await closed).toBe("transport close");
    expect(await other.emitWithAck("echo", "fine")).toEqual({ ok: true });
  });
});

describe("the room-message fast path", () => {
  const validRoom = fc.stringMatching(/^[A-Za-z0-9_.:-]{1,64}$/);
  // Around every limit: room length and characters, message bytes (multi-byte text near 16 KiB), id length,
  // extra and missing keys, non-objects.
  const text = fc.oneof(
    fc.string(),
    fc.integer({ min: 5400, max: 5500 }).map((n) => "é€".repeat(n)),
    fc.integer({ min: 16380, max: 16390 }).map((n) => "x".repeat(n)),
  );
  const anyValue = fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.constant(undefined), fc.object());
  const candidate = fc.oneof(
    fc.record(
      {
        room: fc.oneof(validRoom, anyValue, fc.string({ maxLength: 70 })),
        message: fc.oneof(text, anyValue),
        id: fc.oneof(fc.string({ maxLength: 70 }), anyValue),
        extra: anyValue,
      },
      { requiredKeys: [] },
    ),
    anyValue,
    fc.array(fc.string()),
  );

  it("accepts only what the schema accepts, with the same value", () => {
    fc.assert(
      fc.property(candidate, (data) => {
        const fast = roomMessageFast(data);
        const parsed = roomMessage.safeParse(data);
        if (fast !== undefined) expect(parsed).toEqual({ success: true, data: fast });
      }),
      { numRuns: 5000 },
    );
  });

  it("takes the common shapes itself", () => {
    expect(roomMessageFast({ room: "lobby", message: "hi" })).toEqual({ room: "lobby", message: "hi" });
    expect(roomMessageFast({ room: "lobby", message: "hi", id: "m-1" })).toEqual({
      room: "lobby",
      message: "hi",
      id: "m-1",
    });
    expect(roomMessageFast({ room: "lobby", message: "é".repeat(8192) })).toBeDefined();
    expect(roomMessageFast({ room: "lobby", message: "é".repeat(8193) })).toBeUndefined();
    expect(roomMessageFast({ room: "lobby", message: "hi", extra: 1 })).toBeUndefined();
  });
});

describe("update-list nesting", () => {
  // An array nested `levels` deep below the list itself, as JSON would give it.
  const nested = (levels: number): unknown[] =>
    JSON.parse("[".repeat(levels + 1) + "]".repeat(levels + 1)) as unknown[];

  it(`accepts ${MAX_LIST_DEPTH} levels of nesting and rejects one more, without recursing on a very deep list`, () => {
    expect(list.safeParse(nested(MAX_LIST_DEPTH)).success).toBe(true);
    const over = list.safeParse(nested(MAX_LIST_DEPTH + 1));
    expect(over.success).toBe(false);
    expect(over.error?.issues[0]?.message).toBe(`at most ${MAX_LIST_DEPTH} levels of nesting`);
    // Deeper than the stack allows a recursive walk (or the encoder of the reply) to go.
    expect(nestsWithin(nested(100_000), MAX_LIST_DEPTH)).toBe(false);
    expect(nestsWithin([Buffer.alloc(1 << 16), { a: [1, { b: 2 }] }], 3)).toBe(true);
  });

  it("answers a list nested some thousands of levels deep with INVALID_PAYLOAD, not INTERNAL", async () => {
    const server = await startServer();
    // A raw websocket: socket.io-client's own encoder would overflow on such a payload before sending it.
    const ws = new WebSocket(`${server.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
    const depth = 9000;
    const answer = new Promise<string>((resolve) => {
      ws.on("message", (data) => {
        const text = (data as Buffer).toString();
        if (text.startsWith("40")) ws.send(`427["update-list",${"[".repeat(depth)}${"]".repeat(depth)}]`);
        if (text.startsWith("437")) resolve(text);
      });
    });
    ws.on("open", () => ws.send("40"));
    try {
      expect(JSON.parse((await answer).slice(3))).toEqual([
        { ok: false, error: { code: "INVALID_PAYLOAD", message: `at most ${MAX_LIST_DEPTH} levels of nesting` } },
      ]);
    } finally {
      ws.close();
    }
  });
});
