import { spawn } from "node:child_process";
import { createServer as createHttpServer } from "node:http";
import { connect as tcpConnect, createServer as createTcpServer, type Server } from "node:net";
import { describe, expect, it } from "vitest";
import { freePortRun } from "./support/redis.js";
import { eventually } from "./support/server.js";

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = tcpConnect(port, "127.0.0.1");
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
  });

describe("npm run cluster", () => {
  it("prints one ready line, serves through nginx, and on SIGTERM stops every child", async () => {
    // The runner takes PORT, PORT+1 and PORT+2.
    const port = await freePortRun(3);
    const child = spawn(process.execPath, ["--import", "tsx", "scripts/cluster.ts"], {
      env: { ...process.env, CLUSTER_REDIS: "single", PORT: String(port), CLUSTER_REPLICAS: "2", LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    let exitCode: number | null | undefined;
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    void exited.then((code) => (exitCode = code));
    await eventually(() => out.includes("cluster ready") || exitCode !== undefined, 60_000, "cluster ready line");
    expect(exitCode, `runner exited early:\n${out}`).toBeUndefined();
    expect(out).toContain(
      `cluster ready at http://127.0.0.1:${port} (replicas: ${port + 1}, ${port + 2}; metrics: ${port + 1001}, ${port + 1002})`,
    );

    const ports = [port, port + 1, port + 2];
    const res = await fetch(`http://127.0.0.1:${port}/`);
    expect(await res.text()).toBe("Hello server is working");
    expect(["replica-1", "replica-2"]).toContain(res.headers.get("x-replica-id"));
    for (const p of ports) expect(await accepts(p)).toBe(true);

    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    for (const p of ports) expect(await accepts(p)).toBe(false);
  }, 90_000);

  // Before, the runner announced "cluster ready" when the port was answered by someone else (an earlier
  // cluster, say) while its own replica or nginx died on EADDRINUSE right after.
  it.each([
    { taken: "a replica's port, by a bare TCP listener", offset: 1, server: () => createTcpServer() },
    {
      taken: "nginx's port, by an HTTP server that answers like an earlier cluster",
      offset: 0,
      server: () =>
        createHttpServer((_req, res) => res.setHeader("X-Replica-Id", "replica-1").end("Hello server is working")),
    },
  ])(
    "fails with a non-zero exit naming the port when $taken",
    async ({ offset, server }) => {
      const port = await freePortRun(3);
      const squatter: Server = server();
      await new Promise<void>((resolve) => squatter.listen(port + offset, "127.0.0.1", resolve));
      try {
        const child = spawn(process.execPath, ["--import", "tsx", "scripts/cluster.ts"], {
          env: {
            ...process.env,
            CLUSTER_REDIS: "single",
            PORT: String(port),
            CLUSTER_REPLICAS: "2",
            LOG_LEVEL: "warn",
          },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let out = "";
        child.stdout.on("data", (d: Buffer) => (out += d.toString()));
        child.stderr.on("data", (d: Buffer) => (out += d.toString()));
        const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
        expect(code, out).toBe(1);
        expect(out).toContain(`cluster failed to start: port ${port + offset} already in use by another process`);
        expect(out).not.toContain("cluster ready");
        // Nothing of the failed start is left listening.
        for (const p of [port, port + 1, port + 2]) if (p !== port + offset) expect(await accepts(p)).toBe(false);
      } finally {
        await new Promise((resolve) => squatter.close(resolve));
      }
    },
    30_000,
  );
});
