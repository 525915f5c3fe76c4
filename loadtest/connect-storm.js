// @ts-check
/**
 * Ramp to VUS connected clients (default 1,000) through the balancer; each joins a room and stays
 * connected for HOLD_S seconds. Thresholds: connect success >= 99.9 %, handshake p95 per PROFILE
 * (lib/profile.js).
 *   k6 run -e BASE_URL=http://localhost:5000 -e VUS=1000 loadtest/connect-storm.js
 */
import { Rate, Trend } from "k6/metrics";
import { envInt, runSession } from "./lib/k6-session.js";
import { latencyThresholds, summaryTrendStats } from "./lib/profile.js";

const VUS = envInt("VUS", 1000, 20_000);
const RAMP_S = envInt("RAMP_S", 30, 600);
const HOLD_S = envInt("HOLD_S", 30, 600);

const connectSuccess = new Rate("connect_success");
const handshake = new Trend("handshake_duration", true);

export const options = {
  scenarios: {
    storm: {
      executor: "ramping-vus",
      startVUs: 0,
      stages: [
        { duration: `${RAMP_S}s`, target: VUS },
        { duration: `${HOLD_S}s`, target: VUS },
        { duration: "5s", target: 0 },
      ],
      gracefulRampDown: "10s",
    },
  },
  summaryTrendStats,
  thresholds: {
    connect_success: ["rate>=0.999"],
    handshake_duration: latencyThresholds("handshake_duration"),
  },
};

export default function () {
  let joined = false;
  const status = runSession({
    onConnected(session, socket, ms) {
      handshake.add(ms);
      session.emit("join-room", [`storm-${__VU % 100}`], (args) => {
        const reply = /** @type {{ ok?: boolean }} */ (args[0]);
        joined = reply?.ok === true;
        socket.setTimeout(() => socket.close(), HOLD_S * 1000);
      });
    },
  });
  connectSuccess.add(status === 101 && joined);
}
