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
  | {
      /** The chat-rate workload (bench/chat.ts): Socket.IO clients only. */
      cmd: "chat-connect";
      urls: string[];
      count: number;
      offset: number;
      /** Client n is in room `chat-<floor(n / roomSize)>`, on the replica `placement` picks. */
      roomSize: number;
      /**
       * `spread`: client n on replica n % urls.length (a room's members on every replica). `local`: a room's
       * members together, room r on replica r % urls.length. `one`: every client on the first replica.
       */
      placement: "spread" | "local" | "one";
      /** Rooms over all load processes. */
      rooms: number;
      /** The first `senders` members of every room send. */
      senders: number;
    }
  | {
      /** Every sender sends one message every 1/ratePerSender s from `startAt` (epoch ms) for `durationMs`. */
      cmd: "chat";
      startAt: number;
      ratePerSender: number;
      durationMs: number;
      /** Senders over all load processes: their phases spread over the interval. */
      totalSenders: number;
    }
  | { cmd: "close" };

const PAYLOAD_BYTES = 100;
const CONNECT_TIMEOUT_MS = 15_000;
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

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
/** chat-rate latencies seen by clients on the sender's own replica. */
let localLatencies: number[] = [];
/** chat-rate senders, and the acknowledgements of their messages. */
interface ChatSender {
  room: string;
  replica: number;
  /** Position in the send schedule, 0 … totalSenders-1. */
  slot: number;
  session: SocketIoSession;
}
const chatSenders: ChatSender[] = [];
let acked = 0;
let failed = 0;
let firstFailure: string | undefined;

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

// chat-rate payloads: `<sender's replica>|<send time>|` padded to PAYLOAD_BYTES.
function chatPayload(replica: number): string {
  const head = `${replica}|${now().toFixed(3)}|`;
  return head + "x".repeat(Math.max(0, PAYLOAD_BYTES - head.length));
}

function onChatPayload(text: string, replica: number): void {
  delivered++;
  if (!recordLatency) return;
  const first = text.indexOf("|");
  const latency = now() - Number(text.slice(first + 1, text.indexOf("|", first + 1)));
  latencies.push(latency);
  if (Number(text.slice(0, first)) !== replica) remoteLatencies.push(latency);
  else localLatencies.push(latency);
}

const SIO_PREFIXES = ['42["broadcast-message",', '42["room-message-received",'];
const MESSAGE_KEY = '"message":"';

interface Client {
  ws: WebSocket;
  /** Undefined in raw mode. */
  session: SocketIoSession | undefined;
}

