// @ts-check
/**
 * Fan-out: VUS clients (default 500) connected through the balancer; SENDERS of them (default 5) emit
 * `broadcast` at RATE per second for DURATION_S seconds; every client receives every broadcast.
 * Same metrics as room-chat: broadcast_latency, sent/received counters, delivery rate, errors.
 *   k6 run -e BASE_URL=http://localhost:5000 loadtest/broadcast.js
 */
import { Counter, Rate, Trend } from "k6/metrics";
import { envInt, parseLoad, runSession } from "./lib/k6-session.js";

const VUS = envInt("VUS", 500, 20_000);
const SENDERS = Math.min(envInt("SENDERS", 5, 100), VUS);
const RATE = envInt("RATE", 2, 100);
const DURATION_S = envInt("DURATION_S", 30, 600);
const SETTLE_MS = 5000;

const latency = new Trend("broadcast_latency", true);
const sent = new Counter("messages_sent");
const expected = new Counter("messages_expected");
const received = new Counter("messages_received");
const delivery = new Rate("broadcast_delivery");
const errors = new Counter("socket_errors");

export const options = {
  scenarios: {
    fanout: { executor: "per-vu-iterations", vus: VUS, iterations: 1, maxDuration: `${DURATION_S + 60}s` },
  },
  thresholds: {
    broadcast_delivery: ["rate>=0.999"],
    broadcast_latency: ["p(95)<50"],
    socket_errors: ["count==0"],
  },
};

export default function () {
  const isSender = __VU <= SENDERS;
  let mySent = 0;
  let myReceived = 0;
  let expectedFromSenders = 0;
  let reports = 0;

  runSession({
    onError: () => errors.add(1),
    onEvent(event, args) {
      if (event === "error") errors.add(1);
      if (event !== "broadcast-message") return;
      const load = parseLoad(/** @type {{ message?: unknown }} */ (args[0])?.message);
      if (!load) return;
      if (load.done) {
        expectedFromSenders += load.sent ?? 0;
        reports++;
        return;
      }
      myReceived++;
      received.add(1);
      if (typeof load.t === "number") latency.add(Date.now() - load.t);
    },
    onConnected(session, socket) {
      socket.setTimeout(() => {
        if (isSender) {
          const stopAt = Date.now() + DURATION_S * 1000;
          socket.setInterval(() => {
            if (Date.now() >= stopAt) return;
            session.emit("broadcast", [JSON.stringify({ t: Date.now(), vu: __VU })]);
            mySent++;
            sent.add(1);
            expected.add(VUS);
          }, 1000 / RATE);
          socket.setTimeout(() => {
            session.emit("broadcast", [JSON.stringify({ done: true, sent: mySent })]);
          }, DURATION_S * 1000);
        }
        socket.setTimeout(
          () => {
            const want = expectedFromSenders + (SENDERS - reports) * RATE * DURATION_S;
            for (let i = 0; i < want; i++) delivery.add(i < myReceived);
            socket.close();
          },
          DURATION_S * 1000 + 5000,
        );
      }, SETTLE_MS);
    },
  });
}
