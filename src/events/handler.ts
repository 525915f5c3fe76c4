import type { Server, Socket } from "socket.io";
import type { z } from "zod";
import type { AckResult, ClientEventName, ClientToServerEvents, ErrorCode, ServerToClientEvents } from "../contract.js";
import type { RoomFeeds } from "../history/feeds.js";
import type { RoomLog } from "../history/log.js";
import type { Logger } from "../logger.js";
import { TIMING_SAMPLE_EVERY, type Metrics } from "../metrics.js";
import type { Auth } from "../auth/auth.js";
import { errorSummary, type LimitedLog } from "../ops/log-limiter.js";
import type { Relay } from "./relay.js";
import { describeIssue } from "../schemas.js";
import { clip, MAX_ERROR_MESSAGE_CHARS } from "../limits/clip.js";

// socket.data travels with fetchSockets (room-members) over Redis: only the user id of an authenticated
// socket goes there; the rest of its session stays on its replica (src/auth/auth.ts).
export interface SocketData {
  user?: string;
}

export type TypedServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
export type TypedSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

/** What every handler may use; built once per app, shared by all sockets. */
export interface AppContext {
  io: TypedServer;
  replicaId: string;
  log: Logger;
  metrics: Metrics;
  history: RoomLog;
  feeds: RoomFeeds;
  auth: Auth;
  /** Broadcasts that say how far they went (src/events/relay.ts). */
  relay: Relay;
  /** Rate-limited warnings for what clients can trigger at will (src/ops/log-limiter.ts). */
  limited: LimitedLog;
}

/**
 * A socket listener shared by every socket: Socket.IO calls it with `this` bound to the socket, so
 * registering it allocates nothing per connection (no closures per socket and event).
 */
export type SharedListener = (this: TypedSocket, ...args: unknown[]) => Promise<void> | undefined;
/** One listener per client event: the compiler refuses a registry that misses one. */
export type EventRegistry = Record<ClientEventName, SharedListener>;

type AnyAck = (result: AckResult) => void;

/**
 * A result with work that must follow the acknowledgement on the wire (a join releases the live messages it
 * held back only after its ack).
 */
export class ThenAfterAck {
  constructor(
    readonly value: object,
    readonly after: () => void,
  ) {}
}

type Result = object | undefined;

/** A rejection the client caused: answered with an `error` event and a failed ack, never thrown further. */
export class EventError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export function reject(
  app: AppContext,
  socket: TypedSocket,
  event: string,
  code: ErrorCode,
  message: string,
  ack?: AnyAck,
): void {
  // Bounded echoes: a 900 KB event name must not come back (or reach the log) whole.
  const name = clip(event);
  const text = clip(message, MAX_ERROR_MESSAGE_CHARS);
  app.log.debug({ socket: socket.id, event: name, code }, text);
  app.metrics.eventRejected(name, code);
  socket.emit("error", { event: name, code, message: text });
  ack?.({ ok: false, error: { code, message: text } });
}

const OK: AckResult = { ok: true };
const success = (result: Result): AckResult => (result === undefined ? OK : { ok: true, ...result });

function settle(result: Result, ack: AnyAck | undefined): void {
  if (result instanceof ThenAfterAck) {
    ack?.(success(result.value));
    result.after();
  } else {
    ack?.(success(result));
  }
}

function fail(app: AppContext, socket: TypedSocket, event: string, err: unknown, ack: AnyAck | undefined): void {
  if (err instanceof EventError) return reject(app, socket, event, err.code, err.message, ack);
  // A stack overflow is what a deeply nested payload causes, at will and at rate: one short line a second.
  if (err instanceof RangeError) {
    app.limited.log("warn", `handler:${event}:RangeError`, { event, error: errorSummary(err) }, "event handler failed");
  } else {
    app.log.error({ socket: socket.id, event, err }, "event handler failed");
  }
  reject(app, socket, event, "INTERNAL", "internal error", ack);
}

function settleLater(
  app: AppContext,
  socket: TypedSocket,
  event: string,
  result: Promise<Result>,
  ack: AnyAck | undefined,
): Promise<void> {
  return result.then(
    (value) => settle(value, ack),
    (err: unknown) => fail(app, socket, event, err, ack),
  );
}

interface Options<T> {
  /** Without a callback the event has no way to answer: reject it rather than drop it. */
  ackRequired?: boolean;
  /**
   * A hand-written check of the common case, tried before the schema: it returns the value the schema would,
   * or undefined to let the schema decide (and word the rejection).
   */
  fast?: (data: unknown) => T | undefined;
}

/**
 * One event's listener: the payload is validated by `schema` (or the event takes none when it is null),
 * the optional trailing acknowledgement is split off, and the handler's return value becomes
 * `{ ok: true, ...value }`.
 */
export function defineEvent<S extends z.ZodType | null>(
  app: AppContext,
  event: keyof ClientToServerEvents,
  schema: S,
  handler: (socket: TypedSocket, data: S extends z.ZodType ? z.infer<S> : undefined) => Result | Promise<Result>,
  options: Options<S extends z.ZodType ? z.infer<S> : undefined> = {},
): SharedListener {
  const { fast } = options;
  const received = app.metrics.eventReceived(event);
  const handled = app.metrics.eventHandled(event);
  const handle: SharedListener = function (...args) {
    const ack = typeof args[args.length - 1] === "function" ? (args.pop() as AnyAck) : undefined;
    if (options.ackRequired && !ack) {
      reject(app, this, event, "ACK_REQUIRED", `${event} needs an acknowledgement callback`);
      return undefined;
    }
    let data: unknown = fast?.(args[0]);
    if (schema && data === undefined) {
      const parsed = schema.safeParse(args[0]);
      if (!parsed.success) {
        reject(app, this, event, "INVALID_PAYLOAD", describeIssue(parsed.error).message, ack);
        return undefined;
      }
      data = parsed.data;
    }
    try {
      const result = handler(this, data as S extends z.ZodType ? z.infer<S> : undefined);
      if (result instanceof Promise) return settleLater(app, this, event, result, ack);
      settle(result, ack);
    } catch (err) {
      fail(app, this, event, err, ack);
    }
    return undefined;
  };
  // One event in TIMING_SAMPLE_EVERY is timed, from arrival to its answer (an async handler's settles later).
  const listener: SharedListener = function (...args) {
    if (++received.value % TIMING_SAMPLE_EVERY !== 0) return handle.apply(this, args);
    const start = performance.now();
    const done = handle.apply(this, args);
    if (done) void done.then(() => handled((performance.now() - start) / 1000));
    else handled((performance.now() - start) / 1000);
    return done;
  };
  return listener;
}
