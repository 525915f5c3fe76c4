import { isClientEvent } from "../contract.js";
import { clip } from "../limits/clip.js";
import type { EventGate } from "../limits/rate.js";
import { reject, type AppContext, type EventRegistry, type SharedListener, type TypedSocket } from "./handler.js";
import { authEvents } from "./auth.js";
import { messageEvents } from "./messages.js";
import { roomEvents } from "./rooms.js";

type RejectAck = Parameters<typeof reject>[5];

/**
 * A socket's events are handled as they come, except while one of its joins is still replaying: what it
 * sends meanwhile, unknown events included, waits for the join, then runs in the order sent. So the seed's
 * client (join-room, room-message, get-time, without waiting) sees room-joined, its room message and the
 * time in that order. A rate-limited event is refused without waiting (see the gate below), so a flood never
 * queues up behind a join; a socket gone meanwhile gets nothing more, as Socket.IO does for any event.
 */
function joinOrder() {
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
  /** The listener, run at once or after the socket's pending joins; a join's own listener starts a chain. */
  return (listener: SharedListener, startsChain: boolean): SharedListener =>
    function (...args) {
      const pending = chains.get(this);
      if (!pending) {
        const done = listener.apply(this, args);
        if (startsChain && done) track(this, done);
        return done;
      }
      const done = pending.then(() => (this.connected ? listener.apply(this, args) : undefined));
      track(this, done);
      return done;
    };
}

/**
 * Builds every listener once for the app and returns the per-connection step, which only attaches
 * those shared listeners: a connection costs no closures of its own.
 */
export function createConnectionHandler(app: AppContext, gate?: EventGate): (socket: TypedSocket) => void {
  const registry: EventRegistry = { ...messageEvents(app), ...roomEvents(app), ...authEvents(app) };
  // The rate gate comes first: a limited event waits for nothing and is answered at once.
  const gated = (e: string, l: SharedListener): SharedListener => (gate ? gate.wrap(e, l) : l);
  const inOrder = joinOrder();
  const listeners = Object.entries(registry).map(([event, listener]): [string, SharedListener] => [
    event,
    gated(event, inOrder(listener, event === "join-room")),
  ]);
  const unknownReceived = app.metrics.eventReceived("unknown");
  const answerUnknown: SharedListener = function (name, ack) {
    unknownReceived.value++;
    const shown = name as string;
    reject(app, this, shown, "UNKNOWN_EVENT", `unknown event "${shown}"`, ack as RejectAck);
    return undefined;
  };
  // An unknown event passes the same gates and the same order as a known one.
  const unknownListener = gated("unknown", inOrder(answerUnknown, false));
  const onUnknown = function (this: TypedSocket, event: string, ...args: unknown[]) {
    if (isClientEvent(event)) return;
    const last = args[args.length - 1];
    const ack = typeof last === "function" ? (last as RejectAck) : undefined;
    // Socket.IO calls any-listeners as an event arrives, but an event's own listeners on the next tick: the
    // answer takes that tick too, so it keeps its place among the events sent before and after it (the websocket
    // runs of history.test.ts "answers an unknown event sent while a join replays …" fail if an upgrade changes it).
    process.nextTick(() => {
      // The name is the client's: echo a bounded prefix of it, never the whole.
      if (this.connected) void unknownListener.call(this, clip(String(event)), ack);
    });
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
