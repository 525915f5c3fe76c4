import { spawn, spawnSync, type ChildProcess, type StdioOptions } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeNginxSite } from "./nginx.js";
import { pollUntil } from "./poll.js";
import { canBind, freeClusterPorts, freePort, METRICS_PORT_OFFSET, takenPorts } from "./ports.js";
import { startRedisServer, type KillSignal, type RedisPersistence } from "./redis-server.js";
import { startRedisCluster, type LocalRedisCluster } from "./redis-cluster.js";

export type { KillSignal, RedisPersistence } from "./redis-server.js";

export interface ProcessClusterOptions {
  /** nginx port; replicas listen on port+1 … port+replicas unless replicaPorts is given. */
  port: number;
  replicas: number;
  replicaPorts?: number[];
  logLevel?: string;
  /** Where child output goes: inherit for the CLI, ignore for tests. */
  stdio?: "inherit" | "ignore";
  env?: Record<string, string>;
  /** How the cluster's redis-server keeps data across redis.restart(); `none` (memory only) by default. */
  redisPersistence?: RedisPersistence;
  /**
   * `single` (the default): one redis-server, REDIS_URL. `cluster`: a Redis Cluster of 3 masters and 3 replicas
   * (scripts/cluster/redis-cluster.ts), REDIS_CLUSTER_NODES; the replicas then use sharded pub/sub.
   */
  redisMode?: "single" | "cluster";
  /** nginx's limits.conf (per-IP limits); nginx/limits.conf (none) by default. */
  nginxLimits?: string;
  /**
   * Each replica's METRICS_PORT; by default replica port + 1000 (the CLI), or free ports when replicaPorts is
   * given (tests).
   */
  metricsPorts?: number[];
  /** `tsx` by default; `dist` runs the compiled server (build it first: `npm run build`). */
  runtime?: ReplicaRuntime;
  /** nginx also listens with TLS on `port` (nginx/tls.conf rendered with these PEM files). */
  tls?: { port: number; cert: string; key: string };
}

/** The cluster's redis-server, for chaos tests: kill it and bring it back on the same port and data. */
export interface ClusterRedis {
  url: string;
  port: number;
  persistence: RedisPersistence;
  /** The AOF directory (inside the cluster's temporary directory); undefined with persistence `none`. */
  dir: string | undefined;
  /** The pid of the running redis-server; undefined while it is down. */
  pid(): number | undefined;
  /** Sends `signal` at once; resolves when the process has exited. Not reported as an unexpected exit. */
  kill(signal: KillSignal): Promise<void>;
  /** Same port, data directory and persistence (SIGTERM first if it runs); resolves when it answers PING. */
  restart(): Promise<void>;
}

export interface RestartOptions {
  /** How long the replica may take to answer; 20 s by default. */
  timeoutMs?: number;
  /**
   * `ready` (the default) waits for /readyz 200, which needs Redis; `listening` accepts any answer from the
   * replica (503 while Redis is down), for restarting a replica during a Redis outage.
   */
  until?: "ready" | "listening";
}

