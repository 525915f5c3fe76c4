// @ts-check
/**
 * Rooms of ROOM_SIZE members (default 50; ROOMS rooms, default 2) spread over the replicas by the
 * balancer. Every member sends RATE room messages per second for DURATION_S seconds; each message
 * carries its send time. Thresholds: delivery >= 99.9 %, room_message_latency p95 < 50 ms, no errors.
 *   k6 run -e BASE_URL=http://localhost:5000 loadtest/room-chat.js
 */
import { DeliveryTally, deliveryMetrics, envInt, runSession, sendFor } from "./lib/k6-session.js";

const ROOM_SIZE = envInt("ROOM_SIZE", 50, 1000);
const ROOMS = envInt("ROOMS", 2, 100);
const RATE = envInt("RATE", 1, 100);
const DURATION_S = envInt("DURATION_S", 30, 600);
const SETTLE_MS = 3000;

const { latency, sent, expected, received, delivery, errors } = deliveryMetrics(
  "room_message_latency",
  "room_delivery",
);

export const options = {
  scenarios: {
    chat: {
      executor: "per-vu-iterations",
      vus: ROOM_SIZE * ROOMS,
      iterations: 1,
      maxDuration: `${DURATION_S + 60}s`,
    },
  },
  thresholds: {
    room_delivery: ["rate>=0.999"],
    room_message_latency: ["p(95)<50"],
    socket_errors: ["count==0"],
  },
};

export default function () {
  const room = `chat-${Math.floor((__VU - 1) / ROOM_SIZE)}`;
  const tally = new DeliveryTally(latency, received, delivery);
  const say = (/** @type {import("./lib/socketio.js").SocketIoSession} */ session, /** @type {object} */ body) =>
    session.emit("room-message", [{ room, message: JSON.stringify(body) }]);

  runSession({
    onError: () => errors.add(1),
    onEvent(event, args) {
      if (event === "error") errors.add(1);
      if (event === "room-message-received") tally.see(/** @type {{ message?: unknown }} */ (args[0])?.message);
    },
    onConnected(session, socket) {
      session.emit("join-room", [room], () => {
        // Let every member join before anyone speaks.
        socket.setTimeout(() => {
          sendFor(socket, {
            rate: RATE,
            durationS: DURATION_S,
            send() {
              say(session, { t: Date.now(), vu: __VU });
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
