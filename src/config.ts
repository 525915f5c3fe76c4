import { hostname } from "node:os";
import { parseLimits, type LimitsConfig } from "./limits/config.js";
import { parseAuthConfig, type AuthConfig } from "./auth/config.js";
import { parseOpsConfig, type OpsConfig } from "./ops/config.js";
import { parseAdminUiConfig, type AdminUiConfig } from "./http/admin-ui.js";

export interface Config {
  port: number;
  host: string;
  replicaId: string;
  redisUrl: string | undefined;
  /** REDIS_CLUSTER_NODES (with REDIS_CLUSTER_PASSWORD): a Redis Cluster instead of one Redis (REDIS_URL). */
  redisCluster: RedisClusterConfig | undefined;
  redisKeyPrefix: string;
  corsOrigins: string[] | "*";
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  maxHttpBufferSize: number;
  postsLimit: number;
  pingIntervalMs: number;
  pingTimeoutMs: number;
  /** Room history: newest messages kept per room, and how long after its last message a room's history lives. */
  historySize: number;
  historyTtlS: number;
  /** How long a `room-message` id is remembered, so a resend is acknowledged once and delivered once. */
  dedupeWindowS: number;
  /** Longest wait for one Redis command before the caller is told the outcome is unknown. */
  redisCommandTimeoutMs: number;
  /** AUTH_* (src/auth/config.ts). */
  auth: AuthConfig;
  /** Rooms one socket may be in at once; a join beyond is refused with TOO_MANY_ROOMS. */
  maxRoomsPerSocket: number;
  /** Rate, connection, buffer and proxy limits (src/limits/config.ts). */
  limits: LimitsConfig;
  /** METRICS_PORT, DRAIN_DELAY_S, DRAIN_CLOSE_S, SHUTDOWN_TIMEOUT_MS (src/ops/config.ts). */
  ops: OpsConfig;
  /** ADMIN_UI, ADMIN_UI_USERNAME, ADMIN_UI_PASSWORD_HASH (src/http/admin-ui.ts). */
  adminUi: AdminUiConfig;
  version: string;
}

export interface RedisClusterConfig {
  /** Seed nodes: any reachable subset; the client learns the rest from the cluster. */
  nodes: Array<{ host: string; port: number }>;
  password: string | undefined;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    detail: string,
  ) {
    super(`invalid ${variable}: ${detail}`);
    this.name = "ConfigError";
  }
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

type Env = Record<string, string | undefined>;

/**
 * The one integer parser of the project (config, limits, `npm run cluster`, the bench's options): unset or empty
 * is `fallback`; otherwise decimal digits only (no sign, exponent, hex, spaces or fraction: `Number()` would take
 * "1e3") within min..max, else a ConfigError naming `name`.
 */
export function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `expected an integer, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) {
    throw new ConfigError(name, `expected ${min}..${max}, got ${value}`);
  }
  return value;
}

function redisUrl(env: Env): string | undefined {
  const raw = env.REDIS_URL;
  if (raw === undefined || raw === "") return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError("REDIS_URL", `not a URL: "${raw}"`);
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    throw new ConfigError("REDIS_URL", `expected redis:// or rediss://, got "${url.protocol}"`);
  }
  return raw;
}

// host:port, host:port, … ; IPv6 hosts in brackets ([::1]:7000).
function redisCluster(env: Env): RedisClusterConfig | undefined {
  const raw = env.REDIS_CLUSTER_NODES?.trim();
  if (raw === undefined || raw === "") return undefined;
  if (env.REDIS_URL) {
    throw new ConfigError("REDIS_CLUSTER_NODES", "set either REDIS_URL (one Redis) or REDIS_CLUSTER_NODES, not both");
  }
  const nodes = raw.split(",").map((item) => {
    const match = /^(?:\[([0-9a-fA-F:]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(item.trim());
    const port = Number(match?.[3]);
    if (!match || port < 1 || port > 65535) {
      throw new ConfigError("REDIS_CLUSTER_NODES", `expected host:port[,host:port…], got "${item.trim()}"`);
    }
    return { host: match[1] ?? match[2] ?? "", port };
  });
  return { nodes, password: env.REDIS_CLUSTER_PASSWORD || undefined };
}

function corsOrigins(env: Env): string[] | "*" {
  const raw = env.CORS_ORIGIN?.trim();
  if (raw === undefined || raw === "" || raw === "*") return "*";
  const origins = raw
    .split(",")
    .map((o) => o.trim())
    .filter((o) => o !== "");
  for (const origin of origins) {
    if (!/^https?:\/\/[^/\s]+$/.test(origin)) {
      throw new ConfigError("CORS_ORIGIN", `"${origin}" is not an origin like https://example.com`);
    }
  }
  return origins;
}

function logLevel(env: Env): Config["logLevel"] {
  const raw = env.LOG_LEVEL ?? "info";
  const found = LOG_LEVELS.find((l) => l === raw);
  if (!found) throw new ConfigError("LOG_LEVEL", `expected one of ${LOG_LEVELS.join(", ")}, got "${raw}"`);
  return found;
}

function replicaId(env: Env): string {
  const raw = env.REPLICA_ID ?? hostname();
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(raw)) {
    throw new ConfigError("REPLICA_ID", `expected 1-64 chars of [A-Za-z0-9_.:-], got "${raw}"`);
  }
  return raw;
}

/** Reads every setting from the environment once; throws ConfigError naming the bad variable. */
export function parseConfig(env: Env, version = "0.0.0"): Config {
  return {
    port: integer(env, "PORT", 5000, 0, 65535),
    host: env.HOST || "0.0.0.0",
    replicaId: replicaId(env),
    redisUrl: redisUrl(env),
    redisCluster: redisCluster(env),
    redisKeyPrefix: env.REDIS_KEY_PREFIX ?? "rt:",
    corsOrigins: corsOrigins(env),
    logLevel: logLevel(env),
    maxHttpBufferSize: integer(env, "MAX_HTTP_BUFFER_SIZE", 1_000_000, 1024, 100_000_000),
    postsLimit: integer(env, "POSTS_LIMIT", 1000, 1, 1_000_000),
    pingIntervalMs: integer(env, "PING_INTERVAL_MS", 25_000, 50, 300_000),
    pingTimeoutMs: integer(env, "PING_TIMEOUT_MS", 20_000, 50, 300_000),
    historySize: integer(env, "HISTORY_SIZE", 1000, 1, 1_000_000),
    historyTtlS: integer(env, "HISTORY_TTL_S", 600, 1, 30 * 86_400),
    dedupeWindowS: integer(env, "DEDUPE_WINDOW_S", 120, 1, 86_400),
    redisCommandTimeoutMs: integer(env, "REDIS_COMMAND_TIMEOUT_MS", 2000, 50, 60_000),
    limits: parseLimits(env),
    auth: parseAuthConfig(env),
    maxRoomsPerSocket: integer(env, "MAX_ROOMS_PER_SOCKET", 100, 1, 100_000),
    ops: parseOpsConfig(env, integer(env, "PORT", 5000, 0, 65535)),
    adminUi: parseAdminUiConfig(env),
    version,
  };
}
