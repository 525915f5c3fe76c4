import { fork, spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { freePort } from "../scripts/cluster/processes.js";
import type { Mode } from "./load.js";

export type SetupName = "raw-ws" | "single" | "cluster-2" | "cluster-3";

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

function stopAll(children: ChildProcess[]): Promise<void> {
  return Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const timer = setTimeout(() => c.kill("SIGKILL"), 10_000);
          c.once("exit", () => {
            clearTimeout(timer);
            resolve();
          });
          c.kill("SIGTERM");
        }),
    ),
  ).then(() => undefined);
}

async function waitFor(check: () => Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what} not ready within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function startRawWs(): Promise<RunningSetup> {
  const port = await freePort();
  const child = fork(`${ROOT}bench/servers/raw-ws.ts`, [], {
    execArgv: ["--import", "tsx"],
    env: { ...process.env, PORT: String(port) },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  await new Promise<void>((resolve, reject) => {
    child.once("message", () => resolve());
    child.once("exit", (code) => reject(new Error(`raw-ws exited with ${code}`)));
  });
  return {
    mode: "raw",
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
      const redisPort = await freePort();
      const redis = spawn(
        "redis-server",
        ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        {
          stdio: "ignore",
        },
      );
      children.push(redis);
      pids.push(redis.pid as number);
      env.REDIS_URL = `redis://127.0.0.1:${redisPort}`;
      env.REDIS_KEY_PREFIX = `bench-${randomUUID()}:`;
    }
    const urls: string[] = [];
    for (let i = 0; i < replicas; i++) {
      const port = await freePort();
      const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
        cwd: ROOT,
        stdio: ["ignore", "ignore", "inherit"],
        env: { ...process.env, ...env, PORT: String(port), HOST: "127.0.0.1", REPLICA_ID: `bench-${i + 1}` },
      });
      children.push(child);
      pids.push(child.pid as number);
      urls.push(`http://127.0.0.1:${port}`);
    }
    for (const url of urls) await waitFor(async () => (await fetch(`${url}/readyz`)).ok, url);
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
      return startRawWs();
    case "single":
      return startOurs(1);
    case "cluster-2":
      return startOurs(2);
    case "cluster-3":
      return startOurs(3);
  }
}