/** Opens a client, joins `joins` (Socket.IO: each join acknowledged with ok) and hands it every payload text. */
function openClient(url: string, joins: string[], onText: (text: string) => void): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(mode === "raw" ? url.replace(/^http/, "ws") : socketIoUrl(url), {
      perMessageDeflate: false,
    });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no connection to ${url} (with ${joins.length} joins) within ${CONNECT_TIMEOUT_MS} ms`));
    }, CONNECT_TIMEOUT_MS);
    const done = (client: Client) => {
      clearTimeout(timer);
      resolve(client);
    };
    ws.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    if (mode === "raw") {
      ws.once("open", () => {
        for (const room of joins) ws.send(`j:${room}`);
        done({ ws, session: undefined });
      });
      ws.on("message", (data) => {
        const text = String(data);
        // Room frames come back whole: `r:<room>|<payload>`.
        onText(text.startsWith("r:") ? text.slice(text.indexOf("|") + 1) : text);
      });
      return;
    }
    let pending = joins.length;
    const session = new SocketIoSession((frame) => ws.send(frame), {
      onConnect: () => {
        for (const room of joins)
          session.emit("join-room", [room], ([result]) => {
            if ((result as { ok?: unknown } | undefined)?.ok !== true) {
              clearTimeout(timer);
              reject(new Error(`join-room ${room} failed: ${JSON.stringify(result)}`));
            } else if (--pending === 0) done({ ws, session });
          });
      },
    });
    ws.on("message", (data) => {
      const frame = String(data);
      if (frame.startsWith(SIO_PREFIXES[0] as string) || frame.startsWith(SIO_PREFIXES[1] as string)) {
        const start = frame.lastIndexOf(MESSAGE_KEY) + MESSAGE_KEY.length;
        onText(frame.slice(start, frame.indexOf('"', start)));
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
    const { ws } = await openClient(publisherUrl, all, (text) => onPayload(text, true, false));
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
        return openClient(urls[replica] as string, [roomName(n)], (text) => onPayload(text, false, replica !== 0));
      }),
    );
    sockets.push(...opened.map((c) => c.ws));
  }
}

// chat-rate: room `chat-<floor(n / roomSize)>`, replicas round-robin, so a room's members spread over them.
async function connectChat(
  urls: string[],
  count: number,
  offset: number,
  roomSize: number,
  rooms: number,
  senders: number,
  placement: "spread" | "local" | "one",
): Promise<void> {
  mode = "sio";
  const replicaOf = (n: number) =>
    placement === "one" ? 0 : placement === "local" ? Math.floor(n / roomSize) % urls.length : n % urls.length;
  const batch = 100;
  for (let i = 0; i < count; i += batch) {
    const opened = await Promise.all(
      Array.from({ length: Math.min(batch, count - i) }, async (_, j) => {
        const n = offset + i + j;
        const replica = replicaOf(n);
        const room = `chat-${Math.floor(n / roomSize)}`;
        const client = await openClient(urls[replica] as string, [room], (text) => onChatPayload(text, replica));
        const position = n % roomSize;
        // Slots go room by room within a position, so consecutive sends are in different rooms.
        if (position < senders && client.session)
          chatSenders.push({
            room,
            replica,
            slot: position * rooms + Math.floor(n / roomSize),
            session: client.session,
          });
        return client.ws;
      }),
    );
    sockets.push(...opened);
  }
}

// Each sender sends one message per interval at its own phase (slot / totalSenders of the interval), so the
// messages of all load processes are evenly spread and each travels alone. Bounded in count and time.
async function chat(startAt: number, ratePerSender: number, durationMs: number, totalSenders: number) {
  const interval = 1000 / ratePerSender;
  const perSender = Math.max(1, Math.round((durationMs / 1000) * ratePerSender));
  const schedule: Array<{ at: number; sender: ChatSender }> = [];
  for (const sender of chatSenders)
    for (let k = 0; k < perSender; k++)
      schedule.push({ at: startAt + ((sender.slot % totalSenders) / totalSenders + k) * interval, sender });
  schedule.sort((a, b) => a.at - b.at);
  const hardEnd = startAt + durationMs + interval + 5000;
  let sent = 0;
  for (const { at, sender } of schedule) {
    const wait = at - now();
    if (wait > 0) await sleep(wait);
    if (now() > hardEnd) break;
    sender.session.emit("room-message", [{ room: sender.room, message: chatPayload(sender.replica) }], ([result]) => {
      const r = result as { ok?: unknown; error?: { code?: string; message?: string } } | undefined;
      if (r?.ok === true) acked++;
      else {
        failed++;
        firstFailure ??= JSON.stringify(r);
      }
    });
    sent++;
  }
  return sent;
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
      case "chat-connect":
        await connectChat(
          message.urls,
          message.count,
          message.offset,
          message.roomSize,
          message.rooms,
          message.senders,
          message.placement,
        );
        return reply({ ev: "connected", count: sockets.length, senders: chatSenders.length });
      case "chat":
        return reply({
          ev: "sent",
          sent: await chat(message.startAt, message.ratePerSender, message.durationMs, message.totalSenders),
        });
      case "reset":
        delivered = 0;
        acked = 0;
        failed = 0;
        firstFailure = undefined;
        latencies = [];
        remoteLatencies = [];
        localLatencies = [];
        recordLatency = message.record;
        if (publisher) publisher.ownReceived = 0;
        return reply({ ev: "reset" });
      case "stats":
        return reply({ ev: "stats", delivered, acked, failed, firstFailure });
      case "latencies":
        return reply({ ev: "latencies", latencies, remoteLatencies, localLatencies });
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
