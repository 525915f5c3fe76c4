import { spawn, type ChildProcess, type StdioOptions } from "node:child_process";
import { Redis } from "ioredis";
import { freePort } from "./ports.js";

export interface RedisServer {
  url: string;
  port: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** A real redis-server on a free loopback port, without persistence; fails loudly when it is not installed. */
export async function startRedisServer(
  stdio: StdioOptions = "ignore",
  bin = "redis-server",
  fixedPort?: number,
): Promise<RedisServer> {
  const port = fixedPort ?? (await freePort());
  const child = spawn(bin, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio,
  });
  const spawnError = new Promise<never>((_, reject) =>
    child.once("error", (err) =>
      reject(new Error(`cannot start redis-server (apt-get install -y redis-server): ${err.message}`)),
    ),
  );
  await Promise.race([spawnError, waitForPing(port, child)]);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    child,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

async function waitForPing(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode}`);
    const client = new Redis(port, "127.0.0.1", { lazyConnect: true, retryStrategy: () => null });
    client.on("error", () => undefined);
    try {
      await client.connect();
      await client.ping();
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`redis-server not answering on port ${port}`);
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      client.disconnect();
    }
  }
}
