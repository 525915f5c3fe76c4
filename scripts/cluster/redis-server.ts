import { spawn, type ChildProcess, type StdioOptions } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { pollUntil } from "./poll.js";
import { freePort } from "./ports.js";

/**
 * How redis-server keeps its data across a restart:
 * - `none`: memory only, a restart starts empty (the default: tests and the bench want no disk I/O);
 * - `aof-everysec`: append-only file fsynced once a second, a SIGKILL may lose the last second of writes;
 * - `aof-always`: fsync after every write, nothing acknowledged is lost even on SIGKILL.
 */
export type RedisPersistence = "none" | "aof-everysec" | "aof-always";

export interface RedisServerOptions {
  /** Where redis-server's output goes. */
  stdio?: StdioOptions;
  bin?: string;
  /** A fixed port (to restart one in place from outside); a free one by default. */
  port?: number;
  persistence?: RedisPersistence;
  /**
   * Data directory for the AOF modes. Without it a temporary one is made and removed by stop(); one given
   * here is left alone (its owner removes it).
   */
  dir?: string;
  /** More redis-server arguments (a Redis Cluster node's: scripts/cluster/redis-cluster.ts). */
  extraArgs?: string[];
}

export type KillSignal = "SIGTERM" | "SIGKILL";

export interface RedisServer {
  url: string;
  port: number;
  persistence: RedisPersistence;
  /** The data directory (undefined with persistence `none`). */
  dir: string | undefined;
  /** The current redis-server process: a new one after restart(). */
  readonly child: ChildProcess;
  running(): boolean;
  /**
   * Sends `signal` now and resolves when the process has exited. SIGTERM is Redis's clean shutdown (the AOF
   * is flushed and fsynced); SIGKILL loses whatever the persistence mode had not fsynced yet.
   */
  kill(signal: KillSignal): Promise<void>;
  /**
   * Starts redis-server again on the same port, data directory and persistence mode, stopping it first
   * (SIGTERM) if it still runs; resolves when it answers PING, i.e. after the AOF is loaded.
   */
  restart(): Promise<void>;
  /** Stops it (SIGTERM) and removes the data directory this module created. */
  stop(): Promise<void>;
}

/** redis-server's command line for one persistence mode. */
function redisArgs(port: number, persistence: RedisPersistence, dir: string | undefined): string[] {
  // noeviction: a test that fills memory must see write errors, not keys silently evicted.
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--maxmemory-policy", "noeviction"];
  // No RDB snapshots in any mode: a snapshot on shutdown would hide what the AOF alone keeps.
  args.push("--save", "");
  if (persistence === "none") return [...args, "--appendonly", "no"];
  const fsync = persistence === "aof-always" ? "always" : "everysec";
  return [...args, "--appendonly", "yes", "--appendfsync", fsync, "--dir", dir as string];
}

/** Resolves when `child` has exited (at once if it already has). */
function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** Spawns redis-server and waits for PING; fails loudly when it is not installed or does not come up. */
async function launch(bin: string, args: string[], port: number, stdio: StdioOptions): Promise<ChildProcess> {
  const child = spawn(bin, args, { stdio });
  const spawnError = new Promise<never>((_, reject) =>
    child.once("error", (err) =>
      reject(new Error(`cannot start redis-server (apt-get install -y redis-server): ${err.message}`)),
    ),
  );
  try {
    await Promise.race([spawnError, waitForPing(port, child)]);
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
  return child;
}

/** A real redis-server on a loopback port; fails loudly when it is not installed. */
export async function startRedisServer(opts: RedisServerOptions = {}): Promise<RedisServer> {
  const stdio = opts.stdio ?? "ignore";
  const bin = opts.bin ?? "redis-server";
  const persistence = opts.persistence ?? "none";
  const port = opts.port ?? (await freePort());
  const ownDir = persistence !== "none" && !opts.dir;
  const dir = persistence === "none" ? undefined : (opts.dir ?? mkdtempSync(join(tmpdir(), "rt-redis-")));
  const args = [...redisArgs(port, persistence, dir), ...(opts.extraArgs ?? [])];
  const removeDir = () => {
    if (ownDir && dir) rmSync(dir, { recursive: true, force: true });
  };

  let child: ChildProcess;
  try {
    child = await launch(bin, args, port, stdio);
  } catch (err) {
    removeDir();
    throw err;
  }
  const running = () => child.exitCode === null && child.signalCode === null;
  const kill = (signal: KillSignal) => {
    const done = exited(child);
    if (running()) child.kill(signal);
    return done;
  };

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    persistence,
    dir,
    get child() {
      return child;
    },
    running,
    kill,
    async restart() {
      await kill("SIGTERM");
      child = await launch(bin, args, port, stdio);
    },
    async stop() {
      await kill("SIGTERM");
      removeDir();
    },
  };
}

async function waitForPing(port: number, child: ChildProcess): Promise<void> {
  let state = "not answering";
  await pollUntil(
    async () => {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(
          `redis-server on port ${port} exited (${child.signalCode ?? `code ${child.exitCode}`}); is the port taken?`,
        );
      const client = new Redis(port, "127.0.0.1", { lazyConnect: true, retryStrategy: () => null });
      client.on("error", () => undefined);
      let info: string;
      try {
        await client.connect();
        await client.ping();
        info = await client.info();
      } catch {
        return undefined;
      } finally {
        client.disconnect();
      }
      // A PING answered by another redis-server on this port (ours then dies on EADDRINUSE) is no start.
      const pid = /^process_id:(\d+)/m.exec(info)?.[1];
      if (pid !== String(child.pid))
        throw new Error(`port ${port} is taken by another redis-server (pid ${pid ?? "unknown"})`);
      // Replies before the AOF is replayed would show keys missing that are on disk.
      state = "still loading its data";
      return /^loading:0/m.test(info) || undefined;
    },
    {
      // Long enough for a restart that replays a sizeable AOF.
      timeoutMs: 10_000,
      intervalMs: 50,
      onTimeout: () => {
        throw new Error(`redis-server on port ${port} ${state}`);
      },
    },
  );
}
