import { isClientEvent } from "../contract.js";
import { clip } from "../limits/clip.js";
import type { EventGate } from "../limits/rate.js";
import { reject, type AppContext, type EventRegistry, type SharedListener, type TypedSocket } from "./handler.js";
import { authEvents } from "./auth.js";
import { messageEvents } from "./messages.js";
import { roomEvents } from "./rooms.js";

/**
 * A socket's events are handled as they come, except while one of its joins is still replaying: what it
 * sends meanwhile waits for the join, then runs in order. So the seed's client (join-room, room-message,
 * get-time, without waiting) sees room-joined, its room message and the time in that order.
 */
function inOrderAfterJoins(registry: EventRegistry): Array<[string, SharedListener]> {
  const chains = new WeakMap<TypedSocket, Promise<unknown>>();
  const track = (socket: TypedSocket, done: Promise<unknown>) => {
    const settled = done.then(
      () => undefined,
      () => undefined,
    );
    chains.set(socket, settled);
    void settled.then(() => {
      if (chains.get(socket) === settled) chains.delete(socket);
    });
  };
  return Object.entries(registry).map(([event, listener]) => {
    const startsChain = event === "join-room";
    const ordered: SharedListener = function (...args) {
      const pending = chains.get(this);
      if (!pending) {
        const done = listener.apply(this, args);
        if (startsChain && done) track(this, done);
        return done;
      }
      const done = pending.then(() => listener.apply(this, args));
      track(this, done);
      return done;
    };
    return [event, ordered];
  });
}

/**
 * Builds every listener once for the app and returns the per-connection step, which only attaches
 * those shared listeners: a connection costs no closures of its own.
 */
export function createConnectionHandler(app: AppContext, gate?: EventGate): (socket: TypedSocket) => void {
  const registry: EventRegistry = { ...messageEvents(app), ...roomEvents(app), ...authEvents(app) };
  // The rate gate comes first: a limited event waits for nothing and is answered at once.
  const gated = (e: string, l: SharedListener): [string, SharedListener] => [e, gate ? gate.wrap(e, l) : l];
  const listeners = inOrderAfterJoins(registry).map(([e, l]) => gated(e, l));
  const unknownReceived = app.metrics.eventReceived("unknown");
  const onUnknown = function (this: TypedSocket, event: string, ...args: unknown[]) {
    if (isClientEvent(event)) return;
    unknownReceived.value++;
    const last = args[args.length - 1];
    const ack = typeof last === "function" ? (last as Parameters<typeof reject>[5]) : undefined;
    if (gate && !gate.admit(this, "unknown", ack)) return;
    // The name is the client's: echo a bounded prefix of it, never the whole.
    const name = clip(String(event));
    reject(app, this, name, "UNKNOWN_EVENT", `unknown event "${name}"`, ack);
  };
  const onDisconnect = function (this: TypedSocket, reason: string) {
    app.log.debug({ socket: this.id, reason }, "client disconnected");
    app.metrics.disconnected(reason);
  };
  return (socket) => {
    app.metrics.connected();
    app.log.debug({ socket: socket.id, transport: socket.conn.transport.name }, "client connected");
    const emitter = socket as unknown as { on(event: string, fn: SharedListener): void };
    for (const [event, listener] of listeners) emitter.on(event, listener);
    socket.onAny(onUnknown);
    socket.on("disconnect", onDisconnect);
  };
}
