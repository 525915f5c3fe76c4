import { spawn } from "node:child_process";
import { createServer as createHttpServer } from "node:http";
import { connect as tcpConnect, createServer as createTcpServer, type Server } from "node:net";
import { describe, expect, it, onTestFinished } from "vitest";
import { freeRunnerPort } from "./support/redis.js";
import { eventually } from "./support/server.js";

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = tcpConnect(port, "127.0.0.1");
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
  });

/** `npm run cluster` with `env`; stopped (SIGTERM) when the test ends, whatever its outcome. */
function runner(port: number, env: Record<string, string>) {
  const child = spawn(process.execPath, ["--import", "tsx", "scripts/cluster.ts"], {
    env: { ...process.env, PORT: String(port), CLUSTER_REPLICAS: "2", LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const state = { out: "", exitCode: undefined as number | null | undefined };
  child.stdout.on("data", (d: Buffer) => (state.out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (state.out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  void exited.then((code) => (state.exitCode = code));
  onTestFinished(async () => {
    if (state.exitCode === undefined) {
      child.kill("SIGTERM");
      await exited;
    }
  });
  return { child, state, exited };
}

/** Waits for the runner's "cluster ready" line; fails with its output if it exits first. */
async function readyLine(state: ReturnType<typeof runner>["state"], ms: number): Promise<void> {
  await eventually(() => state.out.includes("cluster ready") || state.exitCode !== undefined, ms, "cluster ready line");
  expect(state.exitCode, `runner exited early:\n${state.out}`).toBeUndefined();
}

describe("npm run cluster", () => {
  it("prints one ready line, serves through nginx, and on SIGTERM stops every child", async () => {
    // The runner takes PORT, PORT+1 and PORT+2, and the metrics ports PORT+1001 and PORT+1002.
    const port = await freeRunnerPort(2);
    const { child, state, exited } = runner(port, { CLUSTER_REDIS: "single" });
    await readyLine(state, 60_000);
    expect(state.out).toContain(
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

  it("starts a Redis Cluster with CLUSTER_REDIS=cluster, names its nodes, and stops them all on SIGTERM", async () => {
    const port = await freeRunnerPort(2);
    const { child, state, exited } = runner(port, { CLUSTER_REDIS: "cluster" });
    await readyLine(state, 90_000);
    const nodes = /redis cluster: ([0-9.:,]+)\)/.exec(state.out)?.[1]?.split(",") ?? [];
    expect(nodes).toHaveLength(6);
    const redisPorts = nodes.map((n) => Number(n.split(":")[1]));
    for (const p of redisPorts) expect(await accepts(p)).toBe(true);
    // Both replicas ready on the Redis Cluster, served through nginx (test/cluster runs the cross-replica suite
    // on this machinery with CLUSTER_REDIS=cluster).
    for (const p of [port + 1, port + 2]) expect((await fetch(`http://127.0.0.1:${p}/readyz`)).status).toBe(200);
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe("Hello server is working");

    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    for (const p of [port, port + 1, port + 2, ...redisPorts]) expect(await accepts(p)).toBe(false);
  }, 120_000);

  it("refuses an unknown CLUSTER_REDIS with exit 2, naming the variable", async () => {
    const { state, exited } = runner(await freeRunnerPort(2), { CLUSTER_REDIS: "sentinel" });
    expect(await exited).toBe(2);
    expect(state.out).toContain('invalid CLUSTER_REDIS: expected single or cluster, got "sentinel"');
  });

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
      const port = await freeRunnerPort(2);
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
