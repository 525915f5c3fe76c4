/**
 * `npm run bench:hops`: the latency floor of this machine, hop by hop. One message every few
 * milliseconds, three clients, no other load, so what is left is the cost of waking a process for each
 * hop. Paths:
 *   - tcp echo: a bare loopback TCP round trip to another process (2 hops);
 *   - vanilla: the same through a plain Socket.IO server (bench/servers/vanilla-socketio.ts);
 *   - single: a room message through one replica (publisher → replica → member: 2 hops);
 *   - cluster-2 local: the same on the publisher's replica, with the Redis adapter on (2 hops);
 *   - cluster-2 remote: a member on the other replica (publisher → replica 1 → Redis → replica 2 →
 *     member: 4 hops).
 */
import { spawn } from "node:child_process";
import { connect as tcpConnect } from "node:net";
import { io, type Socket } from "socket.io-client";
import { freePort } from "../scripts/cluster/ports.js";
import { waitForExit } from "../scripts/cluster/processes.js";
import { intArg, percentile } from "./proc.js";
import { startSetup } from "./setups.js";

const SAMPLES = intArg("samples", 1000, 1, 10_000_000);
const INTERVAL_MS = 5;
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Row {
  path: string;
  hops: number;
  latencies: number[];
}

async function tcpEcho(): Promise<Row> {
  const port = await freePort();
  const script = `require("node:net").createServer((s) => { s.setNoDelay(true); s.pipe(s); }).listen(${port}, "127.0.0.1", () => console.log("up"));`;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((resolve) => child.stdout.once("data", resolve));
  const socket = tcpConnect(port, "127.0.0.1");
  socket.setNoDelay(true);
  await new Promise((resolve) => socket.once("connect", resolve));
  const latencies: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const sent = now();
    socket.write("x");
    await new Promise((resolve) => socket.once("data", resolve));
    latencies.push(now() - sent);
    await sleep(INTERVAL_MS);
  }
  socket.destroy();
  child.kill("SIGTERM");
  await waitForExit(child, 5000);
  return { path: "tcp echo (round trip)", hops: 2, latencies };
}

async function roomMessages(name: "vanilla" | "single" | "cluster-2"): Promise<Row[]> {
  const setup = await startSetup(name);
  const sockets: Socket[] = [];
  try {
    const first = setup.urls[0] as string;
    const last = setup.urls[setup.urls.length - 1] as string;
    const open = (url: string) => {
      const socket = io(url, { transports: ["websocket"], forceNew: true, reconnection: false });
      sockets.push(socket);
      return new Promise<Socket>((resolve) => socket.once("connect", () => resolve(socket)));
    };
    const [publisher, local, remote] = await Promise.all([open(first), open(first), open(last)]);
    const members = name === "cluster-2" ? [local, remote] : [local];
    await Promise.all(members.map((s) => s.emitWithAck("join-room", "hops")));
    await publisher.emitWithAck("join-room", "hops");
    const got = members.map(() => [] as number[]);
    members.forEach((socket, i) =>
      socket.on("room-message-received", (m: { message: string }) => got[i]?.push(now() - Number(m.message))),
    );
    for (let i = 0; i < SAMPLES; i++) {
      publisher.emit("room-message", { room: "hops", message: now().toFixed(3) });
      await sleep(INTERVAL_MS);
    }
    await sleep(500);
    if (name !== "cluster-2") return [{ path: name, hops: 2, latencies: got[0] ?? [] }];
    return [
      { path: "cluster-2 local", hops: 2, latencies: got[0] ?? [] },
      { path: "cluster-2 remote (via Redis)", hops: 4, latencies: got[1] ?? [] },
    ];
  } finally {
    for (const socket of sockets) socket.disconnect();
    await setup.stop();
  }
}

const rows = [
  await tcpEcho(),
  ...(await roomMessages("vanilla")),
  ...(await roomMessages("single")),
  ...(await roomMessages("cluster-2")),
];
const f = (n: number) => n.toFixed(2);
console.log(`\n${SAMPLES} messages per path, one every ${INTERVAL_MS} ms, no other load\n`);
console.log("| path | hops | received | p50 ms | p99 ms | max ms | p99 per hop ms |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const { path, hops, latencies } of rows) {
  const sorted = [...latencies].sort((a, b) => a - b);
  const p99 = percentile(sorted, 99);
  console.log(
    `| ${path} | ${hops} | ${sorted.length} | ${f(percentile(sorted, 50))} | ${f(p99)} | ${f(percentile(sorted, 100))} | ${f(p99 / hops)} |`,
  );
}
