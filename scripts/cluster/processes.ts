import { spawn, spawnSync, type ChildProcess, type StdioOptions } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderNginxConf, staticUpstream } from "./nginx.js";
import { startRedisServer } from "./redis-server.js";

export interface ProcessClusterOptions {
  /** nginx port; replicas listen on port+1 … port+replicas unless replicaPorts is given. */
  port: number;
  replicas: number;
  replicaPorts?: number[];
  logLevel?: string;
  /** Where child output goes: inherit for the CLI, ignore for tests. */
  stdio?: "inherit" | "ignore";
  env?: Record<string, string>;
}

export interface ProcessCluster {
  url: string;
  replicaUrls: string[];
  replicaIds: string[];
  /** Processes started (redis + replicas + nginx). */
  processCount(): number;
  stopReplica(index: number): Promise<void>;
  stop(): Promise<void>;
}

const ROOT = new URL("../../", import.meta.url).pathname;

function findBinary(name: string, candidates: string[]): string {
  for (const path of candidates) if (existsSync(path)) return path;
  const which = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
  if (which.status === 0 && which.stdout.trim()) return which.stdout.trim();
  throw new Error(
    `${name} not found: install it (Debian: apt-get install -y ${name === "nginx" ? "nginx-light" : name})`,
  );
}

/** One replica: `src/main.ts` on loopback `port`, with `env` on top of this process's environment. */
export function spawnReplica(
  port: number,
  env: Record<string, string | undefined>,
  stdio: StdioOptions,
  nodeArgs: string[] = [],
): ChildProcess {
  return spawn(process.execPath, [...nodeArgs, "--import", "tsx", "src/main.ts"], {
    cwd: ROOT,
    stdio,
    env: { ...process.env, ...env, PORT: String(port), HOST: "127.0.0.1" },
  });
}

/** Resolves when `child` has exited, killing it after `ms`. */
export function waitForExit(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve();
    }, ms);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Polls `url` until it answers 200; fails when `child` exits first or after `ms`. */
export async function waitForHttp(url: string, what: string, child: ChildProcess, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode} while starting`);
    try {
      const res = await fetch(url);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${what} not ready at ${url} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The cluster topology without Docker: a redis-server, N replica processes and nginx rendered from
 * nginx/nginx.conf, all on loopback. Everything started here is stopped by stop().
 */
export async function startProcessCluster(opts: ProcessClusterOptions): Promise<ProcessCluster> {
  const redisBin = findBinary("redis-server", ["/usr/bin/redis-server"]);
  const nginxBin = findBinary("nginx", ["/usr/sbin/nginx"]);
  const stdio = opts.stdio ?? "ignore";
  const dir = mkdtempSync(join(tmpdir(), "rt-cluster-"));
  const children: ChildProcess[] = [];
  const replicas: ChildProcess[] = [];
  let stopping = false;
  const expectedExits = new Set<ChildProcess>();
  const track = (child: ChildProcess, name = child.spawnfile) => {
    children.push(child);
    // A child that dies on its own is worth a line: the cluster keeps running without it.
    child.once("exit", (code, signal) => {
      if (!stopping && !expectedExits.has(child))
        process.stderr.write(`cluster: ${name} (pid ${child.pid}) exited (${signal ?? `code ${code}`})\n`);
    });
    return child;
  };

  const stop = async () => {
    stopping = true;
    await Promise.all([...children].reverse().map((c) => (c.kill("SIGTERM"), waitForExit(c, 10_000))));
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    const redis = await startRedisServer(stdio, redisBin);
    track(redis.child, "redis-server");
    const redisUrl = redis.url;

    const replicaPorts = opts.replicaPorts ?? Array.from({ length: opts.replicas }, (_, i) => opts.port + i + 1);
    const replicaIds = replicaPorts.map((_, i) => `replica-${i + 1}`);
    await Promise.all(
      replicaPorts.map(async (port, i) => {
        const env = {
          ...opts.env,
          REPLICA_ID: replicaIds[i],
          REDIS_URL: redisUrl,
          LOG_LEVEL: opts.logLevel ?? process.env.LOG_LEVEL ?? "info",
        };
        const child = track(spawnReplica(port, env, stdio), replicaIds[i]);
        replicas[i] = child;
        await waitForHttp(`http://127.0.0.1:${port}/readyz`, `replica ${port}`, child);
      }),
    );

    writeFileSync(join(dir, "nginx.conf"), renderNginxConf(`127.0.0.1:${opts.port}`));
    writeFileSync(join(dir, "upstream.conf"), staticUpstream(replicaPorts.map((p) => `127.0.0.1:${p}`)));
    const nginx = track(
      spawn(
        nginxBin,
        ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", "stderr", "-g", `daemon off; pid ${join(dir, "nginx.pid")};`],
        { stdio },
      ),
      "nginx",
    );
    const url = `http://127.0.0.1:${opts.port}`;
    await waitForHttp(`${url}/healthz`, "nginx", nginx);

    return {
      url,
      replicaUrls: replicaPorts.map((p) => `http://127.0.0.1:${p}`),
      replicaIds,
      processCount: () => children.filter((c) => c.exitCode === null && c.signalCode === null).length,
      async stopReplica(index) {
        const child = replicas[index];
        if (!child) throw new Error(`no replica ${index}`);
        expectedExits.add(child);
        child.kill("SIGTERM");
        await waitForExit(child, 10_000);
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
