import { randomBytes, randomUUID } from "node:crypto";
import type { RedisClient } from "../redis.js";
import type { RoomMessage, RoomPosition } from "../contract.js";
import type { Logger } from "../logger.js";
import {
  covers,
  dedupeKey,
  type Appended,
  type HistoryLimits,
  type HistoryPage,
  type Delivered,
  type NewEntry,
  type RoomLog,
  toRoomMessage,
} from "./log.js";

/**
 * Redis layout (format version 1, in every key and record so old and new replicas can run side by side):
 *   <prefix>v1:{r:<room>}:m    hash: e (epoch), o (latest offset), g (generation it was written under)
 *   <prefix>v1:{r:<room>}:l    stream, entry id "<offset>-0", field r = record JSON {v, id, from, message, t?}
 *   <prefix>v1:{r:<room>}:i:<id>  "<epoch> <offset>", expires after the dedupe window
 *   <prefix>v1:{r:<room>}:u:<n>:<user>:<id>  the same for an authenticated sender's id (n: the user id's length)
 *   <prefix>v1:{r:<room>}:s    set: the replicas that follow the room live, each on a channel of its own
 *   <prefix>v1:{r:<room>}:c:<replica>  a following replica's channel: "<epoch>\n<offset>\n<record>"
 *   <prefix>v1:{r:<room>}:c    the room's channel, the same payload: every follower listens on it too, and an append
 *                              publishes there only when it has listeners the set did not reach (see APPEND)
 *   <prefix>v1:gen             bumped when continuity is lost: every room then starts a new epoch
 *   <prefix>v1:beat            incremented by every replica twice a second, to notice a Redis that lost writes
 * Every key of a room and its channel share the hash tag {r:<room>}: one slot on a Redis Cluster, so the
 * append and the publish stay one atomic script.
 */
const VERSION = 1;

// Appends (or finds the id), assigns the next offset, trims, refreshes the TTLs and publishes, atomically:
// the publish order is the offset order, for every subscriber. The limits are part of the script's text
// (they are fixed for a process), and the channel is the room's meta key with its last letter changed: an
// append carries only what changes per message, as it is sent once per message a client sends.
//
// The publish goes to each following replica's own channel except the appending one's: that replica delivers
// from the reply, and a copy of its own on the room's channel would cost it one more socket read and, more
// often than not, one more wake-up per message (bench/analysis.md, "Fifth round"). A replica whose channel has
// no listener any more (it stopped, or its subscriber is reconnecting) leaves the set. Listeners on the room's
// channel that the set did not reach (a replica of a version before the set, or a follower missing from the set
// because its entry was removed or expired) get the message there; a follower that hears its room there adds
// itself to the set again. So a follower is never left without the live feed, only without the saving.
// Listeners are counted with NUMSUB, which counts channel subscribers only (a follower subscribes to both of
// its channels on one connection): PUBLISH's own count includes pattern subscribers (a `PSUBSCRIBE *` while
// debugging), which would keep stopped followers in the set and hide listeners on the room's channel. A plain
// SUBSCRIBE to a stopped follower's own channel would still keep it counted: do not listen there. The set and
// the counts are read before the first write: a script cannot roll back, and an error after the writes would
// leave a stored message that nobody heard (and a resend would find it a duplicate). One count per follower
// in one call (`unpack`: a few thousand replicas per room at most, far above any deployment).
// KEYS: meta, stream, dedupe key, followers[, generation]. ARGV: record, known epoch, known offset, epoch token,
// appending replica.
const APPEND = (generation: string, pubsub: PubSubCommands, limits: HistoryLimits) => `
${generation}
local channel = string.sub(KEYS[1], 1, -2) .. 'c'
local followers = redis.call('SMEMBERS', KEYS[4])
local channels = {}
for i, replica in ipairs(followers) do channels[i] = channel .. ':' .. replica end
channels[#channels + 1] = channel
local counts = redis.call('PUBSUB', '${pubsub.numsub}', unpack(channels))
local m = redis.call('HMGET', KEYS[1], 'e', 'o', 'g')
local epoch, offset = m[1], tonumber(m[2] or '0')
local rotated = ''
if not epoch then rotated = 'new'
elseif m[3] ~= gen then rotated = 'generation'
elseif ARGV[2] == epoch and offset < tonumber(ARGV[3]) then rotated = 'rollback' end
if rotated ~= '' then
  local t = redis.call('TIME')
  epoch = string.format('%012x', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) .. '-' .. ARGV[4]
  offset = 0
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'g', gen, 'v', '${VERSION}')
else
  local prev = redis.call('GET', KEYS[3])
  if prev then
    local sep = string.find(prev, ' ', 1, true)
    if sep and string.sub(prev, 1, sep - 1) == epoch then
      return {epoch, tonumber(string.sub(prev, sep + 1)), 1, ''}
    end
  end
end
offset = offset + 1
redis.call('HSET', KEYS[1], 'o', offset)
redis.call('XADD', KEYS[2], 'MAXLEN', '${limits.size}', offset .. '-0', 'r', ARGV[1])
redis.call('SET', KEYS[3], epoch .. ' ' .. offset, 'EX', '${limits.dedupeWindowS}')
redis.call('EXPIRE', KEYS[1], '${limits.ttlS}')
redis.call('EXPIRE', KEYS[2], '${limits.ttlS}')
local payload = epoch .. '\\n' .. offset .. '\\n' .. ARGV[1]
local reached = 0
for i, replica in ipairs(followers) do
  if counts[2 * i] == 0 then redis.call('SREM', KEYS[4], replica)
  else
    reached = reached + 1
    if replica ~= ARGV[5] then redis.call('${pubsub.publish}', channels[i], payload) end
  end
end
if counts[2 * #channels] > reached then redis.call('${pubsub.publish}', channel, payload) end
return {epoch, offset, 0, rotated}
`;

