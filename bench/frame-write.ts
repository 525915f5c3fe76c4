/**
 * `npx tsx bench/frame-write.ts`: the server's CPU per member write of a prepared room-message frame
 * (src/engine/direct-frames.ts), with the frame as `ws` builds it (header and payload, two parts) against the same
 * bytes in one buffer; each with the TCP socket corked for the tick as direct-frames does, and without.
 *
 * 7 websocket members (a replica's share of a room of 20 over 3 replicas) on 127.0.0.1, their client in a child
 * process (its CPU is not counted); one message per tick (setImmediate), as at chat rates. Every variant runs
 * ROUNDS times in a rotated order, MESSAGES messages each after a warm-up; prints the median µs per write with
 * min–max. Bounded: about 10 s.
 */
import { fork } from "node:child_process";
import { createRequire } from "node:module";
import type { Socket } from "node:net";
import { fileURLToPath } from "node:url";

const MEMBERS = 7;
const MESSAGES = 4000;
const WARMUP = 300;
const ROUNDS = 6;

interface WsLike {
  _socket: Socket;
  _sender: { sendFrame(list: Buffer[]): void };
  on(event: "message", listener: () => void): void;
}
interface WsModule {
  WebSocketServer: new (options: { port: number; host: string }) => {
    on(event: "listening", listener: () => void): void;
    on(event: "connection", listener: (ws: WsLike) => void): void;
    address(): { port: number };
    close(): void;
  };
  WebSocket: new (url: string) => WsLike;
  Sender: { frame(data: Buffer, options: object): Buffer[] };
}
const ws = createRequire(import.meta.url)("ws") as WsModule;

async function main(): Promise<void> {
  const server = new ws.WebSocketServer({ port: 0, host: "127.0.0.1" });
  const members: WsLike[] = [];
  server.on("connection", (socket) => members.push(socket));
  await new Promise<void>((resolve) => server.on("listening", resolve));
  const child = fork(fileURLToPath(import.meta.url), ["--members", `ws://127.0.0.1:${server.address().port}`]);
  try {
    for (let i = 0; members.length < MEMBERS && i < 500; i++) await new Promise((r) => setTimeout(r, 10));
    if (members.length < MEMBERS) throw new Error("members did not connect");
    report(await measure(members));
  } finally {
    child.kill();
    server.close();
  }
}

const packet =
  '2["room-message-received",{"from":"k1Zb6AFHbWkSUwoGAAAB","room":"room-7","message":"a chat message of a usual length, ' +
  'about a line","id":"c0ffee00-1234-4321-8765-0123456789ab","offset":12345,"epoch":"019ab1c2d3e4-2b1c5d1e-1111-2222"}]';
const options = { readOnly: false, mask: false, rsv1: false, opcode: 1, fin: true };
const twoParts = () => ws.Sender.frame(Buffer.from("4" + packet), options);
const onePart = () => [Buffer.concat(twoParts())];

// Corked as direct-frames corks: each member's socket until the end of the tick (two microtasks later).
function corked(build: () => Buffer[]) {
  return (sockets: WsLike[]) => {
    const frame = build();
    for (const s of sockets) {
      s._socket.cork();
      s._sender.sendFrame(frame);
    }
    queueMicrotask(() => queueMicrotask(() => sockets.forEach((s) => s._socket.uncork())));
  };
}
function plain(build: () => Buffer[]) {
  return (sockets: WsLike[]) => {
    const frame = build();
    for (const s of sockets) s._sender.sendFrame(frame);
  };
}

const VARIANTS: Record<string, (sockets: WsLike[]) => void> = {
  "two parts, corked (before)": corked(twoParts),
  "one part, corked (now)": corked(onePart),
  "two parts, not corked": plain(twoParts),
  "one part, not corked": plain(onePart),
};

const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve));
const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 5));

async function measure(members: WsLike[]): Promise<Map<string, number[]>> {
  const names = Object.keys(VARIANTS);
  const results = new Map<string, number[]>(names.map((n) => [n, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (let j = 0; j < names.length; j++) {
      const name = names[(j + round) % names.length] as string;
      const send = VARIANTS[name] as (sockets: WsLike[]) => void;
      for (let i = 0; i < WARMUP; i++) {
        send(members);
        await nextTick();
      }
      await settle();
      const before = process.cpuUsage();
      for (let i = 0; i < MESSAGES; i++) {
        send(members);
        await nextTick();
      }
      await settle();
      const used = process.cpuUsage(before);
      results.get(name)?.push((used.user + used.system) / (MESSAGES * MEMBERS));
    }
  }
  return results;
}

function report(results: Map<string, number[]>): void {
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;
  console.log(`${MEMBERS} members, one message per tick, ${ROUNDS} rounds of ${MESSAGES} messages: CPU µs per write`);
  console.log("| variant | µs / write, median (min–max) |\n| --- | ---: |");
  for (const [name, xs] of results) {
    const f = (x: number) => x.toFixed(2);
    console.log(`| ${name} | ${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))}) |`);
  }
}

// A member's end: connects and reads everything (in the child process).
if (process.argv[2] === "--members") {
  const url = process.argv[3] as string;
  for (let i = 0; i < MEMBERS; i++) new ws.WebSocket(url).on("message", () => undefined);
} else {
  await main();
}
