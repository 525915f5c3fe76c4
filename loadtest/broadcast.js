// @ts-check
/**
 * Fan-out: VUS clients (default 500) connected through the balancer; SENDERS of them (default 5) emit
 * `broadcast` at RATE per second for DURATION_S seconds; every client receives every broadcast.
 * Same metrics as room-chat: broadcast_latency, sent/received counters, delivery rate, errors. Latency
 * thresholds per PROFILE (lib/profile.js).
 *   k6 run -e BASE_URL=http://localhost:5000 loadtest/broadcast.js
 */
import { DeliveryTally, deliveryMetrics, envInt, now, runSession, sendFor } from "./lib/k6-session.js";
import { latencyThresholds, summaryTrendStats } from "./lib/profile.js";

const VUS = envInt("VUS", 500, 20_000);
const SENDERS = Math.min(envInt("SENDERS", 5, 100), VUS);
const RATE = envInt("RATE", 2, 100);
const DURATION_S = envInt("DURATION_S", 30, 600);
const SETTLE_MS = 5000;

const { latency, sent, expected, received, delivery, errors } = deliveryMetrics(
  "broadcast_latency",
  "broadcast_delivery",
);

export const options = {
  scenarios: {
    fanout: { executor: "per-vu-iterations", vus: VUS, iterations: 1, maxDuration: `${DURATION_S + 60}s` },
  },
  summaryTrendStats,
  thresholds: {
    broadcast_delivery: ["rate>=0.999"],
    broadcast_latency: latencyThresholds("broadcast_latency"),
    socket_errors: ["count==0"],
  },
};

export default function () {
  const tally = new DeliveryTally(latency, received, delivery);

  runSession({
    onError: () => errors.add(1),
    onEvent(event, args) {
      if (event === "error") errors.add(1);
      if (event === "broadcast-message") tally.see(/** @type {{ message?: unknown }} */ (args[0])?.message);
    },
    onConnected(session, socket) {
      socket.setTimeout(() => {
        if (__VU <= SENDERS) {
          sendFor(socket, {
            rate: RATE,
            durationS: DURATION_S,
            phase: (__VU - 1) / SENDERS,
            send() {
              session.emit("broadcast", [JSON.stringify({ t: now(), vu: __VU })]);
              sent.add(1);
              expected.add(VUS);
            },
            report: (count) => session.emit("broadcast", [JSON.stringify({ done: true, sent: count })]),
          });
        }
        socket.setTimeout(
          () => {
            tally.finish(SENDERS, RATE * DURATION_S);
            socket.close();
          },
          DURATION_S * 1000 + 5000,
        );
      }, SETTLE_MS);
    },
  });
}
