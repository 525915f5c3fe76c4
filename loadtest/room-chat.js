// @ts-check
/**
 * Rooms of ROOM_SIZE members (default 50; ROOMS rooms, default 2) spread over the replicas by the
 * balancer. Every member sends RATE room messages per second for DURATION_S seconds; each message
 * carries its send time and an idempotency id. Thresholds: delivery >= 99.9 %, room_message_latency
 * p95 per PROFILE (lib/profile.js), no errors, and no hole or reordering in the room offsets any member sees.
 *   k6 run -e BASE_URL=http://localhost:5000 loadtest/room-chat.js
 */
import { Counter } from "k6/metrics";
import { DeliveryTally, deliveryMetrics, envInt, now, runSession, sendFor } from "./lib/k6-session.js";
import { latencyThresholds, summaryTrendStats } from "./lib/profile.js";

const ROOM_SIZE = envInt("ROOM_SIZE", 50, 1000);
const ROOMS = envInt("ROOMS", 2, 100);
const RATE = envInt("RATE", 1, 100);
const DURATION_S = envInt("DURATION_S", 30, 600);
const SETTLE_MS = 3000;

const { latency, sent, expected, received, delivery, errors } = deliveryMetrics(
  "room_message_latency",
  "room_delivery",
);

// Offsets a member saw out of sequence (a hole, a duplicate or a reordering within one epoch).
const offsetGaps = new Counter("room_offset_gaps");

export const options = {
  scenarios: {
    chat: {
      executor: "per-vu-iterations",
      vus: ROOM_SIZE * ROOMS,
      iterations: 1,
      maxDuration: `${DURATION_S + 60}s`,
    },
  },
  summaryTrendStats,
  thresholds: {
    room_delivery: ["rate>=0.999"],
    room_message_latency: latencyThresholds("room_message_latency"),
    socket_errors: ["count==0"],
    room_offset_gaps: ["count==0"],
  },
};

export default function () {
  const room = `chat-${Math.floor((__VU - 1) / ROOM_SIZE)}`;
  const tally = new DeliveryTally(latency, received, delivery);
  let said = 0;
  const say = (/** @type {import("./lib/socketio.js").SocketIoSession} */ session, /** @type {object} */ body) =>
    session.emit("room-message", [{ room, message: JSON.stringify(body), id: `${__VU}-${said++}` }]);
  /** @type {{ epoch: string, offset: number } | undefined} */
  let last;
  const checkOffset = (/** @type {{ epoch?: string, offset?: number } | undefined} */ m) => {
    if (!m || typeof m.epoch !== "string" || typeof m.offset !== "number") return;
    if (last && last.epoch === m.epoch && m.offset !== last.offset + 1) offsetGaps.add(1);
    last = { epoch: m.epoch, offset: m.offset };
  };

  runSession({
    onError: () => errors.add(1),
    onEvent(event, args) {
      if (event === "error") errors.add(1);
      if (event === "room-message-received") {
        const m = /** @type {{ message?: unknown, epoch?: string, offset?: number }} */ (args[0]);
        tally.see(m?.message);
        checkOffset(m);
      }
    },
    onConnected(session, socket) {
      session.emit("join-room", [room], () => {
        // Let every member join before anyone speaks.
        socket.setTimeout(() => {
          sendFor(socket, {
            rate: RATE,
            durationS: DURATION_S,
            // Every member sends: spread the members evenly over the send interval.
            phase: (__VU - 1) / (ROOM_SIZE * ROOMS),
            send() {
              say(session, { t: now(), vu: __VU });
              sent.add(1);
              expected.add(ROOM_SIZE);
            },
            report: (count) => say(session, { done: true, sent: count }),
          });
          socket.setTimeout(
            () => {
              tally.finish(ROOM_SIZE, RATE * DURATION_S);
              socket.close();
            },
            DURATION_S * 1000 + 5000,
          );
        }, SETTLE_MS);
      });
    },
  });
}
