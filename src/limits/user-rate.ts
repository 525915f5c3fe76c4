import type { RedisClient } from "../redis.js";
import type { Logger } from "../logger.js";

/**
 * Events per second per user, counted over every replica. A fixed one-second window per user: one INCR
 * (and PEXPIRE on the window's first hit) in a script, so one round trip per event, pipelined with the
 * replica's other commands. Once a user is over, this replica answers locally until the window ends.
 */
export interface UserRateLimiter {
  readonly perS: number;
  /** Resolves true when the user may send one more event now. */
  consume(userId: string): Promise<boolean>;
}

const WINDOW_MS = 1000;
const HIT = `local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`;

type HitCommand = (key: string, ttlMs: number) => Promise<number>;

export interface UserRateLimiterOptions {
  perS: number;
  /** Shared by every replica; without it the count is this replica's only (a single-process server). */
  redis?: RedisClient;
  keyPrefix?: string;
  log?: Logger;
  now?: () => number;
}

/** Forgets users blocked in a past window whenever the window changes: the map stays as small as one window. */
class Blocked {
  private window = -1;
  private readonly users = new Set<string>();
  has(user: string, window: number): boolean {
    this.roll(window);
    return this.users.has(user);
  }
  add(user: string, window: number): void {
    this.roll(window);
    this.users.add(user);
  }
  private roll(window: number) {
    if (window !== this.window) {
      this.window = window;
      this.users.clear();
    }
  }
}

export function createUserRateLimiter(options: UserRateLimiterOptions): UserRateLimiter {
  const { perS, redis, log } = options;
  const now = options.now ?? Date.now;
  const keyPrefix = options.keyPrefix ?? "rt:";
  const blocked = new Blocked();

  if (!redis) {
    const counts = new Map<string, number>();
    let window = -1;
    return {
      perS,
      consume(user) {
        const w = Math.floor(now() / WINDOW_MS);
        if (w !== window) {
          window = w;
          counts.clear();
        }
        const n = (counts.get(user) ?? 0) + 1;
        counts.set(user, n);
        return Promise.resolve(n <= perS);
      },
    };
  }

  // defineCommand is ioredis's supported way to run a script by its SHA (EVALSHA, falling back to EVAL).
  const client = redis as RedisClient & { rtUserRateHit?: HitCommand };
  if (typeof client.rtUserRateHit !== "function") client.defineCommand("rtUserRateHit", { numberOfKeys: 1, lua: HIT });
  const hit = (client.rtUserRateHit as HitCommand).bind(client);

  // Redis away: let events through (the per-socket bucket still applies) and say so once a second.
  let failures = 0;
  const failOpen = (err: unknown) => {
    if (failures++ === 0)
      setTimeout(() => {
        log?.warn({ failures, err: (err as Error).message }, "user rate limit unavailable: events let through");
        failures = 0;
      }, 1000).unref();
    return true;
  };

  return {
    perS,
    consume(user) {
      const t = now();
      const w = Math.floor(t / WINDOW_MS);
      if (blocked.has(user, w)) return Promise.resolve(false);
      // The hash tag keeps a user's windows on one Redis Cluster slot.
      return hit(`${keyPrefix}rl:{u:${user}}:${w}`, WINDOW_MS * 2).then((n) => {
        if (n <= perS) return true;
        blocked.add(user, w);
        return false;
      }, failOpen);
    },
  };
}