// The latest position, the oldest kept offset and, when the epoch matches, the entries after ARGV[2].
// A room written under an older generation has lost its continuity: it reads as a room without history.
const READ = (generation: string) => `
${generation}
local m = redis.call('HMGET', KEYS[1], 'e', 'o', 'g')
if not m[1] or m[3] ~= gen then return {'', 0, 1} end
local epoch, latest = m[1], tonumber(m[2])
local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local first = latest + 1
if oldest[1] then first = tonumber(string.match(oldest[1][1], '^%d+')) end
local out = {epoch, latest, first}
local after = tonumber(ARGV[2])
if (ARGV[1] == epoch or ARGV[1] == '') and after >= first - 1 and after < latest then
  local entries = redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', '+', 'COUNT', ARGV[3])
  for _, e in ipairs(entries) do
    out[#out + 1] = e[2][2]
  end
end
return out
`;

// One Redis: the generation is a key of its own (the last KEYS entry), moved on by CHECK below.
const GENERATION_KEY = (key: number) => `local gen = redis.call('GET', KEYS[${key}]) or '0'`;
// A Redis Cluster: the serving process and its replication history. A promoted replica has a new replication
// id (it may lack the last writes its master acknowledged: replication is asynchronous), and a restarted node a
// new run id (it may have come back from an older snapshot): either way no room written before can prove its
// continuity, so each starts a new epoch on its next append, and reads as a room without history until then.
const GENERATION_OF_NODE = `local gen = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)') .. ':' ..
  string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)')`;

// Run by the first replica to reconnect: a heartbeat below what this replica saw means Redis lost writes.
// The generation then moves on (every room starts a new epoch), and the heartbeat jumps far ahead so that
// the other replicas, checking the same loss after it, find nothing more to do.
const CHECK = `
local found = tonumber(redis.call('GET', KEYS[1]) or '0')
local expected = tonumber(ARGV[1])
if found >= expected then return {0, 0, found} end
local generation = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], expected + 1000000)
return {1, generation, found}
`;

const BEAT_MS = 500;

interface PubSubCommands {
  publish: "PUBLISH" | "SPUBLISH";
  numsub: "NUMSUB" | "SHARDNUMSUB";
}
const PUBSUB: PubSubCommands = { publish: "PUBLISH", numsub: "NUMSUB" };
// A Redis Cluster's sharded channels: published and counted in the room's slot, on its master.
const SHARDED: PubSubCommands = { publish: "SPUBLISH", numsub: "SHARDNUMSUB" };

// A follower that hears its room on the room's channel adds itself to the set again, at most this often.
const REJOIN_MS = 1000;

/** The append script's command name on the command connection (src/redis.ts keeps it out of auto-pipelining). */
export const APPEND_COMMAND = "rtAppend";

