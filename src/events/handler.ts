import type { Server, Socket } from "socket.io";
import type { z } from "zod";
import type { AckResult, ClientToServerEvents, ErrorCode, ServerToClientEvents } from "../contract.js";
import type { Logger } from "../logger.js";
import { describeIssue } from "../schemas.js";

export interface SocketData {
  list?: unknown[];
}

export type TypedServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
export type TypedSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

export interface EventContext {
  io: TypedServer;
  socket: TypedSocket;
  replicaId: string;
  log: Logger;
}

type AnyAck = (result: AckResult) => void;
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

export function reject(ctx: EventContext, event: string, code: ErrorCode, message: string, ack?: AnyAck): void {
  ctx.log.debug({ socket: ctx.socket.id, event, code }, message);
  ctx.socket.emit("error", { event, code, message });
  ack?.({ ok: false, error: { code, message } });
}

const OK: AckResult = { ok: true };

function settle(ctx: EventContext, event: string, result: Result, ack: AnyAck | undefined): void {
  if (ack) ack(result === undefined ? OK : { ok: true, ...result });
}

function fail(ctx: EventContext, event: string, err: unknown, ack: AnyAck | undefined): void {
  if (err instanceof EventError) return reject(ctx, event, err.code, err.message, ack);
  ctx.log.error({ socket: ctx.socket.id, event, err }, "event handler failed");
  reject(ctx, event, "INTERNAL", "internal error", ack);
}

interface Options {
  /** Without a callback the event has no way to answer: reject it rather than drop it. */
  ackRequired?: boolean;
}

/**
 * Registers a handler whose payload is validated by `schema` (or which takes no payload when it is null).
 * The optional trailing acknowledgement is split off; the handler's return value becomes `{ ok: true, ...value }`.
 */
export function on<S extends z.ZodType | null>(
  ctx: EventContext,
  event: keyof ClientToServerEvents,
  schema: S,
  handler: (data: S extends z.ZodType ? z.infer<S> : undefined) => Result | Promise<Result>,
  options: Options = {},
): void {
  const socket = ctx.socket as unknown as { on(event: string, fn: (...args: unknown[]) => void): void };
  socket.on(event, (...args: unknown[]) => {
    const ack = typeof args[args.length - 1] === "function" ? (args.pop() as AnyAck) : undefined;
    if (options.ackRequired && !ack) {
      return reject(ctx, event, "ACK_REQUIRED", `${event} needs an acknowledgement callback`);
    }
    let data: unknown;
    if (schema) {
      const parsed = schema.safeParse(args[0]);
      if (!parsed.success) return reject(ctx, event, "INVALID_PAYLOAD", describeIssue(parsed.error).message, ack);
      data = parsed.data;
    }
    try {
      const result = handler(data as S extends z.ZodType ? z.infer<S> : undefined);
      if (result instanceof Promise) {
        result.then(
          (value) => settle(ctx, event, value, ack),
          (err: unknown) => fail(ctx, event, err, ack),
        );
      } else {
        settle(ctx, event, result, ack);
      }
    } catch (err) {
      fail(ctx, event, err, ack);
    }
  });
}
