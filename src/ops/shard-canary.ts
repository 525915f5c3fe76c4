import type { Cluster } from "ioredis";
import type { Logger } from "../logger.js";

/** How often each shard's canary is published, and how old its last echo may be for the shard to count. */
export const CANARY_INTERVAL_MS = 1000;
export const CANARY_STALE_MS = 3000;

const SLOTS = 16_384;

/** Redis Cluster's key slot of a hash tag: CRC16 (XMODEM) of the tag, modulo 16384. */
export function slotOfTag(tag: string): number {
  let crc = 0;
  for (const byte of Buffer.from(tag)) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % SLOTS;
}

export interface WatchedSubscriber {
  /** For the logs: "adapter", "room feeds". */
  name: string;
  client: Cluster;
  /** The subscriber delivers again on a shard after it did not for a while: what it missed meanwhile is gone. */
  onRecovered?(): void;
}

export interface ShardCanary {
  /** Whether every subscriber received its canary from every shard within CANARY_STALE_MS. */
  healthy(): boolean;
  stop(): void;
}

interface Probe {
  channel: string;
  subscribedAt: number;
  lastSeen: number;
  failing: boolean;
  /** A shard that appeared after the start (a promoted replica): its first echo ends a possible silence. */
  replacing: boolean;
}

/**
 * On a Redis Cluster a subscriber holds one connection per shard, and after a failover it must subscribe again
 * on the promoted replica. An open socket proves nothing: each replica publishes a canary on every shard once a
 * second, on a channel of its own whose hash tag falls in that shard's slots, and checks that each of its
 * sharded subscribers hears it back. A shard that goes quiet turns the replica not ready; when it is heard again,
 * `onRecovered` lets the room feeds catch up on what the silence hid.
 */
export function watchShardedSubscriptions(opts: {
  publisher: Cluster;
  subscribers: WatchedSubscriber[];
  /** Channel prefix; each replica's canaries are `<prefix>{<tag>}:canary:<uid>`. */
  prefix: string;
  uid: string;
  log: Logger;
}): ShardCanary {
  const { publisher, subscribers, prefix, uid, log } = opts;
  // master node key → the hash tag of one slot it serves (kept while it still serves that slot).
  const tags = new Map<string, string>();
  const probes = subscribers.map(() => new Map<string, Probe>());

  // The same connections carry every room message and broadcast: only this replica's canaries are looked up.
  const ownSuffix = `}:canary:${uid}`;
  subscribers.forEach((subscriber, i) => {
    subscriber.client.on("smessage", (channel: string) => {
      if (!channel.endsWith(ownSuffix)) return;
      for (const probe of (probes[i] as Map<string, Probe>).values())
        if (probe.channel === channel) probe.lastSeen = Date.now();
    });
  });

  const tagFor = (master: string): string | undefined => {
    const known = tags.get(master);
    if (known !== undefined && publisher.slots[slotOfTag(known)]?.[0] === master) return known;
    for (let n = 0; n < 64 * SLOTS; n++) {
      const tag = `canary-${n}`;
      if (publisher.slots[slotOfTag(tag)]?.[0] === master) {
        tags.set(master, tag);
        return tag;
      }
    }
    return undefined;
  };

  let started = false;
  const tick = () => {
    if (publisher.status !== "ready") return;
    const now = Date.now();
    const masters = new Set<string>();
    for (const owners of publisher.slots) if (owners?.[0]) masters.add(owners[0]);
    for (const master of masters) {
      const tag = tagFor(master);
      if (tag === undefined) continue;
      const channel = `${prefix}{${tag}}:canary:${uid}`;
      subscribers.forEach((subscriber, i) => {
        const byMaster = probes[i] as Map<string, Probe>;
        const probe = byMaster.get(master);
        if (probe?.channel !== channel) {
          byMaster.set(master, { channel, subscribedAt: now, lastSeen: 0, failing: false, replacing: started });
          subscriber.client.ssubscribe(channel).catch(() => undefined);
          return;
        }
        const quiet = now - Math.max(probe.lastSeen, probe.subscribedAt) > CANARY_STALE_MS;
        if (quiet && !probe.failing) {
          probe.failing = true;
          log.warn({ subscriber: subscriber.name, shard: master }, "redis shard stopped delivering: not ready");
        } else if (!quiet && probe.lastSeen > 0 && (probe.failing || probe.replacing)) {
          probe.failing = false;
          probe.replacing = false;
          log.info({ subscriber: subscriber.name, shard: master }, "redis shard delivers again");
          subscriber.onRecovered?.();
        }
      });
      publisher.spublish(channel, String(now)).catch(() => undefined);
    }
    // Shards that no longer exist (a promoted replica took the slots over) are forgotten.
    for (const byMaster of probes)
      for (const master of byMaster.keys()) if (!masters.has(master)) byMaster.delete(master);
    started = masters.size > 0;
  };
  const timer = setInterval(tick, CANARY_INTERVAL_MS);
  timer.unref();
  tick();

  return {
    healthy: () => probes.every((byMaster) => [...byMaster.values()].every((p) => !p.failing)),
    stop: () => clearInterval(timer),
  };
}
