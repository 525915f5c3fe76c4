import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { get } from "node:https";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startProcessClusterOnFreePorts, type ProcessCluster } from "../scripts/cluster/processes.js";
import { freePort } from "./support/redis.js";
import { cleanupAll, connect, next, type ClientSocket } from "./support/server.js";

let cluster: ProcessCluster;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "rt-tls-"));
  const cert = join(dir, "tls.crt");
  const key = join(dir, "tls.key");
  execFileSync(
    "openssl",
    [
      ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"],
      ...["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
    ],
    { stdio: "ignore" },
  );
  cluster = await startProcessClusterOnFreePorts({
    replicas: 3,
    logLevel: "warn",
    tls: { port: await freePort(), cert, key },
  });
}, 60_000);
afterAll(async () => {
  await cleanupAll();
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** GET over https with the test's self-signed certificate; resolves with the status. */
const httpsStatus = (url: string) =>
  new Promise<number>((resolve, reject) =>
    get(url, { rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on("error", reject),
  );

const replicaOf = async (socket: ClientSocket) => {
  const info = await socket.emitWithAck("server-info");
  if (!info.ok) throw new Error(info.error.message);
  return info.replica;
};

describe("TLS at nginx", () => {
  it("carries a room message across replicas between wss:// clients", async () => {
    const url = cluster.tlsUrl as string;
    expect(url).toMatch(/^https:/);
    // Two clients on different replicas (nginx hashes each handshake: connect until two differ).
    const opts = { rejectUnauthorized: false, reconnection: false } as const;
    const first = await connect(url, opts);
    let second = await connect(url, opts);
    for (let i = 0; i < 30 && (await replicaOf(second)) === (await replicaOf(first)); i++) {
      second.disconnect();
      second = await connect(url, opts);
    }
    expect(await replicaOf(second)).not.toBe(await replicaOf(first));
    expect(first.io.engine.transport.name).toBe("websocket");
    for (const s of [first, second]) await s.emitWithAck("join-room", "secure");
    const got = next(second, "room-message-received");
    expect(await first.emitWithAck("room-message", { room: "secure", message: "over tls" })).toMatchObject({
      ok: true,
    });
    expect(await got).toMatchObject({ room: "secure", message: "over tls" });
  });

  it("answers REST over https and keeps /metrics off it in every spelling", async () => {
    const base = cluster.tlsUrl as string;
    expect(await httpsStatus(`${base}/healthz`)).toBe(200);
    for (const path of ["/metrics", "/metrics/", "/Metrics", "/METRICS/"])
      expect(await httpsStatus(`${base}${path}`), path).toBe(404);
  });
});
