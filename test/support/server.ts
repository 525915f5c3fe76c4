import type { AddressInfo } from "node:net";
import { io as connectClient, type ManagerOptions, type Socket, type SocketOptions } from "socket.io-client";
import { createApp, type App } from "../../src/app.js";
import { parseConfig, type Config } from "../../src/config.js";
import type { ClientToServerEvents, ServerToClientEvents } from "../../src/contract.js";
import { createLogger } from "../../src/logger.js";
import { pollUntil } from "../../scripts/cluster/poll.js";

export type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export interface TestServer {
  app: App;
  url: string;
  config: Config;
}

const cleanups: Array<() => Promise<void> | void> = [];

/** Registers work for `cleanupAll`, which every suite calls in afterEach. */
export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

export async function cleanupAll(): Promise<void> {
  while (cleanups.length > 0) await cleanups.pop()?.();
}

export async function startServer(env: Record<string, string> = {}): Promise<TestServer> {
  const config = parseConfig({ PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "silent", REPLICA_ID: "test-1", ...env });
  const app = createApp(config, createLogger(config));
  onCleanup(() => app.close());
  await new Promise<void>((resolve) => app.httpServer.listen(0, "127.0.0.1", resolve));
  const { port } = app.httpServer.address() as AddressInfo;
  return { app, url: `http://127.0.0.1:${port}`, config };
}

export function connect(url: string, opts: Partial<ManagerOptions & SocketOptions> = {}): Promise<ClientSocket> {
  const socket: ClientSocket = connectClient(url, {
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
    ...opts,
  });
  onCleanup(() => {
    socket.disconnect();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`connect to ${url} timed out`)), 5000);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once("connect_error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Emits an event with arbitrary (deliberately wrong or untyped) arguments, bypassing the typed map. */
export function emitRaw(client: ClientSocket, event: string, ...args: unknown[]): void {
  (client as unknown as { emit(e: string, ...a: unknown[]): void }).emit(event, ...args);
}

type Listener<E extends keyof ServerToClientEvents> = Parameters<ServerToClientEvents[E]>;

/** The next `event` on `socket`, or a rejection naming it after `ms`. */
export function next<E extends keyof ServerToClientEvents>(
  socket: ClientSocket,
  event: E,
  ms = 3000,
): Promise<Listener<E>[0]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${event}" within ${ms} ms`)), ms);
    const on = socket.once.bind(socket) as (e: string, fn: (arg: unknown) => void) => void;
    on(event, (arg) => {
      clearTimeout(timer);
      resolve(arg as Listener<E>[0]);
    });
  });
}

/** Collects every `event` received by `socket` from now on. */
export function record<E extends keyof ServerToClientEvents>(socket: ClientSocket, event: E): Array<Listener<E>[0]> {
  const seen: Array<Listener<E>[0]> = [];
  const on = socket.on.bind(socket) as (e: string, fn: (arg: unknown) => void) => void;
  on(event, (arg) => seen.push(arg as Listener<E>[0]));
  return seen;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it holds or `ms` passes. */
export async function eventually(check: () => boolean, ms = 3000, what = "condition"): Promise<void> {
  await pollUntil(() => check() || undefined, {
    timeoutMs: ms,
    onTimeout: () => {
      throw new Error(`${what} not met within ${ms} ms`);
    },
  });
}

/** POSTs `body` as JSON to `url` (a string is sent as it is, for malformed input), with a bearer `token`. */
export function postJson(url: string, body: unknown, token?: string): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}
