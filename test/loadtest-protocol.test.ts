import { afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { decode, encodeEvent, SocketIoSession, socketIoUrl } from "../loadtest/lib/socketio.js";
import { cleanupAll, connect, eventually, next, onCleanup, startServer } from "./support/server.js";

afterEach(cleanupAll);

interface Driven {
  session: SocketIoSession;
  frames: string[];
  events: Array<{ event: string; args: unknown[] }>;
  connected: Promise<string>;
  ws: WebSocket;
}

// A real websocket to the real server, driven only through the k6 protocol module.
function drive(baseUrl: string): Driven {
  const ws = new WebSocket(socketIoUrl(baseUrl));
  onCleanup(() => ws.terminate());
  const frames: string[] = [];
  const events: Driven["events"] = [];
  let resolveConnected: (sid: string) => void = () => undefined;
  const connected = new Promise<string>((resolve) => (resolveConnected = resolve));
  const session = new SocketIoSession((frame) => ws.send(frame), {
    onConnect: resolveConnected,
    onEvent: (event, args) => events.push({ event, args }),
  });
  ws.on("message", (data) => {
    const frame = String(data);
    frames.push(frame);
    session.receive(frame);
  });
  return { session, frames, events, connected, ws };
}

describe("k6 Socket.IO protocol module against the real server", () => {
  it("builds the websocket URL from an http base URL", () => {
    expect(socketIoUrl("http://localhost:5000/")).toBe("ws://localhost:5000/socket.io/?EIO=4&transport=websocket");
    expect(socketIoUrl("https://x.example.com")).toBe("wss://x.example.com/socket.io/?EIO=4&transport=websocket");
  });

  it("completes the handshake: open packet, namespace connect, socket id", async () => {
    const { url } = await startServer();
    const driven = drive(url);
    const sid = await driven.connected;
    expect(decode(driven.frames[0] as string)).toMatchObject({ type: "open", pingInterval: 25000 });
    expect(sid).toMatch(/^[\w-]{20}$/);
    expect(driven.session.connected).toBe(true);
  });

  it("joins a room, gets the ack, and receives a room message from a socket.io-client member", async () => {
    const { url } = await startServer();
    const driven = drive(url);
    await driven.connected;
    const acks: unknown[][] = [];
    driven.session.emit("join-room", ["k6-room"], (args) => acks.push(args));
    await eventually(() => acks.length === 1, 3000, "join ack");
    expect(acks[0]).toEqual([{ ok: true, room: "k6-room", epoch: null, offset: 0, recovered: false, missed: 0 }]);
    expect(driven.events).toContainEqual({ event: "room-joined", args: ["k6-room"] });

    const peer = await connect(url);
    await peer.emitWithAck("join-room", "k6-room");
    await peer.emitWithAck("room-message", { room: "k6-room", message: "from peer" });
    await eventually(() => driven.events.some((e) => e.event === "room-message-received"), 3000, "room message");
    expect(driven.events.find((e) => e.event === "room-message-received")?.args).toEqual([
      {
        from: peer.id,
        room: "k6-room",
        message: "from peer",
        id: expect.any(String),
        offset: 1,
        epoch: expect.any(String),
      },
    ]);

    const got = next(peer, "room-message-received");
    driven.session.emit("room-message", [{ room: "k6-room", message: `t=${Date.now()}` }]);
    expect((await got).from).toBe(driven.session.sid);
  });

  it("routes several acknowledgements by id and reports rejected input", async () => {
    const { url } = await startServer();
    const driven = drive(url);
    await driven.connected;
    const replies = new Map<string, unknown[]>();
    driven.session.emit("get-time", [], (args) => replies.set("time", args));
    driven.session.emit("room-message", [{ room: "nope", message: "x" }], (args) => replies.set("bad", args));
    driven.session.emit("server-info", [], (args) => replies.set("info", args));
    await eventually(() => replies.size === 3, 3000, "three acks");
    expect(replies.get("time")).toEqual([{ ok: true, time: expect.any(String) }]);
    expect(replies.get("bad")).toEqual([
      { ok: false, error: { code: "NOT_A_MEMBER", message: 'not a member of room "nope"' } },
    ]);
    expect(replies.get("info")).toEqual([{ ok: true, replica: "test-1", socketId: driven.session.sid, rooms: [] }]);
    expect(driven.events).toContainEqual({ event: "error", args: [expect.objectContaining({ code: "NOT_A_MEMBER" })] });
    expect(encodeEvent("echo", ["x"], 7)).toBe('427["echo","x"]');
  });

  it("answers the server's pings so the session outlives pingInterval + pingTimeout", async () => {
    const { url } = await startServer({ PING_INTERVAL_MS: "100", PING_TIMEOUT_MS: "100" });
    const driven = drive(url);
    await driven.connected;
    await new Promise((r) => setTimeout(r, 600));
    expect(driven.frames.filter((f) => f === "2").length).toBeGreaterThanOrEqual(3);
    expect(driven.ws.readyState).toBe(WebSocket.OPEN);
    const acks: unknown[][] = [];
    driven.session.emit("echo", ["alive"], (args) => acks.push(args));
    await eventually(() => acks.length === 1, 3000, "echo ack after pings");
  });

  it("closes the session cleanly", async () => {
    const { url, app } = await startServer();
    const driven = drive(url);
    await driven.connected;
    await eventually(() => app.io.of("/").sockets.size === 1, 3000, "server sees the socket");
    driven.session.close();
    await eventually(() => app.io.of("/").sockets.size === 0, 3000, "server drops the socket");
    driven.ws.close();
    await eventually(() => app.io.engine.clientsCount === 0, 3000, "server drops the connection");
  });
});
