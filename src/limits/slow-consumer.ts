import { AFTER_FLUSH, deferredFlushInstalled } from "../engine/coalesce.js";
import type { TypedServer } from "../events/handler.js";
import type { Logger } from "../logger.js";

/** The parts of an Engine.IO socket read here (writeBuffer and transport are not typed as public). */
interface EngineSocketView {
  id: string;
  readyState: string;
  writeBuffer?: Array<{ data?: unknown }>;
  transport?: { name?: string; socket?: { bufferedAmount?: unknown; terminate?: () => void } };
  close(discard?: boolean): void;
  [AFTER_FLUSH]?: (socket: EngineSocketView) => void;
}

/** Bytes already summed of one socket's current writeBuffer (it only grows by push until the next flush). */
interface Tally {
  buffer: unknown[];
  counted: number;
  bytes: number;
}

const sizeOf = (data: unknown): number =>
  typeof data === "string"
    ? data.length
    : data instanceof ArrayBuffer || ArrayBuffer.isView(data)
      ? data.byteLength
      : 0;

export interface SlowConsumerOptions {
  maxBytes: number;
  log: Logger;
  /** Counts one eviction. */
  evicted: () => void;
}

/**
 * Bounds what the server holds for a client that does not read: Engine.IO's write buffer for the socket
 * plus what its websocket still has to write (`ws`'s bufferedAmount: the TCP socket's queue and the frame
 * being sent). Past `maxBytes` the connection is closed at once and its queue dropped; other clients are
 * untouched. Measured after each deferred flush (src/engine/coalesce.ts), so only a socket that was just written
 * to is looked at, with no timer, and a backed-up socket's queue is summed incrementally.
 */
export function watchSlowConsumers(io: TypedServer, options: SlowConsumerOptions): void {
  const { maxBytes, log, evicted } = options;
  if (!deferredFlushInstalled()) {
    // A future Engine.IO without the private flush that src/engine/coalesce.ts defers: no hook to measure from.
    log.warn("MAX_SOCKET_BUFFER_BYTES not enforced: Engine.IO's flush could not be hooked (src/engine/coalesce.ts)");
    return;
  }
  const tallies = new WeakMap<EngineSocketView, Tally>();
  let warnedTransport = false;

  const queued = (socket: EngineSocketView): number => {
    const buffer = socket.writeBuffer;
    if (!buffer || buffer.length === 0) return 0;
    let tally = tallies.get(socket);
    if (!tally || tally.buffer !== buffer || tally.counted > buffer.length) {
      tally = { buffer, counted: 0, bytes: 0 };
      tallies.set(socket, tally);
    }
    for (let i = tally.counted; i < buffer.length; i++) tally.bytes += sizeOf(buffer[i]?.data) + 1;
    tally.counted = buffer.length;
    return tally.bytes;
  };

  const inTransport = (socket: EngineSocketView): number => {
    const transport = socket.transport;
    if (transport?.name !== "websocket") return 0;
    const amount = transport.socket?.bufferedAmount;
    if (typeof amount === "number") return amount;
    if (!warnedTransport) log.warn("websocket transport without bufferedAmount: only Engine.IO's buffer is bounded");
    warnedTransport = true;
    return 0;
  };

  const check = (socket: EngineSocketView) => {
    if (socket.readyState !== "open") return;
    const bytes = queued(socket) + inTransport(socket);
    if (bytes <= maxBytes) return;
    log.warn({ sid: socket.id, bytes, limit: maxBytes }, "SLOW_CONSUMER: outbound buffer over the limit, closed");
    evicted();
    tallies.delete(socket);
    const ws = socket.transport?.name === "websocket" ? socket.transport.socket : undefined;
    // Dropping the queue is the point: close(true) discards Engine.IO's buffer, and terminate() frees the
    // websocket's now (a close handshake would wait up to 30 s behind the data the client does not read).
    socket.close(true);
    ws?.terminate?.();
  };

  io.engine.on("connection", (raw: EngineSocketView) => {
    raw[AFTER_FLUSH] = check;
  });
}