export interface ProcessCluster {
  url: string;
  /** https:// on the TLS port, when started with `tls`. */
  tlsUrl: string | undefined;
  replicaUrls: string[];
  /** Each replica's metrics listener (METRICS_PORT), by index. */
  metricsUrls: string[];
  replicaIds: string[];
  /** The single redis-server; throws on a cluster started with redisMode `cluster` (see redisCluster). */
  redis: ClusterRedis;
  /** The Redis Cluster, with redisMode `cluster`. */
  redisCluster: LocalRedisCluster | undefined;
  /** Processes running now (redis + replicas + nginx). */
  processCount(): number;
  /** The pid of replica `index`; undefined while it is down. */
  replicaPid(index: number): number | undefined;
  /** SIGTERM (graceful, SIGKILL after 10 s) and wait for the exit. */
  stopReplica(index: number): Promise<void>;
  /**
   * Sends `signal` (SIGKILL by default) at once and resolves when the replica has exited; not reported as an
   * unexpected exit. A SIGTERM is escalated to SIGKILL after 10 s, like stopReplica.
   */
  killReplica(index: number, signal?: KillSignal): Promise<void>;
  /**
   * Starts replica `index` again on the same port, with the same env and REPLICA_ID (stopping it first with
   * SIGTERM if it still runs). nginx's static upstream finds it again on that port. Resolves when it is
   * ready (see RestartOptions).
   */
  restartReplica(index: number, opts?: RestartOptions): Promise<void>;
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

/**
 * How a replica runs: `tsx` (src/main.ts through the TypeScript loader: tests, the bench) or `dist` (the
 * compiled dist/main.js of `npm run build`, as in production and the Docker image: `npm run cluster`).
 */
export type ReplicaRuntime = "tsx" | "dist";

/**
 * One replica on loopback `port`, with `env` on top of this process's environment. `root` is the checkout it
 * runs from (this one by default; the bench passes a worktree of another revision).
 */
export function spawnReplica(
  port: number,
  env: Record<string, string | undefined>,
  stdio: StdioOptions,
  nodeArgs: string[] = [],
  root: string = ROOT,
  runtime: ReplicaRuntime = "tsx",
): ChildProcess {
  const entry = runtime === "dist" ? ["dist/main.js"] : ["--import", "tsx", "src/main.ts"];
  return spawn(process.execPath, [...nodeArgs, ...entry], {
    cwd: root,
    stdio,
    // METRICS_PORT off unless given: several replicas on one host cannot all take the default 9464.
    env: { ...process.env, ...env, METRICS_PORT: env.METRICS_PORT ?? "0", PORT: String(port), HOST: "127.0.0.1" },
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

export interface WaitForHttpOptions {
  /**
   * The X-Replica-Id the answer must carry (one of them, for nginx in front of several replicas). Without
   * it, a foreign server already listening on the port would pass for our child, which then dies on
   * EADDRINUSE after "ready" was announced.
   */
  replicaId?: string | readonly string[];
  /** Accept any status from the right replica (a 503 /readyz while Redis is down), not only 200. */
  anyStatus?: boolean;
}

/** Why `res` cannot come from the expected process, or undefined when it can. */
function foreignAnswer(res: Response, expected: readonly string[]): string | undefined {
  const id = res.headers.get("x-replica-id");
  // nginx's own 502 (no replica up yet) carries no id: not a verdict either way.
  if (id === null) return res.status === 200 ? "no X-Replica-Id header" : undefined;
  return expected.includes(id) ? undefined : `X-Replica-Id ${id}, expected ${expected.join(" or ")}`;
}

/** Why `child` stopped: its exit, and whether its port is held by someone else (the usual cause). */
async function exitReason(what: string, child: ChildProcess, port: number | undefined): Promise<string> {
  const how = child.signalCode ?? `code ${child.exitCode}`;
  const taken = port && !(await canBind(port)) ? `: port ${port} is taken by another process` : "";
  return `${what} exited (${how}) while starting${taken}`;
}

/**
 * Polls `url` until it answers 200 (from the expected replica when `opts.replicaId` is given); fails when
 * `child` exits first, when another process answers on the port, or after `ms`.
 */
export async function waitForHttp(
  url: string,
  what: string,
  child: ChildProcess,
  ms = 20_000,
  opts: WaitForHttpOptions = {},
): Promise<void> {
  const expected = typeof opts.replicaId === "string" ? [opts.replicaId] : opts.replicaId;
  const port = new URL(url).port;
  await pollUntil(
    async () => {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(await exitReason(what, child, Number(port)));
      let res: Response;
      try {
        res = await fetch(url);
        await res.arrayBuffer();
      } catch {
        return undefined; // not listening yet
      }
      const foreign = expected && foreignAnswer(res, expected);
      if (foreign)
        throw new Error(`${what}: port ${port} is taken by another process (${url} answered with ${foreign})`);
      // With anyStatus, an id that passed the check above is the replica itself, ready or not.
      return res.status === 200 || (opts.anyStatus && res.headers.has("x-replica-id")) || undefined;
    },
    {
      timeoutMs: ms,
      intervalMs: 100,
      onTimeout: () => {
        throw new Error(`${what} not ready at ${url} within ${ms} ms`);
      },
    },
  );
}

/** Replica port + 1000 for the CLI (predictable, printed); free ports when the caller chose the replica ports. */
async function defaultMetricsPorts(replicaPorts: number[], opts: ProcessClusterOptions): Promise<number[]> {
  if (!opts.replicaPorts) return replicaPorts.map((p) => p + METRICS_PORT_OFFSET);
  const ports: number[] = [];
  const used = new Set([opts.port, ...replicaPorts, ...(opts.tls ? [opts.tls.port] : [])]);
  while (ports.length < replicaPorts.length) {
    const candidate = await freePort();
    if (used.has(candidate)) continue;
    ports.push(candidate);
    used.add(candidate);
  }
  return ports;
}

interface Replica {
  id: string;
  port: number;
  env: Record<string, string>;
  child?: ChildProcess;
}

const isRunning = (child: ChildProcess | undefined): child is ChildProcess =>
  child !== undefined && child.exitCode === null && child.signalCode === null;

/** How a start fails when one of its ports was taken (the messages of exitReason, waitForHttp and the check in startProcessCluster). */
const PORT_TAKEN = /(is taken|already in use) by another process/;
/** Starts tried by startProcessClusterOnFreePorts before a port race is reported. */
const PORT_RACE_ATTEMPTS = 3;

/**
 * startProcessCluster on ports found free just before (freeClusterPorts). Between that check and a child's bind,
 * another process (a server of a test running in parallel) may take one of them: the start then fails naming the
 * port, and is tried again on other ports, up to PORT_RACE_ATTEMPTS starts.
 */
export async function startProcessClusterOnFreePorts(
  opts: Omit<ProcessClusterOptions, "port" | "replicaPorts">,
  choosePorts: (replicas: number) => Promise<{ port: number; replicaPorts: number[] }> = freeClusterPorts,
): Promise<ProcessCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startProcessCluster({ ...opts, ...(await choosePorts(opts.replicas)) });
    } catch (err) {
      const message = (err as Error).message;
      if (attempt >= PORT_RACE_ATTEMPTS || !PORT_TAKEN.test(message)) throw err;
      process.stderr.write(`cluster: ${message}; starting again on other ports (attempt ${attempt + 1})\n`);
    }
  }
}

/**
 * The cluster topology without Docker: a redis-server, N replica processes and nginx rendered from
 * nginx/nginx.conf, all on loopback. Everything started here is stopped by stop(). Replicas and Redis can
 * be killed and restarted in place (chaos tests); nginx keeps its static upstream, as a restarted process
 * comes back on the same port.
 */
export async function startProcessCluster(opts: ProcessClusterOptions): Promise<ProcessCluster> {
  const redisBin = findBinary("redis-server", ["/usr/bin/redis-server"]);
  const nginxBin = findBinary("nginx", ["/usr/sbin/nginx"]);
  const stdio = opts.stdio ?? "ignore";
  const replicaPorts = opts.replicaPorts ?? Array.from({ length: opts.replicas }, (_, i) => opts.port + i + 1);
  const metricsPorts = opts.metricsPorts ?? (await defaultMetricsPorts(replicaPorts, opts));

  // A port someone else listens on would be answered by them while our child dies on EADDRINUSE: refuse
  // before starting anything, naming the port.
  const taken = await takenPorts([opts.port, ...replicaPorts, ...metricsPorts, ...(opts.tls ? [opts.tls.port] : [])]);
  if (taken.length > 0)
    throw new Error(
      `port ${taken.join(", ")} already in use by another process (needs ${opts.port} and replicas ${replicaPorts.join(", ")})`,
    );

  const dir = mkdtempSync(join(tmpdir(), "rt-cluster-"));
  const children: ChildProcess[] = [];
  let starting = true;
  let stopping = false;
  const expectedExits = new Set<ChildProcess>();
  // A child that dies during start-up fails the start, even after its own readiness check passed.
  let failStart: (err: Error) => void = () => undefined;
  const startFailed = new Promise<never>((_, reject) => (failStart = reject));
  startFailed.catch(() => undefined);
  const track = (child: ChildProcess, name: string, port?: number) => {
    children.push(child);
    // A start-up that goes on after a failed start has been torn down must not leave a child behind.
    if (stopping) child.kill("SIGTERM");
    // A child that dies on its own is worth a line: the cluster keeps running without it.
    child.once("exit", (code, signal) => {
      if (stopping || expectedExits.has(child)) return;
      const how = signal ?? `code ${code}`;
      if (starting) void exitReason(`${name} (pid ${child.pid})`, child, port).then((why) => failStart(new Error(why)));
      else process.stderr.write(`cluster: ${name} (pid ${child.pid}) exited (${how})\n`);
    });
    return child;
  };
  /** Sends `signal` to `child` without it counting as a crash; resolves on exit (SIGKILL after 10 s). */
  const kill = (child: ChildProcess | undefined, signal: KillSignal) => {
    if (!isRunning(child)) return Promise.resolve();
    expectedExits.add(child);
    child.kill(signal);
    return waitForExit(child, 10_000);
  };

  const stop = async () => {
    stopping = true;
    await Promise.all([...children].reverse().map((c) => (c.kill("SIGTERM"), waitForExit(c, 10_000))));
    await redisCluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  };

  const persistence = opts.redisPersistence ?? "none";
  const redisDir = join(dir, "redis");
  mkdirSync(redisDir);
  const replicaIds = replicaPorts.map((_, i) => `replica-${i + 1}`);
  const replicas: Replica[] = [];

  /** Spawns replica `i` and waits for it; a replica that does not come up is killed, not left behind. */
  const startReplica = async (i: number, restart: RestartOptions = {}) => {
    const r = replicas[i] as Replica;
    const child = track(spawnReplica(r.port, r.env, stdio, [], ROOT, opts.runtime), r.id, r.port);
    r.child = child;
    try {
      await waitForHttp(`http://127.0.0.1:${r.port}/readyz`, `${r.id} on port ${r.port}`, child, restart.timeoutMs, {
        replicaId: r.id,
        anyStatus: restart.until === "listening",
      });
    } catch (err) {
      await kill(child, "SIGKILL");
      throw err;
    }
  };
  const replicaAt = (index: number): Replica => {
    const r = replicas[index];
    if (!r) throw new Error(`no replica ${index} (the cluster has ${replicas.length})`);
    return r;
  };

  let redisCluster: LocalRedisCluster | undefined;
  const start = async (): Promise<ProcessCluster> => {
    const redis =
      opts.redisMode === "cluster"
        ? undefined
        : await startRedisServer({ stdio, bin: redisBin, persistence, dir: redisDir });
    if (redis) track(redis.child, "redis-server");
    else redisCluster = await startRedisCluster({ stdio, bin: redisBin });
    const redisEnv: Record<string, string> = redis
      ? { REDIS_URL: redis.url }
      : { REDIS_CLUSTER_NODES: (redisCluster as LocalRedisCluster).seeds };

    replicaPorts.forEach((port, i) => {
      const env = {
        // No drain unless asked for (the environment or opts.env): stopping a local cluster, a chaos test's
        // rolling restart, should not wait DRAIN_DELAY_S + DRAIN_CLOSE_S per replica.
        DRAIN_DELAY_S: process.env.DRAIN_DELAY_S ?? "0",
        DRAIN_CLOSE_S: process.env.DRAIN_CLOSE_S ?? "0",
        ...opts.env,
        REPLICA_ID: replicaIds[i] as string,
        ...redisEnv,
        METRICS_PORT: String(metricsPorts[i]),
        LOG_LEVEL: opts.logLevel ?? process.env.LOG_LEVEL ?? "info",
      };
      replicas.push({ id: replicaIds[i] as string, port, env });
    });
    await Promise.all(replicas.map((_, i) => startReplica(i)));

    const nginxArgs = writeNginxSite(dir, {
      port: opts.port,
      upstream: replicaPorts.map((p) => `127.0.0.1:${p}`),
      limits: opts.nginxLimits,
      tls: opts.tls,
    });
    const nginx = track(spawn(nginxBin, nginxArgs, { stdio }), "nginx", opts.port);
    const url = `http://127.0.0.1:${opts.port}`;
    // Through nginx, /healthz is answered by one of our replicas; anything else is another server on the port.
    await waitForHttp(`${url}/healthz`, `nginx on port ${opts.port}`, nginx, undefined, { replicaId: replicaIds });

    const clusterRedis: ClusterRedis | undefined = redis && {
      url: redis.url,
      port: redis.port,
      persistence,
      dir: redis.dir,
      pid: () => (redis.running() ? redis.child.pid : undefined),
      kill: (signal) => kill(redis.child, signal),
      async restart() {
        await kill(redis.child, "SIGTERM");
        await redis.restart();
        track(redis.child, "redis-server");
      },
    };

    return {
      url,
      tlsUrl: opts.tls ? `https://127.0.0.1:${opts.tls.port}` : undefined,
      replicaUrls: replicaPorts.map((p) => `http://127.0.0.1:${p}`),
      metricsUrls: metricsPorts.map((p) => `http://127.0.0.1:${p}`),
      replicaIds,
      get redis(): ClusterRedis {
        if (!clusterRedis) throw new Error("this cluster runs on a Redis Cluster: use redisCluster");
        return clusterRedis;
      },
      redisCluster,
      processCount: () =>
        children.filter(isRunning).length + (redisCluster?.nodes.filter((n) => n.pid() !== undefined).length ?? 0),
      replicaPid: (index) => {
        const child = replicaAt(index).child;
        return isRunning(child) ? child.pid : undefined;
      },
      stopReplica: (index) => kill(replicaAt(index).child, "SIGTERM"),
      killReplica: (index, signal = "SIGKILL") => kill(replicaAt(index).child, signal),
      async restartReplica(index, restart) {
        await kill(replicaAt(index).child, "SIGTERM");
        await startReplica(index, restart);
      },
      stop,
    };
  };

  try {
    const cluster = await Promise.race([start(), startFailed]);
    starting = false;
    return cluster;
  } catch (err) {
    await stop();
    throw err;
  }
}
