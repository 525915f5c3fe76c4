import { isIP } from "node:net";
import { ConfigError, integer } from "../config.js";
import { openFilesLimit, RESERVED_FDS } from "./fd-limit.js";

/** Abuse limits: every knob of the "Security and limits" table in the README. */
export interface LimitsConfig {
  /** Client events per second per socket (token refill rate); 0 turns the per-socket limit off. */
  eventsPerS: number;
  /** Events a socket may send at once before the refill rate applies. */
  burst: number;
  /** Client events per second per authenticated user, over every replica; 0 = off. */
  userEventsPerS: number;
  /** Engine.IO sessions on this replica; handshakes beyond are refused with 429. */
  maxConnections: number;
  /** Engine.IO packets in one long-polling POST; more closes the session with 413. */
  maxPacketsPerPoll: number;
  /** Outbound bytes queued for one socket before it is closed as a slow consumer. */
  maxSocketBufferBytes: number;
  /** Express `trust proxy`: which hops may set X-Forwarded-For (names, addresses, CIDRs) or false. */
  trustProxy: string[] | false;
}

type Env = Record<string, string | undefined>;

// The names proxy-addr (Express) understands, besides addresses and CIDR ranges.
const PROXY_NAMES = new Set(["loopback", "linklocal", "uniquelocal"]);

function trustProxy(env: Env): string[] | false {
  const raw = env.TRUST_PROXY?.trim();
  if (raw === undefined || raw === "") return ["loopback"];
  if (raw === "false" || raw === "none") return false;
  const entries = raw
    .split(",")
    .map((e) => e.trim())
    .filter((e) => e !== "");
  for (const entry of entries) {
    const [address, bits, ...rest] = entry.split("/");
    const valid =
      PROXY_NAMES.has(entry) ||
      (rest.length === 0 && isIP(address ?? "") !== 0 && (bits === undefined || /^\d{1,3}$/.test(bits)));
    if (!valid)
      throw new ConfigError(
        "TRUST_PROXY",
        `"${entry}" is not loopback, linklocal, uniquelocal, an IP address or a CIDR range (or "false")`,
      );
  }
  return entries;
}

export function defaultMaxConnections(openFiles: number | undefined): number {
  return openFiles === undefined ? 20_000 : Math.max(1, Math.min(20_000, openFiles - RESERVED_FDS));
}

export function parseLimits(env: Env): LimitsConfig {
  const eventsPerS = integer(env, "RATE_LIMIT_EVENTS_PER_S", 50, 0, 1_000_000);
  return {
    eventsPerS,
    burst: integer(env, "RATE_LIMIT_BURST", Math.max(100, eventsPerS), 1, 10_000_000),
    userEventsPerS: integer(env, "USER_RATE_LIMIT_PER_S", 0, 0, 1_000_000),
    // 20,000 unless the process may not open that many files: then what it may, less a reserve, so that the
    // replica answers 429 before accept() fails with EMFILE (src/limits/fd-limit.ts).
    maxConnections: integer(env, "MAX_CONNECTIONS", defaultMaxConnections(openFilesLimit()), 1, 10_000_000),
    // Above the reliable client helper's resend after a reconnect and socket.io-client's batching of a burst.
    maxPacketsPerPoll: integer(env, "MAX_PACKETS_PER_POLL", 500, 1, 1_000_000),
    maxSocketBufferBytes: integer(env, "MAX_SOCKET_BUFFER_BYTES", 1024 * 1024, 16 * 1024, 1024 * 1024 * 1024),
    trustProxy: trustProxy(env),
  };
}
