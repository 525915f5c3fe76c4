import { spawn } from "node:child_process";
import { createApp } from "../src/app.js";
import { parseConfig } from "../src/config.js";
import { createLogger } from "../src/logger.js";
import { afterEach, describe, expect, it } from "vitest";
import { freePort } from "./support/redis.js";
import { cleanupAll, connect, eventually, onCleanup, startServer } from "./support/server.js";

afterEach(cleanupAll);

/**
 * A server on a given port. Ports from freePort sit below the ephemeral range, so one freed by a closed server
 * is not taken by some client socket before the next server binds it (as a `listen(0)` port can be).
 */
async function startServerOn(port: number, replicaId: string) {
  const config = parseConfig({ PORT: String(port), HOST: "127.0.0.1", LOG_LEVEL: "silent", REPLICA_ID: replicaId });
  const app = createApp(config, createLogger(config));
  onCleanup(() => app.close());
  await new Promise<void>((resolve) => app.httpServer.listen(port, "127.0.0.1", resolve));
  return { app, url: `http://127.0.0.1:${port}` };
}

describe("graceful shutdown", () => {
  it("fails readiness, then drops clients with a transport close (so they reconnect), then stops listening", async () => {
    const { app, url } = await startServer();
    const steps: string[] = [];
    app.io.on("connection", (socket) =>
      socket.on("disconnect", (reason) => steps.push(`socket ${reason}, ready=${app.isReady()}`)),
    );
    app.httpServer.once("close", () => steps.push("listener closed"));
    const client = await connect(url, { transports: ["polling", "websocket"] });
    const clientReason = new Promise<string>((resolve) => client.once("disconnect", resolve));

    await app.close();
    expect(steps).toEqual(["socket server shutting down, ready=false", "listener closed"]);
    // A transport-level end (close, or error when a poll or upgrade was in flight), never
    // "io server disconnect", which would tell the client not to reconnect.
    expect(["transport close", "transport error"]).toContain(await clientReason);
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    await app.close(); // a second call is harmless
  });

  it("lets a reconnecting client reach another replica after its replica shuts down", async () => {
    const port = await freePort();
    const first = await startServerOn(port, "first");
    const client = await connect(first.url, { reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 100 });
    const dropped = new Promise((resolve) => client.once("disconnect", resolve));
    await first.app.close();
    await dropped;
    const reconnected = new Promise<void>((resolve) => client.once("connect", () => resolve()));
    // Another replica takes over the address, as the balancer routes a reconnect to a survivor.
    await startServerOn(port, "second");
    await reconnected;
    expect(await client.emitWithAck("server-info")).toMatchObject({ ok: true, replica: "second" });
  });

  it("exits 0 within 10 s on SIGTERM with clients connected, logging each step", async () => {
    const port = await freePort();
    const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
      // No drain here (test/drain.test.ts covers it) and no metrics listener.
      env: {
        ...process.env,
        PORT: String(port),
        HOST: "127.0.0.1",
        REPLICA_ID: "sig",
        LOG_LEVEL: "info",
        METRICS_PORT: "0",
        DRAIN_DELAY_S: "0",
        DRAIN_CLOSE_S: "0",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    await eventually(() => out.includes("listening on port"), 15_000, "server start");
    const client = await connect(`http://127.0.0.1:${port}`);
    const dropped = new Promise<string>((resolve) => client.once("disconnect", resolve));
    const started = Date.now();
    child.kill("SIGTERM");
    expect(await dropped).toBe("transport close");
    expect(await exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
    const lines = out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { msg: string; replica: string });
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(["signal received", "shutting down", "shut down"]));
    expect(lines.every((l) => l.replica === "sig")).toBe(true);
  });
});
