/**
 * The two patches of Engine.IO's internals (src/engine/): write batching and the release of handshake
 * requests. They reach into private methods and fields, so an upgrade of socket.io or engine.io can turn
 * them off without a type error; these tests fail when that happens, with real servers and clients.
 */
import { EventEmitter } from "node:events";
import { IncomingMessage, ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { Socket as NetSocket } from "node:net";
import { runInNewContext } from "node:vm";
import { setFlagsFromString } from "node:v8";
import { afterEach, describe, expect, it } from "vitest";
import { AFTER_FLUSH, coalesceWebSocketWrites, deferredFlushInstalled } from "../src/engine/coalesce.js";
import { socketIoEngine, type EngineIoModule } from "../src/engine/engine-io.js";
import { directFrames } from "../src/engine/direct-frames.js";
import { releaseHandshakeRequests } from "../src/engine/release-requests.js";
import { captureLog, startLoggedServer } from "./support/capture-log.js";
import { cleanupAll, connect, eventually, record, sleep, startServer, type TestServer } from "./support/server.js";

afterEach(cleanupAll);

/** engine.io as socket.io requires it, resolved here on its own (not through src/engine/engine-io.ts). */
const socketIoPath = createRequire(import.meta.url).resolve("socket.io");
const enginePath = createRequire(socketIoPath).resolve("engine.io");
const engine = createRequire(socketIoPath)("engine.io") as {
  Server: new (...args: never[]) => object;
  Socket: new (...args: never[]) => object;
  transports: { websocket: new (...args: never[]) => object };
};

const DEFERRED = Symbol.for("realtime-server.deferred-flush");
const CORKED = Symbol.for("realtime-server.corked-batches");

interface EngineSocket {
  request: unknown;
  transport: {
    name: string;
    socket: { _socket: NetSocket; _sender: { sendFrame(list: Buffer[], cb?: () => void): void } };
  };
}

/** The Engine.IO socket of every Socket.IO socket of the default namespace. */
const engineSockets = (server: TestServer) =>
  [...server.app.io.of("/").sockets.values()].map((s) => s.conn as unknown as EngineSocket);

/**
 * Counts the writes that reach the TCP socket's libuv handle: one per write request, which is one
 * write/writev syscall when the socket is writable (as on loopback here). Only the methods this Node has.
 */
function countHandleWrites(tcp: NetSocket): () => number {
  let writes = 0;
  const handle = (tcp as unknown as { _handle: Record<string, unknown> })._handle;
  const methods = ["writev", "writeBuffer", "writeUtf8String", "writeLatin1String", "writeAsciiString"];
  for (const method of methods) {
    const original = handle[method];
    if (typeof original !== "function") continue;
    handle[method] = function (this: unknown, ...args: unknown[]) {
      writes++;
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    };
  }
  return () => writes;
}

/** V8's full GC, from a flag set at run time (vitest's workers do not run with --expose-gc). */
function collectGarbage(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

describe("the engine.io that socket.io loads", () => {
  it("is the copy src/engine/ resolves and patches, and the one every live session runs on", async () => {
    const resolved = socketIoEngine();
    expect(resolved.ok).toBe(true);
    if (!resolved.ok) return;
    expect(resolved.path).toBe(enginePath);
    expect(resolved.module).toBe(engine);

    const server = await startServer();
    await connect(server.url);
    const [conn] = engineSockets(server);
    // What socket.io created is from that copy, and runs the patched methods (the markers sit on the
    // prototypes the patches replaced methods of, so a patched second copy of engine.io would not show here).
    expect(server.app.io.engine).toBeInstanceOf(engine.Server);
    expect(conn).toBeInstanceOf(engine.Socket);
    expect(conn?.transport).toBeInstanceOf(engine.transports.websocket);
    expect((conn as unknown as Record<symbol, unknown>)[DEFERRED]).toBe(true);
    expect((conn?.transport as unknown as Record<symbol, unknown>)[CORKED]).toBe(true);
    expect(deferredFlushInstalled()).toBe(true);
  });

  it("starts without any patch warning", async () => {
    const { lines } = await startLoggedServer();
    expect(lines.filter((l) => l.msg.includes("ENGINE_PATCH_SKIPPED"))).toEqual([]);
  });
});

describe("write batching", () => {
  it("sends the k broadcasts of one tick to each websocket client in one TCP write", async () => {
    const server = await startServer();
    const clients = await Promise.all([connect(server.url), connect(server.url)]);
    const seen = clients.map((c) => record(c, "broadcast-message"));
    await sleep(50); // the connect packets are out
    const writes = engineSockets(server).map((conn) => countHandleWrites(conn.transport.socket._socket));
    expect(writes).toHaveLength(2);

    const k = 40;
    // Unpatched Engine.IO writes the first packet at once and the other k-1 when that write completes,
    // frame by frame: k writes per client. Deferred to the end of the tick and corked: one.
    for (let i = 0; i < k; i++) server.app.io.emit("broadcast-message", { from: "server", message: `m${i}` });
    const expected = Array.from({ length: k }, (_, i) => `m${i}`);
    await eventually(() => seen.every((s) => s.length === k), 5000, `all ${k} broadcasts`);
    for (const got of seen) expect(got.map((m) => m.message)).toEqual(expected);
    expect(writes.map((count) => count())).toEqual([1, 1]);
  });

  it("writes a single packet at once, in the same tick's flush (no timer)", async () => {
    const server = await startServer();
    const client = await connect(server.url);
    const seen = record(client, "broadcast-message");
    await sleep(50);
    const [conn] = engineSockets(server);
    const writes = countHandleWrites((conn as EngineSocket).transport.socket._socket);
    server.app.io.emit("broadcast-message", { from: "server", message: "one" });
    await Promise.resolve(); // one microtask: the deferred flush has run
    expect(writes()).toBe(1);
    await eventually(() => seen.length === 1, 3000, "the broadcast");
  });
});

describe("room messages written as one prepared frame", () => {
  /** Counts the frames Socket.IO's path did not write: those handed to the ws sender directly. */
  function countDirectFrames(conn: EngineSocket): () => number {
    let frames = 0;
    const sender = conn.transport.socket._sender;
    const sendFrame = sender.sendFrame.bind(sender);
    const transport = conn.transport as unknown as { send(packets: unknown[]): void };
    const send = transport.send.bind(transport);
    let inSend = false;
    transport.send = (packets) => {
      inSend = true;
      try {
        send(packets);
      } finally {
        inSend = false;
      }
    };
    sender.sendFrame = (list, cb) => {
      if (!inSend) frames++;
      sendFrame(list, cb);
    };
    return () => frames;
  }

  it("the ws engine.io loads builds frames, and every websocket transport has its ws sender where it is written to", async () => {
    const { log, lines } = captureLog();
    const frames = directFrames(log);
    expect(frames).toBeDefined();
    expect(
      frames
        ?.frame('2["x"]')
        .map((b) => b.toString("latin1"))
        .join(""),
    ).toBe("\x81\x074" + '2["x"]');
    const server = await startServer();
    await connect(server.url);
    const [conn] = engineSockets(server);
    expect(typeof conn?.transport.socket._sender.sendFrame).toBe("function");
    expect(lines).toEqual([]);
  });

  it("writes straight only when nothing of the connection is queued or in flight, and checks its buffer after", () => {
    const { log } = captureLog();
    const frames = directFrames(log);
    const frame = frames?.frame('2["x"]') ?? [];
    const written: Buffer[][] = [];
    const checked: unknown[] = [];
    const connection = (change: Record<string, unknown> = {}, transport: Record<string, unknown> = {}) => ({
      readyState: "open",
      writeBuffer: [],
      transport: {
        name: "websocket",
        writable: true,
        socket: { _sender: { sendFrame: (list: Buffer[]) => written.push(list) } },
        ...transport,
      },
      listenerCount: () => 0,
      [AFTER_FLUSH]: (c: unknown) => checked.push(c),
      ...change,
    });
    const refused = [
      connection({ writeBuffer: [{ type: "message" }] }), // this tick's packets go first
      connection({}, { writable: false }), // a write in flight: Engine.IO flushes behind it
      connection({}, { name: "polling" }),
      connection({}, { perMessageDeflate: { threshold: 1024 } }),
      connection({ readyState: "closing" }),
      connection({ listenerCount: () => 1 }), // someone counts the packets Engine.IO creates
    ];
    for (const c of refused) expect(frames?.write(c, frame)).toBe(false);
    expect(written).toEqual([]);
    const idle = connection();
    expect(frames?.write(idle, frame)).toBe(true);
    expect(written).toEqual([frame]);
    expect(checked).toEqual([idle]);
  });

  it("writes a member's first frame of a tick straight and leaves the rest of the tick to Engine.IO, all in one write", async () => {
    const { log } = captureLog();
    const frames = directFrames(log);
    const calls: string[] = [];
    // As a net.Socket: `writableCorked` counts the corks not yet undone.
    const tcp = {
      writableCorked: 0,
      cork: () => (tcp.writableCorked++, calls.push("cork")),
      uncork: () => (tcp.writableCorked--, calls.push("uncork")),
    };
    const connection = {
      readyState: "open",
      writeBuffer: [],
      transport: {
        name: "websocket",
        writable: true,
        socket: { _socket: tcp, _sender: { sendFrame: () => calls.push("frame") } },
      },
      listenerCount: () => 0,
    };
    expect([0, 1, 2].map((i) => frames?.write(connection, frames.frame(`2["m${i}"]`)))).toEqual([true, false, false]);
    expect(calls).toEqual(["cork", "frame"]);
    // Engine.IO's deferred flush (one microtask) writes the rest into the corked socket; the uncork comes after it.
    queueMicrotask(() => calls.push("engine flush"));
    await Promise.resolve();
    await Promise.resolve();
    expect(calls).toEqual(["cork", "frame", "engine flush", "uncork"]);
    expect(frames?.write(connection, frames.frame('2["next tick"]'))).toBe(true);
  });

  it("reaches websocket members straight and long-polling ones through Engine.IO, in offset order, each once", async () => {
    const server = await startServer();
    const viaWs = await connect(server.url);
    const viaPolling = await connect(server.url, { transports: ["polling"] });
    const sender = await connect(server.url);
    for (const c of [viaWs, viaPolling, sender]) await c.emitWithAck("join-room", { room: "frames" });
    const wsSeen = record(viaWs, "room-message-received");
    const pollingSeen = record(viaPolling, "room-message-received");
    const conns = engineSockets(server);
    const direct = conns.filter((c) => c.transport.name === "websocket").map(countDirectFrames);

    const n = 30;
    // Sent without waiting: some arrive while another write or an ack is still queued for the same member,
    // and take Engine.IO's queue behind it; the order must hold either way.
    await Promise.all(
      Array.from({ length: n }, (_, i) => sender.emitWithAck("room-message", { room: "frames", message: `m${i}` })),
    );
    await eventually(() => wsSeen.length === n && pollingSeen.length === n, 5000, `${n} messages to both`);
    for (const seen of [wsSeen, pollingSeen]) {
      expect(seen.map((m) => m.message)).toEqual(Array.from({ length: n }, (_, i) => `m${i}`));
      expect(seen.map((m) => m.offset)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    }
    expect(pollingSeen).toEqual(wsSeen);
    // Both websocket members (the sender is one) got most of them as prepared frames.
    expect(direct.map((count) => count() > 0)).toEqual([true, true]);
  });
});

describe("handshake request release", () => {
  it("drops the engine socket's request and the websocket response stand-in's, and the request is collected", async () => {
    const server = await startServer();
    const engineIo = server.app.io.engine as unknown as EventEmitter & {
      use(fn: (req: unknown, res: { req?: unknown }, next: () => void) => void): void;
    };
    // Runs after the app's middlewares (this one registers last): keeps the stand-in and a weak handle on
    // the request it answers.
    const standIns: Array<{ req?: unknown }> = [];
    const requests: Array<WeakRef<object>> = [];
    engineIo.use((req, res, next) => {
      if (!(res instanceof ServerResponse)) standIns.push(res);
      requests.push(new WeakRef(req as object));
      next();
    });
    await connect(server.url);
    const [conn] = engineSockets(server);
    expect(conn?.transport.name).toBe("websocket");
    expect(conn?.request).toBeNull();
    expect(standIns).toHaveLength(1);
    expect(standIns[0]?.req).toBeNull();

    const gc = collectGarbage();
    await eventually(
      () => {
        gc();
        return requests.every((r) => r.deref() === undefined);
      },
      5000,
      "the handshake request collected",
    );
  });
});

describe("a patch whose target changed", () => {
  const warnings = (lines: ReturnType<typeof captureLog>["lines"]) =>
    lines.filter((l) => l.level === 40 && l.msg.startsWith("ENGINE_PATCH_SKIPPED"));

  it("is skipped with a warning naming it, and leaves the target as it was", () => {
    const { log, lines } = captureLog();
    class Socket {}
    class WebSocketTransport {}
    const module: EngineIoModule = { Socket, transports: { websocket: WebSocketTransport } };
    const applied = coalesceWebSocketWrites(log, { ok: true, module, path: "/fake/engine.io" });
    expect(applied).toEqual({ "deferred-flush": false, "corked-batches": false });
    expect(warnings(lines).map((l) => [l.patch, l.reason, l.engine])).toEqual([
      ["deferred-flush", "Socket.prototype.flush is not a function", "/fake/engine.io"],
      ["corked-batches", "transports.websocket.prototype.send is not a function", "/fake/engine.io"],
    ]);
    expect(Reflect.ownKeys(Socket.prototype)).toEqual(["constructor"]);
    expect(Reflect.ownKeys(WebSocketTransport.prototype)).toEqual(["constructor"]);
    expect(deferredFlushInstalled({ ok: true, module, path: "/fake/engine.io" })).toBe(false);
  });

  it("warns for both patches when engine.io exports neither class, or cannot be resolved", () => {
    const { log, lines } = captureLog();
    coalesceWebSocketWrites(log, { ok: true, module: {}, path: "/fake/engine.io" });
    coalesceWebSocketWrites(log, { ok: false, reason: "engine.io not resolvable through socket.io: gone" });
    expect(warnings(lines).map((l) => [l.patch, l.reason])).toEqual([
      ["deferred-flush", "engine.io exports no Socket class"],
      ["corked-batches", "engine.io exports no transports.websocket class"],
      ["deferred-flush", "engine.io not resolvable through socket.io: gone"],
      ["corked-batches", "engine.io not resolvable through socket.io: gone"],
    ]);
  });

  it("sends room messages the usual way, with one warning, when ws or its sender is not where it was", () => {
    const { log, lines } = captureLog();
    expect(
      directFrames(log, { ok: false, reason: "engine.io not resolvable through socket.io: gone" }),
    ).toBeUndefined();
    const frames = directFrames(log);
    const connection = {
      readyState: "open",
      writeBuffer: [],
      transport: { name: "websocket", writable: true, socket: {} },
      listenerCount: () => 0,
    };
    const frame = frames?.frame('2["x"]') ?? [];
    expect(frames?.write(connection, frame)).toBe(false);
    expect(frames?.write(connection, frame)).toBe(false);
    expect(warnings(lines).map((l) => [l.patch, l.reason])).toEqual([
      ["direct-frames", "engine.io not resolvable through socket.io: gone"],
      ["direct-frames", "the websocket transport has no ws sender at socket._sender"],
    ]);
  });

  it("sends a batch uncorked, with one warning, when the websocket has no TCP socket where it was", () => {
    const { log, lines } = captureLog();
    const sent: unknown[][] = [];
    class WebSocketTransport {
      socket = {};
      send(packets: unknown[]) {
        sent.push(packets);
      }
    }
    const module: EngineIoModule = { transports: { websocket: WebSocketTransport } };
    expect(coalesceWebSocketWrites(log, { ok: true, module, path: "/fake/engine.io" })["corked-batches"]).toBe(true);
    const transport = new WebSocketTransport();
    transport.send([1, 2]);
    transport.send([3, 4]);
    expect(sent).toEqual([
      [1, 2],
      [3, 4],
    ]);
    expect(warnings(lines).map((l) => [l.patch, l.reason])).toEqual([
      ["deferred-flush", "engine.io exports no Socket class"],
      ["corked-batches", "the websocket has no TCP socket at socket._socket"],
    ]);
  });

  it("leaves a handshake request in place, with a warning, when the engine has no middlewares or fields moved", () => {
    const { log, lines } = captureLog();
    const bare = new EventEmitter();
    releaseHandshakeRequests({ engine: bare }, log);
    const rawSocket = { request: {} };
    bare.emit("connection", rawSocket);
    expect(rawSocket.request).toBeNull(); // the part that still applies
    bare.emit("connection", {});
    bare.emit("connection", {});

    let middleware: ((req: unknown, res: object, next: () => void) => void) | undefined;
    const withUse = Object.assign(new EventEmitter(), { use: (fn: typeof middleware) => (middleware = fn) });
    releaseHandshakeRequests({ engine: withUse }, log);
    const standIn = { req: {} };
    middleware?.({}, standIn, () => undefined);
    expect(standIn.req).toBeNull();
    const request = new IncomingMessage(new NetSocket());
    const response = new ServerResponse(request);
    middleware?.(request, response, () => undefined);
    expect(response.req).toBe(request); // polling: Engine.IO still answers through it
    middleware?.({}, {}, () => undefined);
    middleware?.({}, {}, () => undefined);

    expect(warnings(lines).map((l) => [l.part, l.reason])).toEqual([
      ["the websocket response stand-in's request", "io.engine.use (middlewares) is not a function"],
      ["rawSocket.request", "the Engine.IO socket has no `request` field"],
      ["the websocket response stand-in's request", "the stand-in has no `req` field"],
    ]);
  });
});
