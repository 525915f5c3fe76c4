import { fork, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { spawnReplica, waitForExit, waitForHttp } from "../scripts/cluster/processes.js";
import { freePort } from "../scripts/cluster/ports.js";
import { startRedisServer } from "../scripts/cluster/redis-server.js";
import type { Mode } from "./load.js";

export type SetupName = "raw-ws" | "vanilla" | "single" | "cluster-2" | "cluster-3";

export interface RunningSetup {
  mode: Mode;
  /** Where clients connect; the first is the publisher's. */
  urls: string[];
  /** Server-side processes whose CPU counts (replicas, and Redis for clusters). */
  pids: number[];
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

const stopAll = (children: ChildProcess[]): Promise<void> =>
  Promise.all(children.map((c) => (c.kill("SIGTERM"), waitForExit(c, 10_000)))).then(() => undefined);

/** A one-process baseline server from bench/servers/, which reports over IPC once it listens. */
async function startForked(script: string, mode: Mode): Promise<RunningSetup> {
  const port = await freePort();
  const child = fork(`${ROOT}bench/servers/${script}`, [], {
    execArgv: [...PROFILE_ARGS, "--import", "tsx"],
    env: { ...process.env, PORT: String(port) },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  await new Promise<void>((resolve, reject) => {
    child.once("message", () => resolve());
    child.once("exit", (code) => reject(new Error(`${script} exited with ${code}`)));
  });
  return {
    mode,
    urls: [`http://127.0.0.1:${port}`],
    pids: [child.pid as number],
    mainPid: child.pid as number,
    stop: () => stopAll([child]),
  };
}

async function startOurs(replicas: number): Promise<RunningSetup> {
  const children: ChildProcess[] = [];
  const pids: number[] = [];
  const env: Record<string, string> = { LOG_LEVEL: "info" };
  try {
    if (replicas > 1) {
      const redis = await startRedisServer();
      children.push(redis.child);
      pids.push(redis.child.pid as number);
      env.REDIS_URL = redis.url;
      env.REDIS_KEY_PREFIX = `bench-${randomUUID()}:`;
    }
    const urls: string[] = [];
    const replicaChildren: ChildProcess[] = [];
    for (let i = 0; i < replicas; i++) {
      const port = await freePort();
      const child = spawnReplica(
        port,
        { ...env, REPLICA_ID: `bench-${i + 1}` },
        ["ignore", "ignore", "inherit"],
        PROFILE_ARGS,
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
      mainPid: children[children.length - 1]?.pid as number,
      stop: () => stopAll(children),
    };
  } catch (err) {
    await stopAll(children);
    throw err;
  }
}

export function startSetup(name: SetupName): Promise<RunningSetup> {
  switch (name) {
    case "raw-ws":
      return startForked("raw-ws.ts", "raw");
    case "vanilla":
      return startForked("vanilla-socketio.ts", "sio");
    case "single":
      return startOurs(1);
    case "cluster-2":
      return startOurs(2);
    case "cluster-3":
      return startOurs(3);
  }
}
