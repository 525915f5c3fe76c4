import { transports } from "engine.io";
import type { Socket as NetSocket } from "node:net";

interface WebSocketTransport {
  send(packets: unknown[]): void;
  socket: { _socket?: NetSocket };
}

const PATCHED = Symbol.for("realtime-server.coalesced-writes");

/**
 * Engine.IO hands a websocket transport every packet queued for a socket since its last write as one
 * batch, then writes them one by one: one syscall each. Corking the TCP socket around the batch turns
 * them into a single writev. Under fan-out load a socket often has several broadcasts queued, so this
 * saves most of the per-message system time. Applied once per process (it patches the transport class).
 */
export function coalesceWebSocketWrites(): void {
  const proto = (transports as unknown as Record<string, { prototype: WebSocketTransport }>).websocket?.prototype;
  if (!proto || (proto as unknown as Record<symbol, boolean>)[PATCHED]) return;
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
  (proto as unknown as Record<symbol, boolean>)[PATCHED] = true;
}
