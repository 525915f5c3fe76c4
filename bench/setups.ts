import { execFileSync, fork, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { spawnReplica, waitForExit, waitForHttp, type ReplicaRuntime } from "../scripts/cluster/processes.js";
import { freePort } from "../scripts/cluster/ports.js";
import { startRedisServer } from "../scripts/cluster/redis-server.js";
import { startRedisCluster, type LocalRedisCluster } from "../scripts/cluster/redis-cluster.js";
import type { Baseline } from "./baseline.js";
import type { Mode } from "./load.js";

export type SetupName =
  | "raw-ws"
  | "raw-ws-batched"
  | "vanilla"
  | "vanilla-cluster-2"
  | "vanilla-cluster-3"
  | "vanilla-rtt-cluster-3"
  | "single"
  | "cluster-2"
  | "cluster-3"
  | "cluster-rc-2"
  | "cluster-rc-3";

export const SETUP_NAMES: readonly SetupName[] = [
  "raw-ws",
  "raw-ws-batched",
  "vanilla",
  "vanilla-cluster-2",
  "vanilla-cluster-3",
  "vanilla-rtt-cluster-3",
  "single",
  "cluster-2",
  "cluster-3",
  "cluster-rc-2",
  "cluster-rc-3",
];

/** Our setups, the only ones whose code comes from `src/` (and so the only ones that can run a baseline). */
const OURS: readonly SetupName[] = ["single", "cluster-2", "cluster-3", "cluster-rc-2", "cluster-rc-3"];

/**
 * A setup as named on the command line: `cluster-3` runs this checkout (or the `--after` revision),
 * `cluster-3@base` the revision given with `--baseline` (bench/baseline.ts).
 */
export interface SetupRef {
  name: SetupName;
  /** `<setup>@base`: the "before" side of a comparison. */
  base: boolean;
  /** The checkout the replicas run from; undefined for this one. */
  root?: string;
  /** The short commit id of `root`; undefined for this checkout. */
  rev?: string;
  /** How reports name it: `cluster-3`, or `cluster-3 @42bf97f` when it runs from another worktree. */
  label: string;
}

/**
 * Parses a `--setups` entry (`single`, `cluster-3@base`). `@base` needs a baseline and one of our setups;
 * `after` (--after=<rev>) pins our plain setups to that revision instead of this checkout's working tree.
 */
export function parseSetup(spec: string, baseline: Baseline | undefined, after?: Baseline): SetupRef {
  const [name, at, ...rest] = spec.split("@");
  if (!SETUP_NAMES.includes(name as SetupName) || rest.length > 0 || (at !== undefined && at !== "base"))
    throw new Error(`unknown setup "${spec}": one of ${SETUP_NAMES.join(", ")}, or one of ours followed by @base`);
  const setup = name as SetupName;
  const from = (b: Baseline, base: boolean): SetupRef => ({
    name: setup,
    base,
    root: b.root,
    rev: b.sha,
    label: `${setup} @${b.sha}`,
  });
  if (at === undefined)
    return after && OURS.includes(setup) ? from(after, false) : { name: setup, base: false, label: setup };
  if (!baseline) throw new Error(`"${spec}" needs --baseline=<git revision>`);
  if (!OURS.includes(setup))
    throw new Error(`"${spec}": only ${OURS.join(", ")} run src/ and can run from the baseline revision`);
  return from(baseline, true);
}

export interface RunningSetup {
  mode: Mode;
  /** Where clients connect; the first is the publisher's. */
  urls: string[];
  /** Server-side processes whose CPU counts (replicas, and Redis for clusters). */
  pids: number[];
  /** redis-server, one of `pids`, for the clusters on one Redis. */
  redisPid?: number;
  /** The replicas (or the one server), in the order of `urls`. */
  replicaPids: number[];
  /** Every redis-server of the setup (6 for a Redis Cluster), all in `pids`. */
  redisPids: number[];
  /** The process whose memory per connection is measured (the single replica). */
  mainPid: number;
  stop(): Promise<void>;
}

const ROOT = new URL("../", import.meta.url).pathname;
// BENCH_CPU_PROF=<dir>: every server process writes a V8 CPU profile there when it exits.
// BENCH_NODE_FLAGS="--max-semi-space-size=1 …": V8/Node flags for every server process (not the load processes).
const PROFILE_ARGS = [
  ...(process.env.BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []),
  ...(process.env.BENCH_NODE_FLAGS?.split(/\s+/).filter(Boolean) ?? []),
];

/**
 * BENCH_RUNTIME=dist (the default): every server runs as production does, without a TypeScript loader in the
 * process. Ours from its compiled dist/ (built once per checkout, baseline worktrees too); the baseline
 * servers of bench/servers/ through Node's own type stripping (they use no syntax that needs a transform).
 * BENCH_RUNTIME=tsx runs them all through tsx, as before 2026-11-26.
 */
export const RUNTIME: ReplicaRuntime = process.env.BENCH_RUNTIME === "tsx" ? "tsx" : "dist";
if (process.env.BENCH_RUNTIME !== undefined && !["tsx", "dist"].includes(process.env.BENCH_RUNTIME)) {
  throw new Error(`BENCH_RUNTIME: tsx or dist, not "${process.env.BENCH_RUNTIME}"`);
}
// A Node without type stripping (before 22.6, or 22.6–22.17 without the flag) runs them through tsx regardless.
const nativeTypeStripping = typeof (process.features as { typescript?: unknown }).typescript === "string";
const BASELINE_SERVER_ARGS = RUNTIME === "dist" && nativeTypeStripping ? [] : ["--import", "tsx"];

const built = new Set<string>();
/** `npm run build` in `root`, once per bench process (a few seconds): dist/ is what the replicas run. */
function buildOnce(root: string): void {
  if (RUNTIME !== "dist" || built.has(root)) return;
  execFileSync("npm", ["run", "--silent", "build"], { cwd: root, stdio: ["ignore", "ignore", "inherit"] });
  built.add(root);
}

const stopAll = (children: ChildProcess[]): Promise<void> =>
  Promise.all(children.map((c) => (c.kill("SIGTERM"), waitForExit(c, 10_000)))).then(() => undefined);

/** A baseline server process from bench/servers/, which reports over IPC once it listens. */
async function forkServer(
  script: string,
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const child = fork(`${ROOT}bench/servers/${script}`, [], {
    execArgv: [...PROFILE_ARGS, ...BASELINE_SERVER_ARGS],
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${script} not listening within 20 s`)), 20_000);
      child.once("message", () => (clearTimeout(timer), resolve()));
      child.once("exit", (code) => (clearTimeout(timer), reject(new Error(`${script} exited with ${code}`))));
    });
  } catch (err) {
    await stopAll([child]);
    throw err;
  }
  return { child, url: `http://127.0.0.1:${port}` };
}

async function startForked(script: string, mode: Mode): Promise<RunningSetup> {
  const { child, url } = await forkServer(script);
  return {
    mode,
    urls: [url],
    pids: [child.pid as number],
    replicaPids: [child.pid as number],
    redisPids: [],
    mainPid: child.pid as number,
    stop: () => stopAll([child]),
  };
}

/** Plain Socket.IO (bench/servers/vanilla-socketio.ts) with @socket.io/redis-adapter: N replicas and Redis. */
async function startVanillaCluster(replicas: number, deliverAfterRoundTrip = false): Promise<RunningSetup> {
  const children: ChildProcess[] = [];
  try {
    const redis = await startRedisServer();
    children.push(redis.child);
    const started = await Promise.allSettled(
      Array.from({ length: replicas }, () =>
        forkServer("vanilla-socketio.ts", {
          REDIS_URL: redis.url,
          ...(deliverAfterRoundTrip ? { VANILLA_ROUND_TRIP_FIRST: "local" } : {}),
        }),
      ),
    );
    const servers = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    children.push(...servers.map((s) => s.child));
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw failed.reason;
    return {
      mode: "sio",
      urls: servers.map((s) => s.url),
      pids: children.map((c) => c.pid as number),
      redisPid: redis.child.pid as number,
      replicaPids: servers.map((x) => x.child.pid as number),
      redisPids: [redis.child.pid as number],
      mainPid: servers[0]?.child.pid as number,
      stop: () => stopAll(children),
    };
  } catch (err) {
    await stopAll(children);
    throw err;
  }
}

/** Ours: one process alone, or `replicas` replicas on one Redis or (`redisCluster`) on a 6-node Redis Cluster. */
async function startOurs(replicas: number, root?: string, redisCluster = false): Promise<RunningSetup> {
  const children: ChildProcess[] = [];
  const pids: number[] = [];
  const redisPids: number[] = [];
  let cluster: LocalRedisCluster | undefined;
  const env: Record<string, string> = {
    LOG_LEVEL: "info",
    // The bench exceeds the production limits on purpose: its publisher sends thousands of events/s from
    // one socket, saturation runs queue far more than 1 MiB for a client, and load processes open many
    // connections. Raised explicitly here so the bench measures the server, not its abuse limits.
    RATE_LIMIT_EVENTS_PER_S: "1000000",
    RATE_LIMIT_BURST: "10000000",
    MAX_SOCKET_BUFFER_BYTES: String(1024 * 1024 * 1024),
    MAX_CONNECTIONS: "1000000",
    MAX_PACKETS_PER_POLL: "1000000",
  };
  let redisPid: number | undefined;
  try {
    if (redisCluster) {
      cluster = await startRedisCluster();
      redisPids.push(...cluster.nodes.map((n) => n.pid() as number));
      pids.push(...redisPids);
      env.REDIS_CLUSTER_NODES = cluster.seeds;
      env.REDIS_KEY_PREFIX = `bench-${randomUUID()}:`;
    } else if (replicas > 1) {
      const redis = await startRedisServer();
      children.push(redis.child);
      redisPid = redis.child.pid as number;
      redisPids.push(redisPid);
      pids.push(redisPid);
      env.REDIS_URL = redis.url;
      env.REDIS_KEY_PREFIX = `bench-${randomUUID()}:`;
    }
    buildOnce(root ?? ROOT);
    const urls: string[] = [];
    const replicaChildren: ChildProcess[] = [];
    for (let i = 0; i < replicas; i++) {
      const port = await freePort();
      const child = spawnReplica(
        port,
        { ...env, REPLICA_ID: `bench-${i + 1}` },
        ["ignore", "ignore", "inherit"],
        PROFILE_ARGS,
        root,
        RUNTIME,
      );
      children.push(child);
      replicaChildren.push(child);
      pids.push(child.pid as number);
      urls.push(`http://127.0.0.1:${port}`);
    }
    await Promise.all(urls.map((url, i) => waitForHttp(`${url}/readyz`, url, replicaChildren[i] as ChildProcess)));
    return {
      mode: "sio",
      urls,
      pids,
      redisPid,
      replicaPids: replicaChildren.map((c) => c.pid as number),
      redisPids,
      mainPid: children[children.length - 1]?.pid as number,
      stop: async () => {
        await stopAll(children);
        await cluster?.stop();
      },
    };
  } catch (err) {
    await stopAll(children);
    await cluster?.stop();
    throw err;
  }
}

/** Starts a setup; `root` (ours only) runs the replicas from another checkout (a --baseline worktree). */
export function startSetup(name: SetupName, root?: string): Promise<RunningSetup> {
  if (root !== undefined && !OURS.includes(name)) throw new Error(`${name} does not run src/: no other revision`);
  switch (name) {
    case "raw-ws":
      return startForked("raw-ws.ts", "raw");
    case "raw-ws-batched":
      return startForked("raw-ws-batched.ts", "raw");
    case "vanilla":
      return startForked("vanilla-socketio.ts", "sio");
    case "vanilla-cluster-2":
      return startVanillaCluster(2);
    case "vanilla-cluster-3":
      return startVanillaCluster(3);
    case "vanilla-rtt-cluster-3":
      // Vanilla in the shape of ours (the sender's replica delivers after one Redis round trip): the price of
      // storing before delivering, apart from everything else ours does.
      return startVanillaCluster(3, true);
    case "single":
      return startOurs(1, root);
    case "cluster-2":
      return startOurs(2, root);
    case "cluster-3":
      return startOurs(3, root);
    case "cluster-rc-2":
      return startOurs(2, root, true);
    case "cluster-rc-3":
      return startOurs(3, root, true);
  }
}
