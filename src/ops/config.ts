import { ConfigError } from "../config.js";

/** Metrics port, drain timings and the shutdown bound that must cover them (see README "Operations"). */
export interface OpsConfig {
  /** Port of the separate metrics listener (on HOST); 0 turns metrics off. Never the main port. */
  metricsPort: number;
  /** After SIGTERM: readiness 503 and handshakes refused, existing sessions keep working this long. */
  drainDelayMs: number;
  /** Then the remaining connections are closed, spread evenly over this window. */
  drainCloseMs: number;
  /** Longest whole shutdown (drain included) before the process exits with code 1. */
  shutdownTimeoutMs: number;
}

type Env = Record<string, string | undefined>;

// Seconds, fractions allowed ("0.25"): tests and small deployments want sub-second drains.
function seconds(env: Env, name: string, fallback: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback * 1000;
  if (!/^\d+(\.\d+)?$/.test(raw)) throw new ConfigError(name, `expected a number of seconds, got "${raw}"`);
  const value = Number(raw);
  if (value > max) throw new ConfigError(name, `expected 0..${max}, got ${value}`);
  return Math.round(value * 1000);
}

function port(env: Env, name: string, fallback: number, mainPort: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) > 65535) throw new ConfigError(name, `expected a port 0..65535, got "${raw}"`);
  const value = Number(raw);
  // The whole point of a separate port is that the balancer, which forwards the main one, cannot reach it.
  if (value !== 0 && value === mainPort) throw new ConfigError(name, `must differ from PORT (${mainPort})`);
  return value;
}

/** What a shutdown needs beyond the drain: closing the remaining sockets, Redis, and some slack. */
const SHUTDOWN_SLACK_MS = 8000;

export function parseOpsConfig(env: Env, mainPort: number): OpsConfig {
  const drainDelayMs = seconds(env, "DRAIN_DELAY_S", 5, 300);
  const drainCloseMs = seconds(env, "DRAIN_CLOSE_S", 5, 300);
  const drainMs = drainDelayMs + drainCloseMs;
  let shutdownTimeoutMs = drainMs + SHUTDOWN_SLACK_MS;
  const raw = env.SHUTDOWN_TIMEOUT_MS;
  if (raw !== undefined && raw !== "") {
    if (!/^\d+$/.test(raw)) throw new ConfigError("SHUTDOWN_TIMEOUT_MS", `expected an integer, got "${raw}"`);
    shutdownTimeoutMs = Number(raw);
    if (shutdownTimeoutMs <= drainMs || shutdownTimeoutMs > 900_000) {
      throw new ConfigError(
        "SHUTDOWN_TIMEOUT_MS",
        `expected more than DRAIN_DELAY_S + DRAIN_CLOSE_S (${drainMs} ms) and at most 900000, got ${shutdownTimeoutMs}`,
      );
    }
  }
  return { metricsPort: port(env, "METRICS_PORT", 9464, mainPort), drainDelayMs, drainCloseMs, shutdownTimeoutMs };
}
