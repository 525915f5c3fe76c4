// @ts-check
/**
 * Rooms of ROOM_SIZE members (default 50; ROOMS rooms, default 2) spread over the replicas by the
 * balancer. Every member sends RATE room messages per second for DURATION_S seconds; each message
 * carries its send time and an idempotency id. Thresholds: delivery >= 99.9 %, room_message_latency
 * p95 per PROFILE (lib/profile.js), no errors, and no hole or reordering in the room offsets any member sees.
 *   k6 run -e BASE_URL=http://localhost:5000 loadtest/room-chat.js
 * TARGETS=<name>=<url>,<name>=<url> instead of BASE_URL runs the same load against each target at the same time,
 * one scenario per target (named after it) in this one k6 process: two clusters compared under the same k6, the
 * same schedule and the same moment (bench/k6-chat.ts). Each target's figures are the submetrics tagged
 * {scenario:<name>}, which carry the same thresholds.
 */
import exec from "k6/execution";
import { Counter } from "k6/metrics";
import { DeliveryTally, deliveryMetrics, envInt, now, runSession, sendFor } from "./lib/k6-session.js";
import { latencyThresholds, summaryTrendStats } from "./lib/profile.js";

const ROOM_SIZE = envInt("ROOM_SIZE", 50, 1000);
const ROOMS = envInt("ROOMS", 2, 100);
const RATE = envInt("RATE", 1, 100);
const DURATION_S = envInt("DURATION_S", 30, 600);
const SETTLE_MS = 3000;
const TARGETS = parseTargets(__ENV.TARGETS);

/** @returns {{ name: string, url?: string }[]} */
function parseTargets(/** @type {string | undefined} */ raw) {
  if (!raw) return [{ name: "chat" }];
  const targets = raw.split(",").map((pair) => {
    const at = pair.indexOf("=");
    const name = pair.slice(0, at);
    const url = pair.slice(at + 1);
    if (at < 1 || !/^[a-z][a-z0-9-]*$/.test(name) || !/^https?:\/\/[^,]+$/.test(url))
      throw new Error(`TARGETS: expected <name>=http://host:port[,…], got "${pair}"`);
    return { name, url };
  });
  if (new Set(targets.map((t) => t.name)).size !== targets.length) throw new Error("TARGETS: a name appears twice");
  return targets;
}

const { latency, sent, expected, received, delivery, errors } = deliveryMetrics(
  "room_message_latency",
  "room_delivery",
);

// Offsets a member saw out of sequence (a hole, a duplicate or a reordering within one epoch).
const offsetGaps = new Counter("room_offset_gaps");

/** @type {Record<string, string[]>} */
const thresholds = {
  room_delivery: ["rate>=0.999"],
  room_message_latency: latencyThresholds("room_message_latency"),
  socket_errors: ["count==0"],
  room_offset_gaps: ["count==0"],
};
// Per target as well, which also puts each target's counts in the summary (k6 exports a submetric only when a
// threshold names it).
const counted = { messages_sent: ["count>=0"], messages_expected: ["count>=0"], messages_received: ["count>=0"] };
if (__ENV.TARGETS)
  for (const [metric, rules] of Object.entries({ ...thresholds, ...counted }))
    for (const { name } of TARGETS) thresholds[`${metric}{scenario:${name}}`] = rules;

export const options = {
  scenarios: Object.fromEntries(
    TARGETS.map(({ name, url }) => [
      name,
      {
        executor: "per-vu-iterations",
        vus: ROOM_SIZE * ROOMS,
        iterations: 1,
        maxDuration: `${DURATION_S + 60}s`,
        ...(url ? { env: { BASE_URL: url } } : {}),
      },
    ]),
  ),
  summaryTrendStats,
  thresholds,
};

export default function () {
  // This member's place among its target's: 0 … ROOM_SIZE × ROOMS - 1 (one iteration per VU).
  const member = exec.scenario.iterationInTest;
  const target = TARGETS.findIndex((t) => t.name === exec.scenario.name);
  const room = `chat-${Math.floor(member / ROOM_SIZE)}`;
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
            // Every member sends: spread the members evenly over the send interval, the targets' members
            // interleaved.
            phase: (member + target / TARGETS.length) / (ROOM_SIZE * ROOMS),
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
