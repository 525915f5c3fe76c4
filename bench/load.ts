/**
 * A load process: opens websocket clients to the setup under test and counts (and times) what they
 * receive. Driven by the orchestrator (bench/run.ts) over IPC. Socket.IO clients speak through the same
 * protocol module as the k6 scenarios; only the hot receive path is matched by prefix instead of parsed.
 */
import { WebSocket } from "ws";
import { SocketIoSession, encodeEvent, socketIoUrl } from "../loadtest/lib/socketio.js";

export type Mode = "raw" | "sio";

export type Command =
  | {
      cmd: "connect";
      urls: string[];
      /** Clients to open in this process, numbered from `offset` across all processes. */
      count: number;
      offset: number;
      mode: Mode;
      /** Client n joins room `bench-<n % rooms>`; the publisher joins them all. */
      rooms: number;
      publisherUrl?: string;
    }
  | { cmd: "reset"; record: boolean }
  | { cmd: "stats" }
  | { cmd: "latencies" }
  | { cmd: "saturate"; durationMs: number; window: number }
  | { cmd: "steady"; rate: number; durationMs: number }
  | { cmd: "close" };

const PAYLOAD_BYTES = 100;
const now = () => performance.timeOrigin + performance.now();

let mode: Mode = "raw";
let rooms = 1;
const roomName = (n: number) => `bench-${n % rooms}`;
const sockets: WebSocket[] = [];
let publisher: { broadcast(p: string): void; toRoom(room: string, p: string): void; ownReceived: number } | undefined;
let delivered = 0;
let recordLatency = false;
let latencies: number[] = [];
/** Latencies seen by clients on another replica than the publisher's. */
let remoteLatencies: number[] = [];

// `<seq>|<send time>|` padded to PAYLOAD_BYTES.
function payload(seq: number): string {
  const head = `${seq}|${now().toFixed(3)}|`;
  return head + "x".repeat(Math.max(0, PAYLOAD_BYTES - head.length));
}

function onPayload(text: string, isPublisher: boolean, remote: boolean): void {
  delivered++;
  if (isPublisher && publisher) publisher.ownReceived++;
  if (recordLatency) {
    const first = text.indexOf("|");
    const latency = now() - Number(text.slice(first + 1, text.indexOf("|", first + 1)));
    latencies.push(latency);
    if (remote) remoteLatencies.push(latency);
  }
}

const SIO_PREFIXES = ['42["broadcast-message",', '42["room-message-received",'];
const MESSAGE_KEY = '"message":"';

function openClient(url: string, joins: string[], isPublisher: boolean, remote: boolean): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(mode === "raw" ? url.replace(/^http/, "ws") : socketIoUrl(url), {
      perMessageDeflate: false,
    });
    ws.once("error", reject);
    if (mode === "raw") {
      ws.once("open", () => {
        for (const room of joins) ws.send(`j:${room}`);
        resolve(ws);
      });
      ws.on("message", (data) => {
        const text = String(data);
        // Room frames come back whole: `r:<room>|<payload>`.
        onPayload(text.startsWith("r:") ? text.slice(text.indexOf("|") + 1) : text, isPublisher, remote);
      });
      return;
    }
    let pending = joins.length;
    const session = new SocketIoSession((frame) => ws.send(frame), {
      onConnect: () => {
        for (const room of joins) session.emit("join-room", [room], () => --pending === 0 && resolve(ws));
      },
    });
    ws.on("message", (data) => {
      const frame = String(data);
      if (frame.startsWith(SIO_PREFIXES[0] as string) || frame.startsWith(SIO_PREFIXES[1] as string)) {
        const start = frame.lastIndexOf(MESSAGE_KEY) + MESSAGE_KEY.length;
        onPayload(frame.slice(start, frame.indexOf('"', start)), isPublisher, remote);
      } else {
        session.receive(frame);
      }
    });
  });
}

// Clients spread evenly over `urls`; the first URL is the publisher's replica.
async function connectAll(urls: string[], count: number, offset: number, publisherUrl?: string): Promise<void> {
  if (publisherUrl) {
    const all = Array.from({ length: rooms }, (_, i) => roomName(i));
    const ws = await openClient(publisherUrl, all, true, false);
    sockets.push(ws);
    publisher =
      mode === "raw"
        ? { broadcast: (p) => ws.send(p), toRoom: (room, p) => ws.send(`r:${room}|${p}`), ownReceived: 0 }
        : {
            broadcast: (p) => ws.send(encodeEvent("broadcast", [p])),
            toRoom: (room, p) => ws.send(encodeEvent("room-message", [{ room, message: p }])),
            ownReceived: 0,
          };
  }
  const batch = 100;
  for (let i = 0; i < count; i += batch) {
    const opened = await Promise.all(
      Array.from({ length: Math.min(batch, count - i) }, (_, j) => {
        const n = offset + i + j;
        const replica = n % urls.length;
        return openClient(urls[replica] as string, [roomName(n)], false, replica !== 0);
      }),
    );
    sockets.push(...opened);
  }
}

// Keeps at most `window` messages in flight, measured by the publisher's own copy coming back.
async function saturate(durationMs: number, window: number): Promise<number> {
  const pub = publisher;
  if (!pub) throw new Error("no publisher in this process");
  let sent = 0;
  const end = Date.now() + durationMs;
  await new Promise<void>((resolve) => {
    const pump = () => {
      if (Date.now() >= end) return resolve();
      while (sent - pub.ownReceived < window) pub.broadcast(payload(sent++));
      setImmediate(pump);
    };
    pump();
  });
  return sent;
}

async function steady(rate: number, durationMs: number): Promise<number> {
  const pub = publisher;
  if (!pub) throw new Error("no publisher in this process");
  const interval = 1000 / rate;
  const total = Math.round((durationMs / 1000) * rate);
  const start = now();
  for (let sent = 0; sent < total; sent++) {
    const due = start + sent * interval;
    const wait = due - now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    pub.toRoom(roomName(sent), payload(sent));
  }
  return total;
}

process.on("message", async (message: Command) => {
  const reply = (data: object) => process.send?.(data);
  try {
    switch (message.cmd) {
      case "connect":
        mode = message.mode;
        rooms = message.rooms;
        await connectAll(message.urls, message.count, message.offset, message.publisherUrl);
        return reply({ ev: "connected", count: sockets.length });
      case "reset":
        delivered = 0;
        latencies = [];
        remoteLatencies = [];
        recordLatency = message.record;
        if (publisher) publisher.ownReceived = 0;
        return reply({ ev: "reset" });
      case "stats":
        return reply({ ev: "stats", delivered });
      case "latencies":
        return reply({ ev: "latencies", latencies, remoteLatencies });
      case "saturate":
        return reply({ ev: "sent", sent: await saturate(message.durationMs, message.window) });
      case "steady":
        return reply({ ev: "sent", sent: await steady(message.rate, message.durationMs) });
      case "close":
        for (const ws of sockets) ws.terminate();
        reply({ ev: "closed" });
        return setTimeout(() => process.exit(0), 50);
    }
  } catch (err) {
    reply({ ev: "error", message: (err as Error).message });
  }
});
process.send?.({ ev: "ready" });
