import { afterEach, describe, expect, it } from "vitest";
import { startProcessClusterOnFreePorts, type ProcessCluster } from "../../scripts/cluster/processes.js";
import { startRedisCluster, type LocalRedisCluster } from "../../scripts/cluster/redis-cluster.js";
import { createRedisLog } from "../../src/history/redis-log.js";
import { createLogger } from "../../src/logger.js";
import { connectRedis, type RedisConnections } from "../../src/redis.js";
import { watchShardedSubscriptions, type ShardCanary } from "../../src/ops/shard-canary.js";
import type { Cluster } from "ioredis";
import type { RoomMessage } from "../../src/contract.js";
import { cleanupAll, eventually, sleep } from "../support/server.js";
import { closeAll, runLoad, settle, type Member } from "./load.js";

/**
 * The delivery guarantee on a Redis Cluster (3 masters, 3 replicas, sharded pub/sub): the master serving the
 * room's slot is killed under load. Replication is asynchronous, so the promoted replica may lack the last
 * appends its master acknowledged; the room must then start a new epoch (an explicit gap for every member)
 * rather than hand out an offset again for another message.
 */
let cluster: ProcessCluster | undefined;
let redisCluster: LocalRedisCluster | undefined;
const connections: RedisConnections[] = [];
let canary: ShardCanary | undefined;
let members: Member[] = [];
afterEach(async () => {
  await cleanupAll();
  canary?.stop();
  canary = undefined;
  await Promise.all(connections.splice(0).map((c) => c.close()));
  await redisCluster?.stop();
  redisCluster = undefined;
  closeAll(members);
  members = [];
  await cluster?.stop();
  cluster = undefined;
}, 60_000);

const ROOM = "failover";
// Every key of a room and its channel carry this hash tag (src/history/redis-log.ts): one slot, one master.
const ROOM_TAG = `{r:${ROOM}}`;

const seedsOf = (c: LocalRedisCluster) =>
  c.seeds.split(",").map((seed) => {
    const [host, port] = seed.split(":");
    return { host: host as string, port: Number(port) };
  });
const waitReady = (redis: RedisConnections) => eventually(() => redis.isReady(), 10_000, "redis cluster connections");

const silent = createLogger({ logLevel: "silent", replicaId: "test" });
const connectTo = (redis: LocalRedisCluster) => {
  const connection = connectRedis({ cluster: { nodes: seedsOf(redis), password: undefined } }, silent, {
    commandTimeoutMs: 1000,
  });
  connections.push(connection);
  return connection;
};

