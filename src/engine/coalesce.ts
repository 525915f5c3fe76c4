import type { Socket as NetSocket } from "node:net";
import type { Logger } from "../logger.js";
import { socketIoEngine, type EngineIoModule, type EngineIoResolution } from "./engine-io.js";

interface WebSocketTransport {
  send(packets: unknown[]): void;
  socket?: { _socket?: Partial<Pick<NetSocket, "cork" | "uncork">> };
}

interface FlushingSocket {
  readyState: string;
  writeBuffer?: unknown[];
  flush(): void;
  [AFTER_FLUSH]?: (socket: FlushingSocket) => void;
  [QUEUED]?: boolean;
}

type Marked = Record<symbol, boolean | undefined>;

const CORKED = Symbol.for("realtime-server.corked-batches");
const DEFERRED = Symbol.for("realtime-server.deferred-flush");
/** On an Engine.IO socket: queued for this tick's deferred flush. */
const QUEUED = Symbol.for("realtime-server.flush-queued");
/**
 * An Engine.IO socket may carry a function under this key: it is called after each deferred flush of that
 * socket (src/limits/slow-consumer.ts measures what is still queued there), once per tick at most.
 */
export const AFTER_FLUSH = Symbol.for("realtime-server.after-flush");

/** What a skipped patch costs, in the warning that names it. */
const EFFECT = {
  "deferred-flush":
    "each packet is written as soon as the transport is writable (a burst of k broadcasts costs every " +
    "recipient two writes or more), and MAX_SOCKET_BUFFER_BYTES is not enforced",
  "corked-batches": "a batch of packets leaves frame by frame, one write each, instead of in one writev",
} as const;

export type EnginePatch = keyof typeof EFFECT;

const warnSkipped = (log: Pick<Logger, "warn">, patch: EnginePatch, reason: string, engine: string) =>
  log.warn(
    { patch, reason, engine },
    `ENGINE_PATCH_SKIPPED: ${patch} not applied (${reason}); ${EFFECT[patch]}. ` +
      "Engine.IO keeps its own behaviour; check src/engine/ against this engine.io version",
  );

const socketPrototype = (engine: EngineIoModule) =>
  engine.Socket?.prototype as (Partial<FlushingSocket> & Marked) | undefined;

/**
 * Whether this process's Engine.IO (the copy socket.io loads) flushes through the deferred flush, and so
 * runs AFTER_FLUSH hooks.
 */
export function deferredFlushInstalled(engine: EngineIoResolution = socketIoEngine()): boolean {
  return engine.ok && socketPrototype(engine.module)?.[DEFERRED] === true;
}

/**
 * Fewer, larger writes under fan-out. Applied once per process: both patch the prototypes of the
 * engine.io that socket.io loads (src/engine/engine-io.ts). A patch whose target is missing or has
 * changed shape is skipped with a warning on `log`, and Engine.IO then works as it does unpatched.
 *
 * 1. Engine.IO writes a packet as soon as the socket's transport is writable, and queues the packets
 *    that arrive while that write is in flight. So a read that carries k broadcasts costs every
 *    recipient two writes: the first broadcast alone, then the other k-1. Deferring the flush of an
 *    open socket to the end of the current tick (one microtask for all sockets) makes that one.
 * 2. The websocket transport then writes the batch frame by frame, one syscall each; corking the TCP
 *    socket around the batch turns it into a single writev.
 *
 * `engine` is for tests, which run the patches against a stand-in.
 */
export function coalesceWebSocketWrites(
  log: Pick<Logger, "warn">,
  engine: EngineIoResolution = socketIoEngine(),
): Record<EnginePatch, boolean> {
  if (!engine.ok) {
    for (const patch of Object.keys(EFFECT) as EnginePatch[]) warnSkipped(log, patch, engine.reason, "?");
    return { "deferred-flush": false, "corked-batches": false };
  }
  return {
    "deferred-flush": deferFlushToEndOfTick(log, engine.module, engine.path),
    "corked-batches": corkBatches(log, engine.module, engine.path),
  };
}

function deferFlushToEndOfTick(log: Pick<Logger, "warn">, engine: EngineIoModule, path: string): boolean {
  const proto = socketPrototype(engine);
  if (!proto) {
    warnSkipped(log, "deferred-flush", "engine.io exports no Socket class", path);
    return false;
  }
  if (proto[DEFERRED]) return true;
  if (typeof proto.flush !== "function") {
    warnSkipped(log, "deferred-flush", "Socket.prototype.flush is not a function", path);
    return false;
  }
  const flushNow = proto.flush;
  // The sockets to flush at the end of this tick, in slots reused from tick to tick, each marked while queued.
  // Not a Set: a long-lived Set that grows and shrinks every tick allocates its tables in the old generation
  // (V8 does so for a table that is old already), garbage only a major GC collects.
  const pending: Array<FlushingSocket | undefined> = [];
  let count = 0;
  const flushPending = () => {
    let i = 0;
    try {
      // A socket queued while this loop runs is visited too (`count` is read on each pass).
      for (; i < count; i++) {
        const socket = pending[i] as FlushingSocket;
        pending[i] = undefined;
        socket[QUEUED] = false;
        flushNow.call(socket);
        socket[AFTER_FLUSH]?.(socket);
      }
    } finally {
      // After a throw, the sockets not visited yet move to the front and get their own microtask.
      const left = count - Math.min(i + 1, count);
      for (let j = 0; j < left; j++) {
        pending[j] = pending[count - left + j];
        pending[count - left + j] = undefined;
      }
      count = left;
      if (count > 0) queueMicrotask(flushPending);
    }
  };
  proto.flush = function (this: FlushingSocket) {
    // Closing and upgrading sockets keep Engine.IO's synchronous flush: their close waits on it.
    if (this.readyState !== "open") return flushNow.call(this);
    // Engine.IO flushes after every completed write too ("ready"), mostly with nothing left to write: one
    // microtask per recipient and message at chat rates, for nothing.
    if (this.writeBuffer?.length === 0 || this[QUEUED]) return;
    if (count === 0) queueMicrotask(flushPending);
    this[QUEUED] = true;
    pending[count++] = this;
  };
  proto[DEFERRED] = true;
  return true;
}

function corkBatches(log: Pick<Logger, "warn">, engine: EngineIoModule, path: string): boolean {
  const proto = engine.transports?.websocket?.prototype as (Partial<WebSocketTransport> & Marked) | undefined;
  if (!proto) {
    warnSkipped(log, "corked-batches", "engine.io exports no transports.websocket class", path);
    return false;
  }
  if (proto[CORKED]) return true;
  if (typeof proto.send !== "function") {
    warnSkipped(log, "corked-batches", "transports.websocket.prototype.send is not a function", path);
    return false;
  }
  const send = proto.send;
  let warned = false;
  proto.send = function (this: WebSocketTransport, packets: unknown[]) {
    if (packets.length < 2) return send.call(this, packets);
    // The TCP socket under `ws` (a private field of ws.WebSocket): without it the batch goes uncorked.
    const tcp = this.socket?._socket;
    if (typeof tcp?.cork !== "function" || typeof tcp.uncork !== "function") {
      if (!warned) warnSkipped(log, "corked-batches", "the websocket has no TCP socket at socket._socket", path);
      warned = true;
      return send.call(this, packets);
    }
    tcp.cork();
    try {
      send.call(this, packets);
    } finally {
      tcp.uncork();
    }
  };
  proto[CORKED] = true;
  return true;
}
