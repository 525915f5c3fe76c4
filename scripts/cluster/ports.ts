import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/**
 * Ports for the servers a test, the bench or the cluster runner starts.
 *
 * Why not `listen(0)`: the kernel picks from the ephemeral range, the same range it draws the local
 * ports of outgoing connections from. A port found free that way and handed to a child process a
 * second later is often taken by then, by one of the thousands of client sockets the tests and the
 * bench open. Ports below the ephemeral range are only ever taken by an explicit bind, so a random
 * one that binds now stays free.
 */
const LOWEST = 10_000;

function ephemeralLow(): number {
  try {
    const [low] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/);
    const value = Number(low);
    return Number.isInteger(value) && value > LOWEST + 1_000 ? value : 32_768;
  } catch {
    return 32_768;
  }
}

/** Whether `port` can be bound on loopback right now (nothing else listens on it). */
export const canBind = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen({ port, host: "127.0.0.1", exclusive: true }, () => srv.close(() => resolve(true)));
  });

/** A base port such that base + each offset is free, all of them below the ephemeral range. */
async function freeAtOffsets(offsets: number[]): Promise<number> {
  const high = ephemeralLow() - Math.max(...offsets) - 1;
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = LOWEST + Math.floor(Math.random() * (high - LOWEST));
    const free = await Promise.all(offsets.map((offset) => canBind(base + offset)));
    if (free.every(Boolean)) return base;
  }
  throw new Error(`no free ports at offsets ${offsets.join(", ")} of a base between ${LOWEST} and ${high}`);
}

/** The first of `length` consecutive loopback ports that are all free, below the ephemeral range. */
export const freePortRun = (length: number): Promise<number> => freeAtOffsets(Array.from({ length }, (_, i) => i));

/** `npm run cluster`'s replica metrics ports: each replica's port plus this. */
export const METRICS_PORT_OFFSET = 1000;

/**
 * A PORT for `npm run cluster` with `replicas` replicas: PORT, the replica ports PORT+1… and their metrics ports
 * PORT+1001… all free and below the ephemeral range (where an outgoing connection may hold a port any moment).
 */
export function freeRunnerPort(replicas: number): Promise<number> {
  const replicaOffsets = Array.from({ length: replicas }, (_, i) => i + 1);
  return freeAtOffsets([0, ...replicaOffsets, ...replicaOffsets.map((o) => o + METRICS_PORT_OFFSET)]);
}

/** A free loopback port below the ephemeral range. */
export const freePort = (): Promise<number> => freePortRun(1);

/** nginx's port and `replicas` replica ports, all free and distinct: the port options of startProcessCluster. */
export async function freeClusterPorts(
  replicas: number,
): Promise<{ port: number; replicas: number; replicaPorts: number[] }> {
  const ports = new Set<number>();
  while (ports.size < replicas + 1) ports.add(await freePort());
  const [port, ...replicaPorts] = [...ports] as [number, ...number[]];
  return { port, replicas, replicaPorts };
}

/** The ports of `ports` that another process already listens on. */
export async function takenPorts(ports: number[]): Promise<number[]> {
  const free = await Promise.all(ports.map(canBind));
  return ports.filter((_, i) => !free[i]);
}
