import { Socket as EngineSocket, transports } from "engine.io";
import type { Socket as NetSocket } from "node:net";

interface WebSocketTransport {
  send(packets: unknown[]): void;
  socket: { _socket?: NetSocket };
}

interface FlushingSocket {
  readyState: string;
  flush(): void;
  [AFTER_FLUSH]?: (socket: FlushingSocket) => void;
}

const CORKED = Symbol.for("realtime-server.corked-batches");
const DEFERRED = Symbol.for("realtime-server.deferred-flush");
/**
 * An Engine.IO socket may carry a function under this key: it is called after each deferred flush of that
 * socket (src/limits/slow-consumer.ts measures what is still queued there), once per tick at most.
 */
export const AFTER_FLUSH = Symbol.for("realtime-server.after-flush");

/** Whether this process's Engine.IO flushes go through the deferred flush (and so run AFTER_FLUSH hooks). */
export const deferredFlushInstalled = (): boolean =>
  (EngineSocket.prototype as unknown as Record<symbol, boolean>)[DEFERRED] === true;

/**
 * Fewer, larger writes under fan-out. Applied once per process: both patch Engine.IO's prototypes.
 *
 * 1. Engine.IO writes a packet as soon as the socket's transport is writable, and queues the packets
 *    that arrive while that write is in flight. So a read that carries k broadcasts costs every
 *    recipient two writes: the first broadcast alone, then the other k-1. Deferring the flush of an
 *    open socket to the end of the current tick (one microtask for all sockets) makes that one.
 * 2. The websocket transport then writes the batch frame by frame, one syscall each; corking the TCP
 *    socket around the batch turns it into a single writev.
 */
export function coalesceWebSocketWrites(): void {
  deferFlushToEndOfTick();
  corkBatches();
}

function deferFlushToEndOfTick(): void {
  const proto = EngineSocket.prototype as unknown as FlushingSocket & Record<symbol, boolean>;
  // A future Engine.IO without this private method keeps its own behaviour (the tests would show the loss).
  if (proto[DEFERRED] || typeof proto.flush !== "function") return;
  const flushNow = proto.flush;
  const pending = new Set<FlushingSocket>();
  const flushPending = () => {
    try {
      // A socket added while this loop runs is visited too (Set iteration includes later additions).
      for (const socket of pending) {
        pending.delete(socket);
        flushNow.call(socket);
        socket[AFTER_FLUSH]?.(socket);
      }
    } finally {
      if (pending.size > 0) queueMicrotask(flushPending);
    }
  };
  proto.flush = function (this: FlushingSocket) {
    // Closing and upgrading sockets keep Engine.IO's synchronous flush: their close waits on it.
    if (this.readyState !== "open") return flushNow.call(this);
    if (pending.size === 0) queueMicrotask(flushPending);
    pending.add(this);
  };
  proto[DEFERRED] = true;
}

function corkBatches(): void {
  const proto = (transports as unknown as Record<string, { prototype: WebSocketTransport }>).websocket?.prototype;
  if (!proto || typeof proto.send !== "function" || (proto as unknown as Record<symbol, boolean>)[CORKED]) return;
  const send = proto.send;
  proto.send = function (this: WebSocketTransport, packets: unknown[]) {
    const tcp = packets.length > 1 ? this.socket._socket : undefined;
    if (!tcp) return send.call(this, packets);
    tcp.cork();
    try {
      send.call(this, packets);
    } finally {
      tcp.uncork();
    }
  };
  (proto as unknown as Record<symbol, boolean>)[CORKED] = true;
}