// Wall-clock milliseconds with sub-millisecond precision (Date.now() has 1 ms steps): comparable between
// processes of one host, off by the clock skew between hosts.
const wallClockMs = () => performance.timeOrigin + performance.now();

interface Commands {
  rtAppend(...args: Array<string | number>): Promise<[string, number, number, string]>;
  rtRead(...args: Array<string | number>): Promise<Array<string | number>>;
  rtCheck(...args: Array<string | number>): Promise<[number, number, number]>;
}

interface Record {
  v: number;
  id: string;
  from: string;
  message: string;
  /** Sampled entries only: the appending replica's wall clock (ms, sub-ms precision), for delivery latency. */
  t?: number;
}

/** One append in this many (per replica) carries its send time `t`. */
const DELIVERY_SAMPLE_EVERY = 8;

/**
 * The send time `t` of a sampled record, read without parsing it: `t` is the record's last field, and `,"t":`
 * cannot occur inside a JSON string (its quotes are escaped there).
 */
function sampledAt(record: string): number | undefined {
  const at = record.lastIndexOf(',"t":');
  return at < 0 ? undefined : Number(record.slice(at + 5, -1));
}

export interface RedisLogOptions {
  /** Commands and publishes (the app's command connection). */
  commands: RedisClient;
  /** A subscriber connection of the log's own. */
  subscriber: RedisClient;
  /**
   * A Redis Cluster: live entries on sharded channels (SPUBLISH/SSUBSCRIBE, in the room's slot), continuity
   * from the serving node's identity (GENERATION_OF_NODE), and a canary per shard (src/history/canary.ts).
   */
  cluster?: boolean;
  keyPrefix: string;
  limits: HistoryLimits;
  /** How long an append or read waits for a reconnecting Redis before its outcome is unknown. */
  commandTimeoutMs: number;
  log: Logger;
  /** A sampled live entry arrived `seconds` after its append (on any replica): metrics. */
  onSampledDelivery?(seconds: number): void;
}

