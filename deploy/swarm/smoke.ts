/**
 * Cross-replica smoke test through the balancer: connects clients (polling, then the websocket upgrade, as a
 * browser does) until two of them sit on different replicas (each one's `server-info` ack names its replica),
 * then one broadcasts and the other must receive it, which only Redis can carry between replicas.
 * Usage: node --import tsx deploy/swarm/smoke.ts [url]   (default http://127.0.0.1:5000)
 * Exit code 0 when the message crossed, 1 with the reason otherwise.
 */
import { io, type Socket } from "socket.io-client";
import type { ClientToServerEvents, ServerToClientEvents } from "../../src/contract.js";

type Client = Socket<ServerToClientEvents, ClientToServerEvents>;

const url = process.argv[2] ?? process.env.SERVER_URL ?? "http://127.0.0.1:5000";
const MAX_CLIENTS = 16;
const TIMEOUT_MS = 10_000;
const clients: Client[] = [];

function fail(reason: string): never {
  console.error(`smoke: FAILED: ${reason}`);
  for (const c of clients) c.disconnect();
  process.exit(1);
}

function connect(): Promise<Client> {
  const socket: Client = io(url, { reconnection: false, timeout: TIMEOUT_MS, forceNew: true });
  clients.push(socket);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no connection to ${url} within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once("connect_error", (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot connect to ${url}: ${err.message}`));
    });
  });
}

async function replicaOf(socket: Client): Promise<string> {
  const info = await socket.timeout(TIMEOUT_MS).emitWithAck("server-info");
  if (!info.ok) throw new Error(`server-info failed: ${info.error.code} ${info.error.message}`);
  return info.replica;
}

async function main(): Promise<void> {
  const sender = await connect();
  const senderReplica = await replicaOf(sender);
  let receiver: Client | undefined;
  let receiverReplica = "";
  for (let i = 1; i < MAX_CLIENTS && !receiver; i++) {
    const candidate = await connect();
    const replica = await replicaOf(candidate);
    if (replica !== senderReplica) [receiver, receiverReplica] = [candidate, replica];
  }
  if (!receiver) fail(`${MAX_CLIENTS} clients all landed on replica ${senderReplica}: is only one replica up?`);
  console.log(`smoke: sender on replica ${senderReplica}, receiver on replica ${receiverReplica}`);

  const text = `cross-replica ${Date.now()} ${Math.random().toString(16).slice(2)}`;
  const received = new Promise<number>((resolve, reject) => {
    const started = Date.now();
    const timer = setTimeout(() => reject(new Error(`the receiver got nothing within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
    receiver.on("broadcast-message", (data) => {
      if (data.message !== text) return;
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
  });
  const ack = await sender.timeout(TIMEOUT_MS).emitWithAck("broadcast", text);
  if (!ack.ok) fail(`broadcast refused: ${ack.error.code} ${ack.error.message}`);
  if (ack.delivered !== "cluster") fail(`broadcast delivered "${ack.delivered}", not "cluster": Redis is not relaying`);
  const ms = await received;
  // The transport each one ended on: the upgrade went through the balancer's sticky routing too.
  const transports = [sender, receiver].map((c) => c.io.engine.transport.name).join("/");
  console.log(`smoke: broadcast from ${senderReplica} received on ${receiverReplica} in ${ms} ms (${transports})`);
  for (const c of clients) c.disconnect();
}

main().then(
  () => process.exit(0),
  (err: unknown) => fail(err instanceof Error ? err.message : String(err)),
);
