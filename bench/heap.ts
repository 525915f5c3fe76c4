/**
 * `npm run bench:heap`: V8 heap per idle connection after forced full GCs, for raw `ws`, vanilla
 * Socket.IO and our server (one replica), on the same clients: N websocket clients from 2 load
 * processes, each in one of 20 rooms. Heap is what a connection's objects cost; RSS (in `npm run
 * bench`) adds V8's young generation, fragmentation and native buffers on top.
 */
import { fork, type ChildProcess } from "node:child_process";
import { freePort } from "../scripts/cluster/ports.js";
import { waitForExit, waitForHttp } from "../scripts/cluster/processes.js";
import type { Mode } from "./load.js";
import { intArg } from "./proc.js";
import { startWorker } from "./workers.js";

const CONNECTIONS = intArg("connections", 4000, 1, 1_000_000);
const LOAD_PROCESSES = 2;
const ROOT = new URL("../", import.meta.url).pathname;

const SERVERS: Array<{ name: string; script: string; mode: Mode; readyPath?: string }> = [
  { name: "raw-ws", script: "bench/servers/raw-ws.ts", mode: "raw" },
  { name: "vanilla Socket.IO", script: "bench/servers/vanilla-socketio.ts", mode: "sio" },
  { name: "ours (single)", script: "src/main.ts", mode: "sio", readyPath: "/readyz" },
];

function heapUsed(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    const onMessage = (msg: { ev?: string; heapUsed?: number }) => {
      if (msg?.ev !== "heap") return;
      child.off("message", onMessage);
      resolve(msg.heapUsed as number);
    };
    child.on("message", onMessage);
    child.send({ cmd: "heap" });
  });
}

async function measure(server: (typeof SERVERS)[number]): Promise<number> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = fork(`${ROOT}${server.script}`, [], {
    execArgv: ["--expose-gc", "--import", "tsx", "--import", `${ROOT}bench/servers/heap-probe.ts`],
    env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", LOG_LEVEL: "warn", REPLICA_ID: "heap" },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  const workers = [];
  try {
    if (server.readyPath) await waitForHttp(`${url}${server.readyPath}`, server.name, child);
    else await new Promise((resolve) => child.once("message", resolve));
    const before = await heapUsed(child);
    for (let i = 0; i < LOAD_PROCESSES; i++) workers.push(await startWorker());
    const count = CONNECTIONS / LOAD_PROCESSES;
    await Promise.all(
      workers.map((w, i) =>
        w.ask({ cmd: "connect", urls: [url], count, offset: i * count, mode: server.mode, rooms: 20 }, "connected"),
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 1000));
    return (await heapUsed(child)) - before;
  } finally {
    await Promise.all(workers.map((w) => w.ask({ cmd: "close" }, "closed").catch(() => undefined)));
    child.kill("SIGTERM");
    await waitForExit(child, 10_000);
  }
}

console.log(`heap per idle connection, ${CONNECTIONS} websocket connections, after forced GC\n`);
console.log("| server | heap KB / connection | vs raw-ws |");
console.log("| --- | ---: | ---: |");
let raw = NaN;
for (const server of SERVERS) {
  const perConnection = (await measure(server)) / CONNECTIONS / 1000;
  if (server.name === "raw-ws") raw = perConnection;
  console.log(`| ${server.name} | ${perConnection.toFixed(1)} | ${(perConnection / raw).toFixed(2)} |`);
}
