import type { Delivery } from "../contract.js";
import type { TypedServer } from "./handler.js";
import type { PublishTracker } from "../ops/publish-tracker.js";

export type { Delivery };

/** The broadcast target handed to an emit: every client, or this replica's clients only. */
export type Everyone = ReturnType<TypedServer["except"]>;

export interface Relay {
  /**
   * Emits to every client through `emit(target)` and resolves with how far it went. A broadcast keeps no
   * history: its acknowledgement is the only place a sender can learn that it reached this replica's clients only.
   */
  toEveryone(emit: (target: Everyone) => void): Promise<Delivery>;
}

export interface RelayRedis {
  publishes: PublishTracker;
  /** Connections up and the last PING answered (src/ops/redis-health.ts). */
  up(): boolean;
  onLocalOnly(reason: string): void;
}

export function createRelay(io: TypedServer, redis: RelayRedis | undefined): Relay {
  // `except([])` excludes nobody: the same target as io.emit, but typed like io.local.
  const all = () => io.except([]);
  return {
    async toEveryone(emit) {
      // One process without Redis: its clients are every client there is.
      if (!redis) {
        emit(all());
        return "cluster";
      }
      // Redis away: deliver here only, rather than queue a publish that may reach the others much later.
      if (!redis.up()) {
        emit(io.local);
        redis.onLocalOnly("redis not ready");
        return "local";
      }
      const published = redis.publishes.capture(() => emit(all()));
      try {
        await Promise.all(published);
        return "cluster";
      } catch {
        // Already counted and logged by the publish tracker.
        return "local";
      }
    },
  };
}
