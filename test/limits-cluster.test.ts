import { request } from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { nginxLimitsConf } from "../scripts/cluster/nginx.js";
import { startProcessClusterOnFreePorts, type ProcessCluster } from "../scripts/cluster/processes.js";
import { cleanupAll, connect, next, sleep, type ClientSocket } from "./support/server.js";

const GOOD = "https://good.example";
let cluster: ProcessCluster;

beforeAll(async () => {
  cluster = await startProcessClusterOnFreePorts({
    replicas: 3,
    logLevel: "warn",
    env: { CORS_ORIGIN: GOOD, MAX_CONNECTIONS: "4" },
  });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
}, 30_000);
afterEach(cleanupAll);

const status = (url: string, headers: Record<string, string> = {}) =>
  new Promise<{ status: number; replica: string | undefined }>((resolve, reject) => {
    request(url, { headers }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, replica: res.headers["x-replica-id"] as string }));
    })
      .on("error", reject)
      .end();
  });

const websocketStatus = (url: string, headers: Record<string, string>) =>
  new Promise<number | "open">((resolve, reject) => {
    const ws = new WebSocket(`${url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`, { headers });
    ws.once("open", () => (ws.terminate(), resolve("open")));
    ws.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
    ws.once("error", reject);
  });

describe("refusals through nginx", () => {
  it("answers refused clients with 403/429 from a live replica and moves no one else's session", async () => {
    // Polling clients are the ones nginx would move: their session lives on one replica.
    const clients: ClientSocket[] = [];
    for (let i = 0; i < 3; i++) clients.push(await connect(cluster.url, { transports: ["polling"] }));
    const before = await Promise.all(clients.map((c) => c.emitWithAck("server-info")));
    const disconnects: string[] = [];
    for (const c of clients) c.on("disconnect", (reason) => disconnects.push(reason));

    const handshake = `${cluster.url}/socket.io/?EIO=4&transport=polling`;
    const foreign = await Promise.all(
      Array.from({ length: 30 }, () => status(handshake, { Origin: "https://evil.example" })),
    );
    const foreignWs = await Promise.all(
      Array.from({ length: 10 }, () => websocketStatus(cluster.url, { Origin: "https://evil.example" })),
    );
    // 3 replicas × MAX_CONNECTIONS=4, 3 taken: of 30 more handshakes at least 21 are refused.
    const crowd = await Promise.all(Array.from({ length: 30 }, () => status(handshake)));
    const refusedBy = new Set([...foreign, ...crowd].filter((r) => r.status >= 400).map((r) => r.replica));
    console.log(
      `through nginx: foreign-origin polling ${foreign.filter((r) => r.status === 403).length}/30 → 403, ` +
        `websocket ${foreignWs.filter((s) => s === 403).length}/10 → 403; 30 handshakes over capacity: ` +
        `${crowd.filter((r) => r.status === 429).length} → 429, ${crowd.filter((r) => r.status === 200).length} → 200; ` +
        `refused by ${[...refusedBy].join(", ")}`,
    );
    expect(foreign.every((r) => r.status === 403)).toBe(true);
    expect(foreignWs.every((s) => s === 403)).toBe(true);
    expect(crowd.filter((r) => r.status === 429).length).toBeGreaterThanOrEqual(21);
    expect(crowd.every((r) => r.status === 200 || r.status === 429)).toBe(true);
    expect(refusedBy.size).toBe(3);

    // Everyone else is where they were: same socket, same replica, never disconnected, still served.
    await sleep(500);
    const after = await Promise.all(clients.map((c) => c.emitWithAck("server-info")));
    expect(after).toEqual(before);
    const got = clients.map((c) => next(c, "broadcast-message"));
    clients[0]?.emit("broadcast", "still here");
    expect((await Promise.all(got)).map((m) => m.message)).toEqual(["still here", "still here", "still here"]);
    expect(disconnects).toEqual([]);
  }, 30_000);
});

describe("per-IP limits at nginx (limits.example.conf)", () => {
  it("answers handshakes over 10/s (burst 20) from one IP with 429, and lets an existing session's polls through", async () => {
    const limited = await startProcessClusterOnFreePorts({
      replicas: 1,
      logLevel: "warn",
      nginxLimits: nginxLimitsConf(true),
    });
    try {
      const client = await connect(limited.url, { transports: ["polling"] });
      const handshake = `${limited.url}/socket.io/?EIO=4&transport=polling`;
      const answers = await Promise.all(Array.from({ length: 60 }, () => status(handshake)));
      const refused = answers.filter((a) => a.status === 429).length;
      console.log(`nginx limit_req: 60 handshakes at once from one IP → ${60 - refused} accepted, ${refused} → 429`);
      expect(refused).toBeGreaterThanOrEqual(60 - 21 - 2);
      expect(answers.every((a) => a.status === 200 || a.status === 429)).toBe(true);
      // The polling client's own requests carry a sid: not handshakes, not limited.
      for (let i = 0; i < 5; i++) expect(await client.emitWithAck("get-time")).toMatchObject({ ok: true });
      client.disconnect();
    } finally {
      await limited.stop();
    }
  }, 60_000);
});