/** An app replica's room log on the cluster, and every live entry it hears (no `delivered`: its own copies too). */
function openRoomLog(redis: LocalRedisCluster) {
  const connection = connectTo(redis);
  const roomLog = createRedisLog({
    commands: connection.pub,
    subscriber: connection.feed,
    cluster: true,
    keyPrefix: "t:",
    limits: { size: 100, ttlS: 600, dedupeWindowS: 120 },
    commandTimeoutMs: 1000,
    log: silent,
  });
  const heard: RoomMessage[] = [];
  roomLog.onEntry((entry) => heard.push(entry));
  return { connection, roomLog, heard };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const position = (m: { epoch: string; offset: number }) => `${m.epoch}#${m.offset}`;

describe("Redis Cluster failover (processes: 6 redis-server nodes, 3 replicas, nginx)", () => {
  it("kills the master serving a room, ahead of its replica, under load: the replica takes over, the app replicas follow on their own, and members get every message or an explicit gap, never a reused offset", async () => {
    cluster = await startProcessClusterOnFreePorts({
      replicas: 3,
      redisMode: "cluster",
      logLevel: "warn",
      stdio: process.env.CHAOS_VERBOSE ? "inherit" : "ignore",
      env: { REDIS_COMMAND_TIMEOUT_MS: "1000" },
    });
    const redis = cluster.redisCluster;
    if (!redis) throw new Error("no Redis Cluster");
    const before = await redis.masterOf(ROOM_TAG);
    let promotedAfterMs = 0;
    const result = await runLoad({
      cluster,
      room: ROOM,
      members: 18,
      fault: async () => {
        // The replica falls behind first: frozen, its replication link cut by the master, which goes on
        // acknowledging appends. The master then dies with acknowledged writes its replica never got: the case
        // asynchronous replication makes possible.
        const replica = await redis.replicaOf(before);
        replica.freeze();
        await before.command("CLIENT", "KILL", "TYPE", "replica");
        await sleep(800);
        const killedAt = Date.now();
        await before.kill("SIGKILL");
        replica.thaw();
        await sleep(300);
        await redis.settled(20_000);
        promotedAfterMs = Date.now() - killedAt;
      },
    });
    members = result.members;
    const after = await redis.masterOf(ROOM_TAG);
    expect(after.port).not.toBe(before.port);

    const acked = [...result.acked.entries()];
    const epochs = [...new Set(acked.map(([, p]) => p.epoch))];
    const lastEpoch = epochs.at(-1) as string;
    const inLast = acked.filter(([, p]) => p.epoch === lastEpoch).map(([, p]) => p.offset);
    // Members catch up on the last epoch: delivery works again after the failover, without any restart.
    await settle(members, (m) => m.delivered.filter((d) => d.epoch === lastEpoch).length >= inLast.length);

    // Never one position for two messages: across every ack and every delivery of every member.
    const owner = new Map<string, string>();
    const claim = (at: string, text: string) => {
      const first = owner.get(at) ?? text;
      owner.set(at, first);
      expect(first, `position ${at} carried two messages`).toBe(text);
    };
    for (const [text, p] of acked) claim(position(p), text);
    for (const m of members) for (const d of m.delivered) claim(position(d), d.message);

    const told = members.filter((m) => m.gaps.some((g) => g.to.epoch === lastEpoch)).length;
    console.log(
      `chaos: ${JSON.stringify({
        scenario: "redis cluster master SIGKILL",
        sent: result.sent,
        acked: acked.length,
        epochs: epochs.length,
        ackedInLastEpoch: inLast.length,
        membersToldOfGap: told,
        promotedAfterMs,
      })}`,
    );
    expect(result.acked.size).toBe(result.sent);
    expect(inLast.sort((a, b) => a - b)).toEqual(range(1, inLast.length));
    for (const m of members) {
      const byEpoch = new Map<string, RoomMessage[]>();
      for (const d of m.delivered) byEpoch.set(d.epoch, [...(byEpoch.get(d.epoch) ?? []), d]);
      // In order and once within each epoch.
      for (const list of byEpoch.values()) {
        const offsets = list.map((d) => d.offset);
        expect(offsets).toEqual([...new Set(offsets)].sort((a, b) => a - b));
      }
      // The last epoch whole: 1..N, every message acknowledged in it.
      expect((byEpoch.get(lastEpoch) ?? []).map((d) => d.offset)).toEqual(range(1, inLast.length));
      // Every earlier acknowledged message delivered, or the member was told it missed some.
      const missing = acked.filter(
        ([text, p]) => p.epoch !== lastEpoch && !m.delivered.some((d) => d.message === text),
      );
      if (missing.length > 0) expect(m.gaps.map((g) => g.to.epoch)).toContain(lastEpoch);
    }
  }, 150_000);

  it("starts a new epoch for a room whose master was replaced, even for a writer that never saw the old offsets", async () => {
    const redis = await startRedisCluster();
    redisCluster = redis;
    const open = () => openRoomLog(redis);
    const first = open();
    await waitReady(first.connection);
    const entry = (n: number) => ({ room: ROOM, id: `m${n}`, from: "a", message: `m${n}` });
    const kept = await first.roomLog.append(entry(1), undefined);
    // The replica is cut off from here on: the next two appends exist on the master alone.
    const master = await redis.masterOf(ROOM_TAG);
    const replica = await redis.replicaOf(master);
    replica.freeze();
    await master.command("CLIENT", "KILL", "TYPE", "replica");
    await first.roomLog.append(entry(2), undefined);
    const lost = await first.roomLog.append(entry(3), undefined);
    expect([kept.offset, lost.offset, lost.epoch]).toEqual([1, 3, kept.epoch]);
    await master.kill("SIGKILL");
    replica.thaw();
    await redis.settled();

    // A fresh writer, with no position to compare (a restarted app replica): the room reads as without history,
    // and its next append opens a new epoch at offset 1 rather than handing out offset 2 again.
    const second = open();
    await waitReady(second.connection);
    const page = await second.roomLog.read(ROOM, { epoch: kept.epoch, offset: 1 }, 10);
    expect(page).toMatchObject({ epoch: null, recovered: false });
    const next = await second.roomLog.append(entry(4), undefined);
    expect(next.epoch).not.toBe(kept.epoch);
    expect(next.offset).toBe(1);
  }, 90_000);

  it("publishes a room's entries to the other follower's sharded channel only, and to a listener of the room's channel", async () => {
    const redis = await startRedisCluster();
    redisCluster = redis;
    const open = () => openRoomLog(redis);
    const [a, b] = [open(), open()];
    await Promise.all([waitReady(a.connection), waitReady(b.connection)]);
    await Promise.all([a.roomLog.subscribe(ROOM), b.roomLog.subscribe(ROOM)]);
    const master = await redis.masterOf(ROOM_TAG);
    expect(await master.command("SCARD", `t:v1:${ROOM_TAG}:s`)).toBe(2);

    const entry = (n: number) => ({ room: ROOM, id: `m${n}`, from: "a", message: `m${n}` });
    for (let n = 1; n <= 3; n++) await a.roomLog.append(entry(n), undefined);
    await eventually(() => b.heard.length === 3, 5000, "the other follower hears all three");
    expect(b.heard.map((e) => e.offset)).toEqual([1, 2, 3]);
    await sleep(200);
    expect(a.heard).toEqual([]);

    // A listener of the room's channel the set does not name (a replica of the previous version) gets them there.
    const previous = connectTo(redis);
    await waitReady(previous);
    const onRoomChannel: string[] = [];
    previous.feed.on("smessage", (channel: string, payload: string) => {
      if (channel === `t:v1:${ROOM_TAG}:c`) onRoomChannel.push(payload.split("\n")[1] as string);
    });
    await (previous.feed as Cluster).ssubscribe(`t:v1:${ROOM_TAG}:c`);
    await a.roomLog.append(entry(4), undefined);
    await eventually(() => onRoomChannel.length === 1, 5000, "offset 4 on the room's channel");
    expect(onRoomChannel).toEqual(["4"]);
    // The followers hear it there too (their feeds drop a second copy by its offset): b twice, a once.
    await eventually(() => b.heard.length === 5 && a.heard.length === 1, 5000, "the followers' copies");
    expect(b.heard.map((e) => e.offset)).toEqual([1, 2, 3, 4, 4]);
    expect(a.heard.map((e) => e.offset)).toEqual([4]);
  }, 90_000);

  it("turns not healthy while a shard's master is frozen, and reports the recovery so that feeds catch up", async () => {
    // A node timeout longer than the freeze: no failover, the same master comes back.
    const redis = await startRedisCluster({ nodeTimeoutMs: 15_000 });
    redisCluster = redis;
    const connection = connectTo(redis);
    await waitReady(connection);
    let recovered = 0;
    canary = watchShardedSubscriptions({
      publisher: connection.pub as Cluster,
      subscribers: [{ name: "feed", client: connection.feed as Cluster, onRecovered: () => recovered++ }],
      prefix: "t:",
      uid: "test",
      log: silent,
    });
    const watched = canary;
    await sleep(2500);
    expect(watched.healthy()).toBe(true);
    const master = await redis.masterOf(ROOM_TAG);
    master.freeze();
    try {
      await eventually(() => !watched.healthy(), 8000, "the canary noticing the frozen shard");
    } finally {
      master.thaw();
    }
    await eventually(() => watched.healthy() && recovered === 1, 8000, "the canary heard again");
  }, 90_000);
});
