/**
 * The batched floor: raw-ws.ts's protocol and minimalism (no validation, no logging), with the write pattern
 * our server has under fan-out. Every incoming message is framed once (`ws`'s Sender.frame, as Socket.IO
 * pre-encodes a broadcast for all its recipients); each recipient's frames are queued, and at the end of
 * the tick (one microtask for all sockets, like src/engine/coalesce.ts) each socket's queue is written
 * inside one cork of its TCP socket, so the frames of one tick leave in one writev.
 * RAW_WS_BATCHED_FRAMING=per-recipient frames each copy with ws.send instead (still inside the one cork):
 * what framing once per message saves.
 * Text protocol: `j:<room>` joins a room; `r:<room>|<payload>` goes to the room's members; anything else
 * goes to every client.
 */
import type { Socket } from "node:net";
import * as wsModule from "ws";
import { WebSocket, WebSocketServer } from "ws";

/** One incoming message to deliver: framed once (`frame`), or per recipient with ws.send. */
interface Outgoing {
  data: Buffer;
  binary: boolean;
  frame: Buffer[] | undefined;
}

interface Peer {
  ws: WebSocket;
  /** The TCP socket under the websocket (a private field of ws.WebSocket, as in src/engine/coalesce.ts). */
  tcp: Socket;
  /** Messages waiting for the end of the tick. */
  queue: Outgoing[];
}

const PER_RECIPIENT = process.env.RAW_WS_BATCHED_FRAMING === "per-recipient";

// ws's framing function (Socket.IO's adapter frames broadcasts with it): exported by ws, not in its typings.
const { Sender } = wsModule as unknown as { Sender: { frame(data: Buffer, options: object): Buffer[] } };
const encode = (data: Buffer, binary: boolean): Buffer[] =>
  Sender.frame(data, { readOnly: false, mask: false, rsv1: false, opcode: binary ? 2 : 1, fin: true });

const port = Number(process.env.PORT ?? 0);
const wss = new WebSocketServer({ port, host: "127.0.0.1", perMessageDeflate: false, clientTracking: true });
const everyone = new Set<Peer>();
const rooms = new Map<string, Set<Peer>>();
const pending = new Set<Peer>();

function flushPending(): void {
  for (const peer of pending) {
    const { ws, tcp, queue } = peer;
    peer.queue = [];
    if (ws.readyState !== WebSocket.OPEN) continue;
    tcp.cork();
    for (const { data, binary, frame } of queue) {
      if (frame) for (const buf of frame) tcp.write(buf);
      else ws.send(data, { binary });
    }
    tcp.uncork();
  }
  pending.clear();
}

/** Queues one message for every member; the first message of the tick schedules the flush. */
function deliver(data: Buffer, binary: boolean, members: Iterable<Peer>): void {
  const message: Outgoing = { data, binary, frame: PER_RECIPIENT ? undefined : encode(data, binary) };
  if (pending.size === 0) queueMicrotask(flushPending);
  for (const peer of members) {
    if (peer.queue.length === 0) pending.add(peer);
    peer.queue.push(message);
  }
}

wss.on("connection", (ws) => {
  const peer: Peer = { ws, tcp: (ws as unknown as { _socket: Socket })._socket, queue: [] };
  const joined: Array<Set<Peer>> = [];
  everyone.add(peer);
  ws.once("close", () => {
    everyone.delete(peer);
    pending.delete(peer);
    joined.forEach((members) => members.delete(peer));
  });
  ws.on("message", (raw, isBinary) => {
    const data = raw as Buffer; // binaryType "nodebuffer", the default
    const text = isBinary ? "" : data.toString();
    if (text.startsWith("j:")) {
      const room = text.slice(2);
      let members = rooms.get(room);
      if (!members) rooms.set(room, (members = new Set()));
      members.add(peer);
      joined.push(members);
      return;
    }
    if (text.startsWith("r:")) {
      deliver(data, false, rooms.get(text.slice(2, text.indexOf("|"))) ?? []);
      return;
    }
    deliver(data, isBinary, everyone);
  });
});
wss.on("listening", () => process.send?.({ ev: "listening", port: (wss.address() as { port: number }).port }));
process.on("SIGTERM", () => wss.close(() => process.exit(0)));