export function createRedisLog(options: RedisLogOptions): RoomLog {
  const { commands, subscriber, keyPrefix, limits, commandTimeoutMs, log } = options;
  const base = `${keyPrefix}v${VERSION}:`;
  const tag = (room: string) => `${base}{r:${room}}:`;
  const channelPrefix = base + "{r:";
  // The append script derives the same names from the meta key (`…m` → `…c`, `…c:<replica>`): keep them together.
  const channelOf = (room: string) => `${tag(room)}c`;
  // This replica's name in the rooms' sets of followers, and the end of its own channels' names.
  const replica = randomBytes(8).toString("hex");
  const ownSuffix = `}:c:${replica}`;
  const channelsOf = (room: string) => {
    const channel = channelOf(room);
    return [channel, `${channel}:${replica}`];
  };
  const followersOf = (room: string) => `${tag(room)}s`;
  const genKey = `${base}gen`;
  const beatKey = `${base}beat`;
  const cluster = options.cluster === true;
  // On a cluster every key of a script must be in the room's slot: no generation key there.
  const genKeys = cluster ? [] : [genKey];
  commands.defineCommand(APPEND_COMMAND, {
    numberOfKeys: 4 + genKeys.length,
    lua: cluster ? APPEND(GENERATION_OF_NODE, SHARDED, limits) : APPEND(GENERATION_KEY(5), PUBSUB, limits),
  });
  commands.defineCommand("rtRead", {
    numberOfKeys: 2 + genKeys.length,
    lua: READ(cluster ? GENERATION_OF_NODE : GENERATION_KEY(3)),
  });
  commands.defineCommand("rtCheck", { numberOfKeys: 2, lua: CHECK });
  const redis = commands as unknown as Commands;
  let appends = 0;
  // The unique part of the next epoch this replica starts (its first part is Redis's clock in milliseconds).
  let epochToken = randomUUID();

  const entryListeners: Array<{ listener: (entry: RoomMessage) => void; delivered: Delivered | undefined }> = [];
  // An entry every listener has delivered already is dropped unread.
  const deliveredByAll = (room: string, epoch: string, offset: number): boolean => {
    for (const { delivered } of entryListeners) if (!delivered?.(room, epoch, offset)) return false;
    return entryListeners.length > 0;
  };
  // A sampled entry (its append's wall-clock time `t`) arrived on this replica.
  const observeSample = (t: number) => options.onSampledDelivery?.((wallClockMs() - t) / 1000);
  const resyncListeners: Array<() => void> = [];
  const subscribed = new Set<string>();

  subscriber.on(cluster ? "smessage" : "message", (channel: string, payload: string) => {
    // The same connection hears the shard canaries (src/ops/shard-canary.ts).
    if (!channel.startsWith(channelPrefix)) return;
    const own = channel.endsWith(ownSuffix);
    const room = channel.slice(channelPrefix.length, own ? -ownSuffix.length : -"}:c".length);
    if (!own) rejoin(room);
    const a = payload.indexOf("\n");
    const b = payload.indexOf("\n", a + 1);
    const epoch = payload.slice(0, a);
    const offset = Number(payload.slice(a + 1, b));
    // A copy this replica has delivered already (its own append heard on the room's channel, or a follower's second
    // copy while the room's channel has other listeners): not parsed again.
    if (deliveredByAll(room, epoch, offset)) {
      const t = sampledAt(payload);
      if (t !== undefined) observeSample(t);
      return;
    }
    const entry = parseLive(channel, payload.slice(b + 1), room, epoch, offset);
    if (entry) for (const { listener } of entryListeners) listener(entry);
  });

  function parseLive(channel: string, json: string, room: string, epoch: string, offset: number) {
    try {
      const record = JSON.parse(json) as Record;
      if (typeof record.t === "number") observeSample(record.t);
      return toRoomMessage(record, room, epoch, offset);
    } catch (err) {
      log.warn({ channel, err: (err as Error).message }, "unreadable room record ignored");
      return undefined;
    }
  }

  // Joins the room's set of followers (after subscribing: an append that finds a follower's channel without a
  // listener removes it). A failure only costs the saving: the room's channel still reaches this replica.
  const follow = (room: string): Promise<void> =>
    Promise.all([commands.sadd(followersOf(room), replica), commands.expire(followersOf(room), limits.ttlS)]).then(
      () => undefined,
      (err: Error) => log.debug({ room, err: err.message }, "room followers not updated"),
    );
  const rejoined = new Map<string, number>();
  const rejoin = (room: string) => {
    const now = Date.now();
    if (!subscribed.has(room) || now - (rejoined.get(room) ?? 0) < REJOIN_MS) return;
    rejoined.set(room, now);
    void follow(room);
  };

  // A subscriber that reconnects may have missed messages published meanwhile: the feeds catch up from
  // the history once every room's channel is subscribed again.
  let subscriberWasReady = false;
  const resync = (reason: string) => {
    log.info({ rooms: subscribed.size, reason }, "room feeds catching up from history");
    for (const listener of resyncListeners) listener();
  };
  subscriber.on("ready", () => {
    if (!subscriberWasReady) {
      subscriberWasReady = true;
      return;
    }
    // A cluster client renews its sharded subscriptions by itself (per shard, on the current slot map).
    if (cluster) return resync("redis cluster reconnected");
    const channels = [...subscribed].flatMap(channelsOf);
    const again = channels.length > 0 ? subscriber.subscribe(...channels) : Promise.resolve(0);
    again.then(
      () => resync("resubscribed"),
      (err: Error) => log.warn({ err: err.message }, "room feeds could not resubscribe"),
    );
  });

  // The heartbeat: a Redis that comes back with a smaller counter has lost acknowledged writes (a crash
  // inside its fsync window, or no persistence at all), so no room's continuity can be proven any more.
  // While the command connection is down, appends and reads wait behind a gate until that check is done:
  // nothing may be written to a Redis whose history is not known to be whole.
  let highestBeat = 0;
  let gate: { opened: Promise<void>; open(): void } | undefined;
  // Not on a Redis Cluster, whose continuity comes from the node identity (GENERATION_OF_NODE): no timer there.
  const beat = cluster
    ? undefined
    : setInterval(() => {
        if (commands.status !== "ready" || gate) return;
        commands.incr(beatKey).then(
          (value) => void (highestBeat = Math.max(highestBeat, value)),
          () => undefined,
        );
      }, BEAT_MS);
  beat?.unref();
  commands.on("close", () => {
    if (cluster || highestBeat === 0 || gate) return;
    let open = () => undefined as void;
    const opened = new Promise<void>((resolve) => (open = resolve));
    gate = { opened, open };
  });
  // The check must have an answer before the gate opens: on a failure (a timeout under load) it is tried
  // again while the connection is up; a connection that drops meanwhile runs it on its next "ready".
  const checkContinuity = (closed: NonNullable<typeof gate>): void => {
    redis.rtCheck(beatKey, genKey, highestBeat).then(
      ([lost, generation, found]) => {
        if (lost === 1) {
          log.error(
            { generation, heartbeat: found, expected: highestBeat },
            "redis lost acknowledged writes: every room's history restarts with a new epoch",
          );
        }
        gate = undefined;
        closed.open();
      },
      (err: Error) => {
        log.warn({ err: err.message }, "redis continuity check failed: retrying");
        setTimeout(() => {
          if (commands.status === "ready" && gate === closed) checkContinuity(closed);
        }, 200).unref();
      },
    );
  };
  commands.on("ready", () => {
    if (gate) checkContinuity(gate);
  });

  const passGate = async (): Promise<void> => {
    if (!gate) return;
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error("redis is reconnecting")), commandTimeoutMs).unref(),
    );
    await Promise.race([gate.opened, timeout]);
  };

  // Not async functions: an append is one per socket read at chat rates, and each await is a hop.
  function appendNow(entry: NewEntry, known: RoomPosition | undefined): Promise<Appended> {
    const prefix = tag(entry.room);
    const record: Record = { v: VERSION, id: entry.id, from: entry.from, message: entry.message };
    if (++appends % DELIVERY_SAMPLE_EVERY === 0) record.t = wallClockMs();
    const appended = redis.rtAppend(
      `${prefix}m`,
      `${prefix}l`,
      prefix + dedupeKey(entry),
      `${prefix}s`,
      ...genKeys,
      JSON.stringify(record),
      known?.epoch ?? "",
      known?.offset ?? 0,
      epochToken,
      replica,
    );
    return appended.then(([epoch, offset, duplicate, rotated]) => {
      // A token names one new epoch: the next one gets another.
      if (rotated !== "") epochToken = randomUUID();
      if (rotated === "rollback" || rotated === "generation") {
        log.warn({ room: entry.room, epoch, reason: rotated }, "room history restarted with a new epoch");
      }
      return { epoch, offset: Number(offset), duplicate: duplicate === 1 };
    });
  }

  return {
    append: (entry, known) => (gate ? passGate().then(() => appendNow(entry, known)) : appendNow(entry, known)),

    async read(room: string, since: RoomPosition | null, limit: number): Promise<HistoryPage> {
      await passGate();
      const prefix = tag(room);
      const reply = await redis.rtRead(
        `${prefix}m`,
        `${prefix}l`,
        ...genKeys,
        since?.epoch ?? "",
        since ? since.offset : Number.MAX_SAFE_INTEGER,
        limit,
      );
      const epoch = reply[0] === "" ? null : String(reply[0]);
      const latest = Number(reply[1]);
      const first = Number(reply[2]);
      if (!since) return { epoch, offset: latest, recovered: false, messages: [] };
      if (!covers(since, epoch, latest, first)) return { epoch, offset: latest, recovered: false, messages: [] };
      const messages: RoomMessage[] = [];
      for (let i = 3; i < reply.length; i++) {
        const record = JSON.parse(String(reply[i])) as Record;
        messages.push(toRoomMessage(record, room, epoch as string, since.offset + i - 2));
      }
      return { epoch, offset: latest, recovered: true, messages };
    },

    async subscribe(room: string): Promise<void> {
      subscribed.add(room);
      const channels = channelsOf(room);
      await (cluster ? subscriber.ssubscribe(...channels) : subscriber.subscribe(...channels));
      await follow(room);
    },

    unsubscribe(room: string): void {
      if (!subscribed.delete(room)) return;
      rejoined.delete(room);
      const channels = channelsOf(room);
      const done = cluster ? subscriber.sunsubscribe(...channels) : subscriber.unsubscribe(...channels);
      done.catch(() => undefined);
      commands.srem(followersOf(room), replica).catch(() => undefined);
    },

    onEntry: (listener, delivered) => void entryListeners.push({ listener, delivered }),
    onResync: (listener) => void resyncListeners.push(listener),
    close: () => clearInterval(beat),
  };
}
