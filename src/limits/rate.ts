import type { AckResult } from "../contract.js";
import type { AppContext, SharedListener, TypedSocket } from "../events/handler.js";
import type { UserRateLimiter } from "./user-rate.js";

/** A socket over its limit this long without a pause of ERROR_INTERVAL_MS is disconnected. */
export const SUSTAINED_ABUSE_MS = 10_000;
/** At most one `error` event per socket per this interval while it is limited (acks always answer). */
const ERROR_INTERVAL_MS = 1000;

/**
 * One socket's token bucket, created on its first event. Refilled lazily from the elapsed time when an
 * event arrives: no timer per socket, O(1) per event.
 */
interface Bucket {
  tokens: number;
  at: number;
  /** When the current run of rejections started; 0 when the socket is within its limit. */
  limitedSince: number;
  lastRejectAt: number;
  lastErrorAt: number;
}

export interface EventGateOptions {
  eventsPerS: number;
  burst: number;
  /** Cross-replica limit per user; consulted only for sockets whose user `userOf` names. */
  users?: UserRateLimiter;
  /** The authenticated user of a socket, if any. */
  userOf?: (socket: TypedSocket) => string | undefined;
  now?: () => number;
  /** Counts a socket disconnected for staying over its limit. */
  disconnected?: () => void;
}

export interface EventGate {
  /** Whether `socket` may send one more event; when not, the event is answered RATE_LIMITED. */
  admit(socket: TypedSocket, event: string, ack: ((result: AckResult) => void) | undefined): boolean;
  /** `listener` behind the per-socket bucket and, for an authenticated user, the per-user limit. */
  wrap(event: string, listener: SharedListener): SharedListener;
}

/** Reads the user id the auth layer leaves on `socket.data.user` (`{ id }` or a plain string). */
export function defaultUserOf(socket: TypedSocket): string | undefined {
  const user = (socket.data as { user?: unknown } | undefined)?.user;
  if (typeof user === "string") return user;
  const id = (user as { id?: unknown } | undefined)?.id;
  return typeof id === "string" || typeof id === "number" ? String(id) : undefined;
}

const lastArgAck = (args: unknown[]) => {
  const last = args[args.length - 1];
  return typeof last === "function" ? (last as (result: AckResult) => void) : undefined;
};

export function createEventGate(app: AppContext, options: EventGateOptions): EventGate {
  const { eventsPerS, burst, users } = options;
  const userOf = options.userOf ?? defaultUserOf;
  const now = options.now ?? Date.now;
  const perMs = eventsPerS / 1000;
  const buckets = new WeakMap<TypedSocket, Bucket>();
  const message = `over ${eventsPerS} events/s (burst ${burst}): slow down`;

  const bucketOf = (socket: TypedSocket, t: number): Bucket => {
    let b = buckets.get(socket);
    if (!b) {
      b = { tokens: burst, at: t, limitedSince: 0, lastRejectAt: 0, lastErrorAt: -Infinity };
      buckets.set(socket, b);
    }
    return b;
  };

  const refuse = (socket: TypedSocket, event: string, ack: ((r: AckResult) => void) | undefined, b: Bucket) => {
    const t = b.lastRejectAt;
    app.metrics.eventRejected(event, "RATE_LIMITED");
    ack?.({ ok: false, error: { code: "RATE_LIMITED", message } });
    if (t - b.lastErrorAt >= ERROR_INTERVAL_MS) {
      b.lastErrorAt = t;
      socket.emit("error", { event: event.slice(0, 64), code: "RATE_LIMITED", message });
    }
  };

  const admit: EventGate["admit"] = (socket, event, ack) => {
    if (eventsPerS === 0) return true;
    const t = now();
    const b = bucketOf(socket, t);
    b.tokens = Math.min(burst, b.tokens + (t - b.at) * perMs);
    b.at = t;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return true;
    }
    // A run of rejections continues while they come less than a second apart.
    if (b.limitedSince === 0 || t - b.lastRejectAt > ERROR_INTERVAL_MS) {
      if (b.limitedSince === 0) app.log.info({ socket: socket.id, event: event.slice(0, 64) }, "socket rate limited");
      b.limitedSince = t;
    }
    b.lastRejectAt = t;
    refuse(socket, event, ack, b);
    if (t - b.limitedSince > SUSTAINED_ABUSE_MS && socket.connected) {
      app.log.warn(
        { socket: socket.id, limitedForMs: t - b.limitedSince },
        "RATE_LIMITED: over the limit for too long, disconnected",
      );
      options.disconnected?.();
      socket.disconnect(true);
    }
    return false;
  };

  const userMessage = (perS: number) => `this user is over ${perS} events/s: slow down`;

  return {
    admit,
    wrap(event, listener) {
      return function (this: TypedSocket, ...args: unknown[]) {
        if (!admit(this, event, lastArgAck(args))) return undefined;
        const user = users ? userOf(this) : undefined;
        if (users === undefined || user === undefined) return listener.apply(this, args);
        return users.consume(user).then((allowed) => {
          if (allowed) return listener.apply(this, args);
          const ack = lastArgAck(args);
          app.metrics.eventRejected(event, "RATE_LIMITED");
          ack?.({ ok: false, error: { code: "RATE_LIMITED", message: userMessage(users.perS) } });
          const t = now();
          const b = bucketOf(this, t);
          if (t - b.lastErrorAt >= ERROR_INTERVAL_MS) {
            b.lastErrorAt = t;
            this.emit("error", { event, code: "RATE_LIMITED", message: userMessage(users.perS) });
          }
          return undefined;
        });
      };
    },
  };
}
