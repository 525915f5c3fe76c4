import { io as connectClient } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { startProcessClusterOnFreePorts } from "../scripts/cluster/processes.js";
import { cleanupAll, connect, onCleanup, sleep, startServer, type ClientSocket } from "./support/server.js";

afterEach(cleanupAll);

const replicaOf = async (socket: ClientSocket): Promise<string> => {
  const info = await socket.emitWithAck("server-info");
  if (!info.ok) throw new Error(info.error.message);
  return info.replica;
};

// A polling-then-upgrade client that keeps retrying its connection (bounded) instead of failing at the first error.
async function connectRetrying(url: string): Promise<ClientSocket> {
  const socket: ClientSocket = connectClient(url, {
    transports: ["polling", "websocket"],
    forceNew: true,
    reconnectionDelay: 50,
    reconnectionDelayMax: 200,
  });
  onCleanup(() => void socket.disconnect());
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no connection within 10 s")), 10_000);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  return socket;
}

// The replica a client ends up on, asking again (bounded) while it reconnects.
async function settledReplicaOf(socket: ClientSocket): Promise<string> {
  for (let i = 0; ; i++) {
    try {
      if (!socket.connected) throw new Error("not connected");
      const info = await socket.timeout(1000).emitWithAck("server-info");
      if (info.ok) return info.replica;
    } catch (err) {
      if (i >= 40) throw err;
    }
    await sleep(100);
  }
}

describe("drain (SIGTERM)", () => {
  it("fails readiness first, refuses handshakes, keeps sessions working for the delay, then closes them spread over the window", async () => {
    const { app, url } = await startServer({ DRAIN_DELAY_S: "0.5", DRAIN_CLOSE_S: "1" });
    const clients = [
      ...(await Promise.all(Array.from({ length: 30 }, () => connect(url)))),
      await connect(url, { transports: ["polling"] }),
    ];
    const closed: Array<{ at: number; reason: string }> = [];
    let t0 = 0;
    for (const c of clients) c.on("disconnect", (reason) => closed.push({ at: Date.now() - t0, reason }));

    t0 = Date.now();
    const drained = app.drain();
    // 1. Readiness is off at once; the process still answers everything else.
    expect(app.isReady()).toBe(false);
    expect((await fetch(`${url}/readyz`)).status).toBe(503);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    // 2. New handshakes, polling and websocket, are refused (connection closed unanswered).
    await expect(fetch(`${url}/socket.io/?EIO=4&transport=polling`)).rejects.toThrow();
    await expect(connect(url)).rejects.toThrow();
    // 3. Existing sessions keep working during the delay, websocket and long-polling alike.
    for (const c of [clients[0], clients[clients.length - 1]] as ClientSocket[]) {
      expect(await c.emitWithAck("echo", "still here")).toEqual({ ok: true });
    }
    expect(closed).toEqual([]);

    await drained;
    const took = Date.now() - t0;
    // 4. Every connection got a transport close (its client reconnects elsewhere), none before the delay, spread
    //    over the close window rather than all at once.
    await sleep(100);
    expect(closed).toHaveLength(clients.length);
    expect(new Set(closed.map((c) => c.reason))).toEqual(new Set(["transport close"]));
    const times = closed.map((c) => c.at).sort((a, b) => a - b);
    expect(times[0]).toBeGreaterThanOrEqual(480);
    expect(times[times.length - 1]).toBeLessThan(1500 + 300);
    expect(times[times.length - 1]! - times[0]!).toBeGreaterThan(700);
    // No stampede: no 100 ms slice of the window holds more than a fifth of the connections.
    const slices = new Map<number, number>();
    for (const t of times) slices.set(Math.floor(t / 100), (slices.get(Math.floor(t / 100)) ?? 0) + 1);
    expect(Math.max(...slices.values())).toBeLessThanOrEqual(Math.ceil(clients.length / 5));
    expect(took).toBeGreaterThanOrEqual(1450);
    await app.close();
  });

  it("through nginx: new clients land on other replicas while a draining replica's websocket keeps working, then moves", async () => {
    const cluster = await startProcessClusterOnFreePorts({
      replicas: 3,
      logLevel: "warn",
      env: { DRAIN_DELAY_S: "2", DRAIN_CLOSE_S: "0.5" },
    });
    onCleanup(() => cluster.stop());
    const draining = cluster.replicaIds[0] as string;

    // A websocket client on replica 1 (nginx picks by a fresh hash: try until one lands there).
    let old: ClientSocket | undefined;
    for (let i = 0; i < 40 && !old; i++) {
      const c = await connect(cluster.url, { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200 });
      if ((await replicaOf(c)) === draining) old = c;
      else c.disconnect();
    }
    if (!old) throw new Error("no client landed on replica 1");
    const moved = new Promise<string>((resolve) => old.once("disconnect", resolve));

    const started = Date.now();
    const stopped = cluster.stopReplica(0);
    for (;;) {
      const status = await fetch(`${cluster.replicaUrls[0]}/readyz`).then((r) => r.status);
      if (status === 503) break;
      await sleep(20);
    }
    // New clients, websocket-only and polling-then-upgrade, all connect, and never to the draining replica.
    // Each nginx worker keeps its own failure marks (no shared zone: see scripts/cluster/nginx.ts), and nginx
    // does not retry a POST: a polling client whose handshake was moved may see one poll refused by the
    // draining replica and reconnect. It must end up on another replica all the same.
    const fresh = await Promise.all(
      Array.from({ length: 12 }, (_, i) => (i % 2 ? connect(cluster.url) : connectRetrying(cluster.url))),
    );
    const landed = await Promise.all(fresh.map((c) => settledReplicaOf(c)));
    expect(landed).not.toContain(draining);
    // The old session still works during the delay.
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await replicaOf(old)).toBe(draining);

    expect(await moved).toBe("transport close");
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    await new Promise<void>((resolve) => old.once("connect", () => resolve()));
    expect(await replicaOf(old)).not.toBe(draining);
    await stopped;
  });
});
