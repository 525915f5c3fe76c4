// @ts-check
/** k6 glue: a Socket.IO session on a k6/ws socket, plus the tally that turns counts into a delivery rate. */
import exec from "k6/execution";
import { Counter, Rate, Trend } from "k6/metrics";
import ws from "k6/ws";
import { SocketIoSession, socketIoUrl } from "./socketio.js";

/** Read per session, not at load: a scenario's own `env` (room-chat.js's TARGETS) is seen by VU code only. */
const baseUrl = () => __ENV.BASE_URL || "http://localhost:5000";

/**
 * Milliseconds with microsecond resolution: the time since this k6 instance started the test, one monotonic
 * clock shared by all its VUs. k6 has no `performance.now()` and `Date.now()` counts whole milliseconds, so
 * send times and latencies use this (senders and receivers run in the same k6 process). VU code only: it is
 * not available in the init context.
 */
export function now() {
  return exec.instance.currentTestRunDuration;
}

/** An integer from the environment, bounded so no run is unbounded by mistake. */
export function envInt(/** @type {string} */ name, /** @type {number} */ fallback, /** @type {number} */ max) {
  const raw = __ENV[name];
  const value = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > max) throw new Error(`${name} must be an integer 1..${max}`);
  return value;
}

/**
 * Opens one Socket.IO session and runs `body` once the namespace is connected. Returns the HTTP status
 * of the websocket upgrade (101 on success).
 * @param {{
 *   onEvent?: (event: string, args: unknown[], session: SocketIoSession) => void,
 *   onConnected: (session: SocketIoSession, socket: import("k6/ws").Socket, handshakeMs: number) => void,
 *   onError?: (message: string) => void,
 * }} handlers
 */
export function runSession(handlers) {
  const started = now();
  const res = ws.connect(socketIoUrl(baseUrl()), {}, (socket) => {
    const session = new SocketIoSession((frame) => socket.send(frame), {
      onConnect: () => handlers.onConnected(session, socket, now() - started),
      onEvent: (event, args) => handlers.onEvent?.(event, args, session),
      onError: (message) => handlers.onError?.(message),
    });
    socket.on("message", (frame) => session.receive(frame));
    socket.on("error", (e) => handlers.onError?.(String(e.error())));
  });
  return res ? res.status : 0;
}

/**
 * The metrics of a delivery scenario: latency Trend, sent/expected/received Counters, delivery Rate and
 * socket errors. Call it at module level (k6 creates metrics in the init context only).
 */
export function deliveryMetrics(/** @type {string} */ latencyName, /** @type {string} */ deliveryName) {
  return {
    latency: new Trend(latencyName, true),
    sent: new Counter("messages_sent"),
    expected: new Counter("messages_expected"),
    received: new Counter("messages_received"),
    delivery: new Rate(deliveryName),
    errors: new Counter("socket_errors"),
  };
}

/** Parses the JSON a load message carries, or undefined for anything else. */
export function parseLoad(/** @type {unknown} */ message) {
  if (typeof message !== "string" || message[0] !== "{") return undefined;
  try {
    return /** @type {{ t?: number, vu?: number, done?: boolean, sent?: number }} */ (JSON.parse(message));
  } catch {
    return undefined;
  }
}

/**
 * What one receiver saw. Senders report how many messages they sent when they stop (a `done` message);
 * the receiver then knows exactly how many it should have received, and `finish` records each expected
 * message as delivered or not in the `delivery` Rate.
 */
export class DeliveryTally {
  /**
   * @param {{ add(value: number): void }} latency
   * @param {{ add(value: number): void }} received
   * @param {{ add(value: boolean): void }} delivery
   */
  constructor(latency, received, delivery) {
    this.metrics = { latency, received, delivery };
    this.received = 0;
    this.expected = 0;
    this.reports = 0;
  }

  /** Counts one load message (or a sender's report) carried as the text `message`. */
  see(/** @type {unknown} */ message) {
    const load = parseLoad(message);
    if (!load) return;
    if (load.done) {
      this.expected += load.sent ?? 0;
      this.reports++;
      return;
    }
    this.received++;
    if (typeof load.t === "number") this.metrics.latency.add(now() - load.t);
  }

  /**
   * Records the counts (messages_received once per receiver, not one sample per message: k6 spends CPU on every
   * sample, on the cores it shares with the server). Senders that never reported count as `perMissingSender`
   * lost messages each.
   */
  finish(/** @type {number} */ senders, /** @type {number} */ perMissingSender) {
    this.metrics.received.add(this.received);
    const want = this.expected + Math.max(0, senders - this.reports) * perMissingSender;
    for (let i = 0; i < want; i++) this.metrics.delivery.add(i < this.received);
  }
}

/**
 * Calls `send` RATE times a second for `durationS` seconds on a k6 socket, then `report` once with the
 * number sent. `phase` (0 ≤ phase < 1, default 0) delays the start by that fraction of the send interval:
 * senders given phases i / senders are spread evenly over the interval instead of all sending in the same
 * millisecond (they all start on the same timer), which would measure the queue of a burst of
 * senders × receivers deliveries, in k6 as much as in the server, rather than the latency of a message.
 * @param {import("k6/ws").Socket} socket
 * @param {{ rate: number, durationS: number, phase?: number, send: () => void, report: (sent: number) => void }} plan
 */
export function sendFor(socket, plan) {
  const intervalMs = 1000 / plan.rate;
  const start = () => {
    let sent = 0;
    const stopAt = now() + plan.durationS * 1000;
    socket.setInterval(() => {
      if (now() >= stopAt) return;
      plan.send();
      sent++;
    }, intervalMs);
    socket.setTimeout(() => plan.report(sent), plan.durationS * 1000);
  };
  // k6/ws timers throw on a delay under 1 ms (and the exception ends the session).
  const delayMs = (plan.phase ?? 0) * intervalMs;
  if (delayMs >= 1) socket.setTimeout(start, delayMs);
  else start();
}
