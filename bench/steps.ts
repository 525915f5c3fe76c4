/**
 * `npx tsx bench/steps.ts`: the per-message steps of a room message, in µs per event, ours against what vanilla
 * Socket.IO (+ @socket.io/redis-adapter) does for the same message, or the feature switched off. Issue 11: at chat
 * rates our replicas spend more CPU per delivered message than vanilla; this says where, step by step.
 *
 * In this process (bounded loops over the real modules of src/, median of MICRO_REPS repetitions with min–max,
 * "ours" and "the other" alternating; hot loops, so these are lower bounds of what the same code costs when it
 * runs once every few milliseconds):
 *   1. validation of a `room-message` payload (the handler's zod schema) against none;
 *   2a. the whole listener chain createApp installs for `room-message` (rate gate, ordering, metrics, validation,
 *       membership, memory store, feed, broadcast encode, ack) on a stand-in socket, against vanilla's handler;
 *       and its parts: rate gate, defineEvent wrapper, membership check, logger, ids, memory append, feed;
 *   3. the deferred flush of src/engine/coalesce.ts (on a stand-in Engine.IO) per delivery, and the cork wrapper
 *      for a batch of one;
 *   4. the slow-consumer after-flush hook (src/limits/slow-consumer.ts) per flush;
 *   5. metrics per event (src/metrics.ts, as src/events/handler.ts drives them) and per sampled live entry;
 *   6. the room record: the Redis log's append (record JSON, keys, ids) and its live-entry parse (JSON.parse +
 *      toMessage, through its subscriber listener), against the redis adapter's msgpack encode / decode.
 * In server processes (bench/steps/server.ts: CPU of all their threads from /proc/<pid>/task/*\/schedstat, write
 * syscalls from /proc/<pid>/io; real socket.io-client websockets from this process on 127.0.0.1, 20 per server;
 * one message every 5 ms, each alone in its tick). Compared servers run at the same time, the second 2.5 ms after
 * the first, so that the machine's noise weighs on both:
 *   2b. server CPU per acknowledged `room-message`, createApp with the memory store against
 *       bench/servers/vanilla-socketio.ts: rooms of 1 (the event's own cost) and a room of 20;
 *   2c. the same on one replica with Redis (ours: history + room feed; vanilla: the redis adapter), each server on a
 *       redis-server of its own; the code before 63807dc and 9b62c74 against the code now; candidates;
 *   2d. idle CPU of every server process over the same windows;
 *   3. delivery of one entry (and an ack to one member) to 20 local members: plain Engine.IO against our deferred
 *      flush + cork, and with the slow-consumer hook, µs per delivered message and writes per message.
 * Against a real redis-server (127.0.0.1, a free port):
 *   7. ioredis enableAutoPipelining on against off, one room-log append (EVALSHA) per tick: client CPU per command,
 *      Redis CPU per command and latency.
 *
 * Candidates (bench/steps/candidates.ts) are measured beside the shipped code in a second table. Prints markdown
 * and writes bench/results/steps-latest.json; about 2 minutes. `--in-process-only`: the loops alone (about 10 s).
 * `--cpu-prof=<dir>`: the server processes write V8 CPU profiles there (`npx tsx bench/profile-summary.ts <dir>`).
 * The machine is shared and noisy: read a difference against its min–max, never inside it.
 */
import { execFileSync, fork, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, totalmem } from "node:os";
import { Redis } from "ioredis";
import { pino } from "pino";
import { Server } from "socket.io";
import { io as connectClient, type Socket as ClientSocket } from "socket.io-client";
import { createApp } from "../src/app.js";
import { parseConfig } from "../src/config.js";
import type { RoomMessage } from "../src/contract.js";
import { AFTER_FLUSH, coalesceWebSocketWrites, type EnginePatch } from "../src/engine/coalesce.js";
import type { EngineIoModule } from "../src/engine/engine-io.js";
import { defineEvent, type AppContext, type SharedListener, type TypedServer } from "../src/events/handler.js";
import { roomKey } from "../src/events/rooms.js";
import { RoomFeed } from "../src/history/feeds.js";
import { createMemoryLog } from "../src/history/memory-log.js";
import { createRedisLog } from "../src/history/redis-log.js";
import { createEventGate } from "../src/limits/rate.js";
import { watchSlowConsumers } from "../src/limits/slow-consumer.js";
import type { Logger } from "../src/logger.js";
import { createMetrics, TIMING_SAMPLE_EVERY } from "../src/metrics.js";
import { createLimitedLog } from "../src/ops/log-limiter.js";
import type { RedisClient } from "../src/redis.js";
import { roomMessage } from "../src/schemas.js";
import { waitForExit } from "../scripts/cluster/processes.js";
import { freePort } from "../scripts/cluster/ports.js";
import { startRedisServer, type RedisServer } from "../scripts/cluster/redis-server.js";
import { arg, cpuNanoseconds, percentile, processCounters } from "./proc.js";
import { parseRoomMessage } from "./steps/candidates.js";
import { loopNs, pairAsync, pairedDiff, pairSync, sink, stat, type Paired, type Stat } from "./steps/measure.js";

const ROOT = new URL("../", import.meta.url).pathname;
const started = Date.now();
const CPU_PROF = arg("cpu-prof");
/** `--in-process-only`: the loops of this process alone (about 10 s), no server processes, no Redis. */
const IN_PROCESS_ONLY = process.argv.includes("--in-process-only");
const REPS = 5;
const MICRO_REPS = 7;
const MICRO = { iterations: 200_000, maxMs: 40, reps: MICRO_REPS };
const CHAIN = { iterations: 40_000, maxMs: 120, reps: MICRO_REPS };
/** Child-process phases: messages per phase, one every INTERVAL_MS (200 msg/s, as the chat workload). */
const MESSAGES = 200;
const INTERVAL_MS = 5;
const CLIENTS = 20;
/** Messages each server process handles before anything is measured. */
const WARMUP = 300;
const IDLE_MS = 1000;
const REDIS_COMMANDS = 2000;
const REDIS_PHASE_MS = 800;

// ---------------------------------------------------------------------------------------------------------------
// Results

interface Row {
  id: string;
  step: string;
  unit: string;
  ours: Stat;
  other: Stat | null;
  /** What "other" is: vanilla, none (the feature off), plain Engine.IO, autopipelining off… */
  otherLabel: string;
  /** Paired per repetition: ours − other. */
  diff: Stat | null;
  notes: string;
  values: { ours: number[]; other?: number[] };
  extra?: Record<string, unknown>;
}

const rows: Row[] = [];
const candidates: Row[] = [];

function paired(
  id: string,
  step: string,
  unit: string,
  p: Paired,
  otherLabel: string,
  notes: string,
  extra?: Record<string, unknown>,
  into: Row[] = rows,
): Row {
  const row: Row = {
    id,
    step,
    unit,
    ours: stat(p.ours),
    other: stat(p.other),
    otherLabel,
    diff: pairedDiff(p.ours, p.other),
    notes,
    values: p,
    extra,
  };
  into.push(row);
  return row;
}

const f = (x: number): string => {
  if (!Number.isFinite(x)) return "–";
  const a = Math.abs(x);
  return x.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : a >= 0.1 ? 3 : 4);
};
const cell = (s: Stat | null): string => (s ? `${f(s.median)} (${f(s.min)}–${f(s.max)})` : "–");
const diffCell = (d: Stat | null): string => {
  if (!d) return "–";
  const sign = (x: number) => (x > 0 ? `+${f(x)}` : f(x));
  const verdict = d.min > 0 ? "" : d.max < 0 ? "" : " *in noise*";
  return `${sign(d.median)} (${sign(d.min)}…${sign(d.max)})${verdict}`;
};

// ---------------------------------------------------------------------------------------------------------------
// Shared fixtures

const quiet: Logger = pino({ level: "info" }, pino.destination({ dest: "/dev/null", sync: true }));
const TEXT = "m".repeat(100);
type Payload = { room: string; message: string; id?: string };
const payloads: Payload[] = Array.from({ length: 1024 }, (_, i) => ({ room: "chat", message: `${i} ${TEXT}` }));
const payloadsWithId: Payload[] = payloads.map((p) => ({ ...p, id: randomUUID() }));
const at = <T>(list: T[], i: number): T => list[i & (list.length - 1)] as T;
let acked = 0;
let refused = 0;
const ack = (r: { ok: boolean }) => void (r.ok ? acked++ : refused++);

/** What the handlers use of a Socket.IO socket, and the listeners the connection handler attaches. */
function standInSocket(id: string) {
  const listeners = new Map<string, SharedListener>();
  const rooms = new Set<string>([id]);
  return {
    id,
    data: {},
    rooms,
    connected: true,
    conn: { transport: { name: "websocket" } },
    listeners,
    on(event: string, fn: SharedListener) {
      listeners.set(event, fn);
      return this;
    },
    onAny() {
      return this;
    },
    emit() {
      return true;
    },
    join(room: string) {
      rooms.add(room);
    },
    leave(room: string) {
      rooms.delete(room);
    },
  };
}
type StandInSocket = ReturnType<typeof standInSocket>;

const log = (text: string) => console.error(`[steps ${((Date.now() - started) / 1000).toFixed(0)} s] ${text}`);

// ---------------------------------------------------------------------------------------------------------------
// 1. Validation

function validation(): void {
  const none = (i: number) => {
    const { room, message } = at(payloads, i);
    sink.value += room.length + message.length;
  };
  const zod = (list: Payload[]) => (i: number) => {
    const r = roomMessage.safeParse(at(list, i));
    if (r.success) sink.value += r.data.room.length + r.data.message.length;
  };
  paired(
    "1",
    "validation: `roomMessage.safeParse` (zod), `{ room, message }`",
    "µs/event",
    pairSync(zod(payloads), none, MICRO),
    "none",
    "src/schemas.ts via defineEvent; vanilla takes the payload as is. 100-character message",
  );
  paired(
    "1",
    "validation with a client id `{ room, message, id }`",
    "µs/event",
    pairSync(zod(payloadsWithId), none, MICRO),
    "none",
    "the reliable client helper and k6 send an id",
  );
  const candidate = (list: Payload[]) => (i: number) => {
    const r = parseRoomMessage(at(list, i));
    if (r.success) sink.value += r.data.room.length + r.data.message.length;
  };
  paired(
    "C1",
    "validation: zod vs a hand-written check of the same rules (zod on failure)",
    "µs/event",
    pairSync(zod(payloadsWithId), candidate(payloadsWithId), MICRO),
    "candidate",
    "bench/steps/candidates.ts parseRoomMessage; rejections still get zod's message",
    undefined,
    candidates,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// 2a. The listener chain, in process

async function listenerChain(): Promise<void> {
  const config = parseConfig({
    PORT: "0",
    HOST: "127.0.0.1",
    METRICS_PORT: "0",
    REPLICA_ID: "steps",
    // The loop sends far more than a client may: the gate runs its usual path with room to spare.
    RATE_LIMIT_EVENTS_PER_S: "1000000",
    RATE_LIMIT_BURST: "10000000",
    // Each event is a new id: remembered 1 s so that the memory store stays small.
    DEDUPE_WINDOW_S: "1",
  });
  const app = createApp(config, quiet);
  try {
    const handlers = app.io.sockets.listeners("connection");
    const onConnection = handlers[handlers.length - 1] as unknown as (socket: StandInSocket) => void;
    const socket = standInSocket("steps-socket");
    onConnection(socket);
    const listener = (event: string) => {
      const l = socket.listeners.get(event);
      if (!l) throw new Error(`no ${event} listener`);
      return l;
    };
    await listener("join-room").call(socket as never, "chat", ack);
    const send = listener("room-message");

    // Vanilla's handler (bench/servers/vanilla-socketio.ts), on a Socket.IO server of its own.
    const vio = new Server();
    const vanilla = function (this: StandInSocket, { room, message }: Payload, done?: (r: { ok: boolean }) => void) {
      vio.to(room).emit("room-message-received", { from: this.id, room, message });
      done?.({ ok: true });
    };
    acked = refused = 0;
    const p = await pairAsync(
      (i) => send.call(socket as never, at(payloads, i), ack),
      (i) => vanilla.call(socket, at(payloads, i), ack),
      CHAIN,
    );
    if (refused > 0) throw new Error(`${refused} room messages refused in the listener chain`);
    paired(
      "2a",
      "listener chain for `room-message` (createApp, memory store, 0 recipients)",
      "µs/event",
      p,
      "vanilla",
      "gate → ordering → metrics → zod → membership → memory append → feed → broadcast encode → ack; vanilla: encode + ack",
    );
  } finally {
    await app.close();
  }
}

async function chainParts(): Promise<void> {
  const metrics = createMetrics({ replicaId: "steps", version: "0", connections: () => 0, ready: () => true });
  const ctx = { metrics, log: quiet, limited: createLimitedLog(quiet) } as unknown as AppContext;
  const socket = standInSocket("steps-parts");
  socket.rooms.add(roomKey("chat"));
  const nothing = (i: number) => void (sink.value += i & 1);

  const gate = createEventGate(ctx, { eventsPerS: 1_000_000, burst: 1_000_000_000 });
  paired(
    "2a",
    "· rate gate `admit` (per-socket token bucket)",
    "µs/event",
    pairSync((i) => void (gate.admit(socket as never, "room-message", ack) && (sink.value += i & 1)), nothing, MICRO),
    "none",
    "src/limits/rate.ts: WeakMap lookup + Date.now()",
  );

  // defineEvent with a handler that does nothing: what the wrapper adds around any handler.
  const noop = () => undefined;
  const wrapped = defineEvent(ctx, "room-message", roomMessage, noop);
  const wrappedNoSchema = defineEvent(ctx, "room-message", null, noop);
  const bare = function (this: unknown, _payload: unknown, done: (r: { ok: boolean }) => void) {
    done({ ok: true });
  };
  paired(
    "2a",
    "· defineEvent wrapper, no-op handler (ack split, metrics, zod, settle)",
    "µs/event",
    pairSync(
      (i) => void wrapped.call(socket as never, at(payloads, i), ack),
      (i) => bare(at(payloads, i), ack),
      MICRO,
    ),
    "vanilla",
    "src/events/handler.ts; vanilla: calls the ack",
  );
  paired(
    "2a",
    "· defineEvent wrapper without its schema",
    "µs/event",
    pairSync(
      (i) => void wrappedNoSchema.call(socket as never, at(payloads, i), ack),
      (i) => bare(at(payloads, i), ack),
      MICRO,
    ),
    "vanilla",
    "the wrapper alone: rest args, ack split, cell++, 1 in 8 timed, settle",
  );
  paired(
    "2a",
    "· membership check `socket.rooms.has(roomKey(room))`",
    "µs/event",
    pairSync((i) => void (socket.rooms.has(roomKey(at(payloads, i).room)) && (sink.value += 1)), nothing, MICRO),
    "none",
    "requireMember in src/events/rooms.ts (a string concat + Set lookup)",
  );
  paired(
    "2a",
    "· logger: one `log.debug({…}, msg)` at the default level (info)",
    "µs/event",
    pairSync((i) => quiet.debug({ socket: socket.id, room: at(payloads, i).room }, "room message"), nothing, MICRO),
    "none",
    "pino's disabled level is a no-op; the room-message success path logs nothing at all",
  );
  paired(
    "2a",
    "· ids: `randomUUID()` × 2 (message id when none is sent, epoch candidate per append)",
    "µs/event",
    pairSync((i) => void (sink.value += randomUUID().length + randomUUID().length + (i & 1)), nothing, MICRO),
    "none",
    "rooms.ts `id ?? randomUUID()`; redis-log.ts append passes a fresh UUID (ARGV[8]) for a possible new epoch",
  );

  const memory = createMemoryLog({ size: 1000, ttlS: 600, dedupeWindowS: 1 });
  paired(
    "2a",
    "· memory store append (one process only; clusters use Redis, step 7)",
    "µs/event",
    pairSync(
      (i) =>
        void memory.append({ room: "chat", id: `${i}-${started}`, from: "s", message: TEXT }, undefined).then(noop),
      nothing,
      MICRO,
    ),
    "none",
    "src/history/memory-log.ts",
  );
  memory.close();

  // The room feed of one replica: push → drain (async) → deliver, per live entry and replica.
  const feedLog = createMemoryLog({ size: 10, ttlS: 600, dedupeWindowS: 1 });
  const feed = new RoomFeed("chat", feedLog, (entry) => void (sink.value += entry.offset & 1), quiet);
  let offset = 0;
  let spare = 0;
  const entry = (n: number): RoomMessage => ({
    room: "chat",
    id: "x",
    from: "s",
    message: TEXT,
    epoch: "e",
    offset: n,
  });
  await feed.start();
  // Offsets follow on without a hole (a hole would make the feed read the history and queue meanwhile).
  const feedRow = pairSync(
    () => feed.push(entry(++offset)),
    () => void (sink.value += entry(++spare).offset & 1),
    MICRO,
  );
  if (feed.last !== offset) throw new Error(`the feed delivered up to ${feed.last}, not ${offset}`);
  paired(
    "2a",
    "· room feed: `push` → ordered `deliver` (per live entry, per replica)",
    "µs/entry",
    feedRow,
    "none",
    "src/history/feeds.ts; vanilla's adapter emits directly. Both sides build the entry",
  );
  feedLog.close();
  metrics.close();
}

// ---------------------------------------------------------------------------------------------------------------
// 3 (in process). The deferred flush and the cork wrapper, on a stand-in Engine.IO

function standInEngine() {
  class Socket {
    readyState = "open";
    flushes = 0;
    flush() {
      this.flushes++;
    }
  }
  class WebSocketTransport {
    packets = 0;
    socket = { _socket: { cork() {}, uncork() {} } };
    send(packets: unknown[]) {
      this.packets += packets.length;
    }
  }
  return { Socket, transports: { websocket: WebSocketTransport } };
}

async function deferredFlush(): Promise<void> {
  const plain = standInEngine();
  const patched = standInEngine();
  const applied: Record<EnginePatch, boolean> = coalesceWebSocketWrites(quiet, {
    ok: true,
    module: patched as unknown as EngineIoModule,
    path: "stand-in",
  });
  if (!applied["deferred-flush"] || !applied["corked-batches"]) throw new Error("patches not applied to the stand-in");
  const members = (engine: ReturnType<typeof standInEngine>) => Array.from({ length: 20 }, () => new engine.Socket());
  const plainSockets = members(plain);
  const patchedSockets = members(patched);
  // One message to 20 members per call; each call is awaited alone (batch 1), as a message alone in its tick.
  const message = (sockets: Array<{ flush(): void }>) => () => {
    for (const s of sockets) s.flush();
  };
  const p = await pairAsync(message(patchedSockets), message(plainSockets), {
    iterations: 40_000,
    maxMs: 80,
    reps: MICRO_REPS,
    batch: 1,
  });
  const perDelivery = (xs: number[]) => xs.map((x) => x / 20);
  paired(
    "3",
    "deferred flush per delivery (JS only, stand-in engine, 20 members, one message per tick)",
    "µs/delivered",
    { ours: perDelivery(p.ours), other: perDelivery(p.other) },
    "plain flush",
    "src/engine/coalesce.ts: Set add/delete + one microtask per tick; the engine's own flush is a no-op here",
  );
  const plainT = new plain.transports.websocket();
  const patchedT = new patched.transports.websocket();
  const one = [{ type: "message", data: "x" }];
  paired(
    "3",
    "cork wrapper on a batch of one packet (skips the cork)",
    "µs/flush",
    pairSync(
      () => patchedT.send(one),
      () => plainT.send(one),
      MICRO,
    ),
    "plain send",
    "src/engine/coalesce.ts corkBatches: a length check and one more call",
  );
}

// ---------------------------------------------------------------------------------------------------------------
// 4. The slow-consumer after-flush hook (on socket.io's real engine.io, patched in this process by createApp)

function slowConsumerHook(): void {
  coalesceWebSocketWrites(quiet);
  const engine = new EventEmitter();
  watchSlowConsumers({ engine } as unknown as TypedServer, {
    maxBytes: 1024 * 1024,
    log: quiet,
    evicted: () => undefined,
  });
  // What Engine.IO leaves after a flush: a new, empty writeBuffer; ws's bufferedAmount is a getter over the
  // TCP socket's queue and the sender's.
  const ws = {
    _socket: { _writableState: { length: 0 } },
    _sender: { _bufferedBytes: 0 },
    get bufferedAmount() {
      return this._socket._writableState.length + this._sender._bufferedBytes;
    },
  };
  const raw: Record<string | symbol, unknown> = {
    id: "sid",
    readyState: "open",
    writeBuffer: [],
    transport: { name: "websocket", socket: ws },
    close: () => undefined,
  };
  engine.emit("connection", raw);
  const hook = raw[AFTER_FLUSH] as ((socket: unknown) => void) | undefined;
  if (typeof hook !== "function") throw new Error("watchSlowConsumers installed no after-flush hook");
  paired(
    "4",
    "slow-consumer after-flush hook (empty writeBuffer, bufferedAmount 0)",
    "µs/flush",
    pairSync(
      (i) => {
        raw.writeBuffer = [];
        hook(raw);
        sink.value += i & 1;
      },
      (i) => {
        raw.writeBuffer = [];
        sink.value += i & 1;
      },
      MICRO,
    ),
    "none",
    "src/limits/slow-consumer.ts check(): one per socket per deferred flush, i.e. per delivery at chat rates",
  );
}

// ---------------------------------------------------------------------------------------------------------------
// 5. Metrics

function metricsSteps(): void {
  const metrics = createMetrics({ replicaId: "steps", version: "0", connections: () => 0, ready: () => true });
  const received = metrics.eventReceived("room-message");
  const handled = metrics.eventHandled("room-message");
  const nothing = (i: number) => void (sink.value += i & 1);
  paired(
    "5",
    `metrics per event: cell++ and 1 in ${TIMING_SAMPLE_EVERY} timed into the histogram`,
    "µs/event",
    pairSync(
      (i) => {
        if (++received.value % TIMING_SAMPLE_EVERY !== 0) return void (sink.value += i & 1);
        const start = performance.now();
        sink.value += start;
        handled((performance.now() - start) / 1000);
      },
      nothing,
      MICRO,
    ),
    "none",
    "as src/events/handler.ts drives src/metrics.ts (bench/metrics-cost.ts: 0.053 µs)",
  );
  paired(
    "5",
    "metrics per live entry: 1 in 8 carries `t`, observed by `roomDelivered`",
    "µs/entry",
    pairSync((i) => void ((i & 7) === 0 ? metrics.roomDelivered((i % 100) * 1e-4) : (sink.value += 1)), nothing, MICRO),
    "none",
    "per replica with members (Redis only)",
  );
  metrics.close();
}

// ---------------------------------------------------------------------------------------------------------------
// 6. The room record: append-side JSON and live-entry parse, against the redis adapter's msgpack

class StandInRedis extends EventEmitter {
  status = "end";
  defineCommand(name: string) {
    (this as unknown as Record<string, unknown>)[name] = () => Promise.resolve(["000000000000-steps", 1, 0, ""]);
  }
}

async function roomRecord(): Promise<void> {
  const metrics = createMetrics({ replicaId: "steps", version: "0", connections: () => 0, ready: () => true });
  const commands = new StandInRedis();
  const subscriber = new StandInRedis();
  const history = createRedisLog({
    commands: commands as unknown as RedisClient,
    subscriber: subscriber as unknown as RedisClient,
    keyPrefix: "rt:",
    limits: { size: 1000, ttlS: 600, dedupeWindowS: 120 },
    commandTimeoutMs: 2000,
    log: quiet,
    onSampledDelivery: (s) => metrics.roomDelivered(s),
  });
  let got = 0;
  history.onEntry((entry) => void (got += entry.offset > 0 ? 1 : 0));

  // The redis adapter's own msgpack (notepack.io), as it encodes a broadcast and decodes it on each replica.
  const adapterRequire = createRequire(createRequire(import.meta.url).resolve("@socket.io/redis-adapter"));
  const msgpack = adapterRequire("notepack.io") as {
    encode(value: unknown): Buffer;
    decode(buffer: Buffer): unknown;
  };
  const uid = "abcdef";
  const adapterMessage = (p: Payload) => [
    uid,
    { type: 2, data: ["room-message-received", { from: "socket-id-20-chars-x", room: p.room, message: p.message }] },
    { rooms: [p.room], except: [], flags: {} },
  ];
  const entries = payloads.map((p, i) => ({
    room: p.room,
    id: at(payloadsWithId, i).id ?? "",
    from: "s",
    message: p.message,
  }));
  paired(
    "6",
    "append side: redis-log `append()` up to ioredis (record JSON, keys, UUID, args)",
    "µs/message",
    await pairAsync(
      (i) => history.append(at(entries, i), { epoch: "000000000000-steps", offset: i }),
      (i) => void (sink.value += msgpack.encode(adapterMessage(at(payloads, i))).length),
      { ...MICRO, iterations: 100_000 },
    ),
    "vanilla",
    "once per message on the sender's replica; vanilla: the adapter's msgpack encode of the broadcast",
  );

  const channel = "rt:v1:{r:chat}:c";
  const wallClock = () => performance.timeOrigin + performance.now();
  const live = payloads.map((p, i) => {
    const record: Record<string, unknown> = { v: 1, id: at(payloadsWithId, i).id, from: "s", message: p.message };
    if (i % 8 === 0) record.t = wallClock();
    return `000000000000-steps\n${i + 1}\n${JSON.stringify(record)}`;
  });
  const packed = payloads.map((p) => msgpack.encode(adapterMessage(p)));
  const decode = (i: number) => {
    const [from, packet, opts] = msgpack.decode(at(packed, i)) as [string, { nsp?: string }, Record<string, unknown>];
    if (from === uid + "x") return;
    if (packet.nsp === undefined) packet.nsp = "/";
    opts.rooms = new Set(opts.rooms as string[]);
    opts.except = new Set(opts.except as string[]);
    sink.value += 1;
  };
  paired(
    "6",
    "receive side: live entry → `parseLive` (JSON.parse + toMessage) → onEntry",
    "µs/entry",
    pairSync((i) => void subscriber.emit("message", channel, at(live, i)), decode, MICRO),
    "vanilla",
    "per message per replica with members (1 in 8 also observes delivery latency); vanilla: msgpack decode + Sets",
  );
  if (got === 0) throw new Error("the redis log parsed no live entry");
  history.close();
  metrics.close();
}

// ---------------------------------------------------------------------------------------------------------------
// Child processes

interface Target {
  name: string;
  child: ChildProcess;
  url: string;
  clients: ClientSocket[];
  received: number;
  acks: number;
  failed: number;
  sentReplies: number;
  /** The redis-server this target uses, if any (each of a simultaneous pair has its own). */
  redisPid?: number;
  /** createApp (answers /readyz). */
  app?: boolean;
}

const children: ChildProcess[] = [];
const clientsToClose: ClientSocket[] = [];
const profArgs = CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${CPU_PROF}`] : [];

async function forkTarget(name: string, script: string, env: Record<string, string>): Promise<Target> {
  const port = await freePort();
  const child = fork(`${ROOT}${script}`, [], {
    execArgv: [...profArgs, "--import", "tsx"],
    env: { ...process.env, PORT: String(port), ...env },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  children.push(child);
  if (CPU_PROF) log(`${name}: pid ${child.pid}`);
  const listening = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} not listening within 30 s`)), 30_000);
    child.once("message", (m: { port?: number } | string) => {
      clearTimeout(timer);
      resolve(typeof m === "object" && m.port ? m.port : port);
    });
    child.once("exit", (code) => (clearTimeout(timer), reject(new Error(`${name} exited with ${code}`))));
  });
  const target: Target = {
    name,
    child,
    url: `http://127.0.0.1:${listening}`,
    clients: [],
    received: 0,
    acks: 0,
    failed: 0,
    sentReplies: 0,
  };
  child.on("message", (m: { sent?: number }) => {
    if (typeof m === "object" && m.sent) target.sentReplies++;
  });
  return target;
}

async function waitReady(target: Target): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const status = await fetch(`${target.url}/readyz`).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) return;
    await sleep(100);
  }
  throw new Error(`${target.name} not ready within 20 s`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(done: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) return false;
    await sleep(5);
  }
  return true;
}

/** CLIENTS websocket clients, each in its room of one (`solo-<i>`) and all in `chat`. */
async function connectClients(target: Target): Promise<void> {
  const open = () =>
    new Promise<ClientSocket>((resolve, reject) => {
      const socket = connectClient(target.url, { transports: ["websocket"], forceNew: true, reconnection: false });
      clientsToClose.push(socket);
      socket.once("connect", () => resolve(socket));
      socket.once("connect_error", reject);
    });
  target.clients = await Promise.all(Array.from({ length: CLIENTS }, open));
  for (const socket of target.clients) {
    socket.on("room-message-received", () => void target.received++);
    socket.on("steps-ack", () => void target.acks++);
  }
  await Promise.all(
    target.clients.map(async (socket, i) => {
      const a = (await socket.emitWithAck("join-room", `solo-${i}`)) as { ok?: boolean };
      const b = (await socket.emitWithAck("join-room", "chat")) as { ok?: boolean };
      if (!a.ok || !b.ok) throw new Error(`${target.name}: join refused`);
    }),
  );
}

interface Usage {
  cpuNs: number;
  writes: number;
  redisNs: number;
}

const usage = (target: Target, redisPid?: number): Usage => ({
  cpuNs: cpuNanoseconds(target.child.pid as number),
  writes: processCounters(target.child.pid as number).writes,
  redisNs: redisPid ? cpuNanoseconds(redisPid) : 0,
});

interface PhaseResult {
  cpuUs: number;
  writes: number;
  redisUs: number;
  delivered: number;
  expected: number;
  messages: number;
}

const delta = (a: Usage, b: Usage, messages: number, delivered: number, expected: number): PhaseResult => ({
  cpuUs: (b.cpuNs - a.cpuNs) / 1000,
  writes: b.writes - a.writes,
  redisUs: (b.redisNs - a.redisNs) / 1000,
  delivered,
  expected,
  messages,
});

/** MESSAGES acknowledged room messages, one every INTERVAL_MS, from the clients in turn. */
async function sendPhase(target: Target, shape: "solo" | "chat", messages = MESSAGES): Promise<PhaseResult> {
  target.received = target.acks = target.failed = 0;
  const members = shape === "solo" ? 1 : CLIENTS;
  const before = usage(target, target.redisPid);
  let k = 0;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const i = k % CLIENTS;
      const room = shape === "solo" ? `solo-${i}` : "chat";
      (target.clients[i] as ClientSocket).emit("room-message", { room, message: TEXT }, (r: { ok?: boolean }) =>
        r?.ok ? target.acks++ : target.failed++,
      );
      if (++k >= messages) {
        clearInterval(timer);
        resolve();
      }
    }, INTERVAL_MS);
  });
  const expected = messages * members;
  await until(() => target.received >= expected && target.acks + target.failed >= messages, 5000);
  const after = usage(target, target.redisPid);
  if (target.failed > 0) throw new Error(`${target.name}: ${target.failed} room messages refused`);
  return delta(before, after, messages, target.received, expected);
}

/** The delivery server sends MESSAGES entries to `chat`, one per INTERVAL_MS, from its own timer. */
async function deliveryPhase(target: Target, messages = MESSAGES): Promise<PhaseResult> {
  target.received = target.acks = 0;
  const replies = target.sentReplies;
  const before = usage(target);
  target.child.send({ cmd: "send", room: "chat", count: messages, intervalMs: INTERVAL_MS });
  const expected = messages * CLIENTS;
  await until(() => target.received >= expected && target.acks >= messages && target.sentReplies > replies, 10_000);
  const after = usage(target);
  return delta(before, after, messages, target.received, expected);
}

type Pair = [Target, Target];

/**
 * REPS rounds; in each, every pair runs once, the order of the pairs rotated from round to round. The two targets
 * of a pair run at the same time (the second half an interval later, which of them first alternating), so
 * whatever else the shared machine does in that second weighs on both: their difference is far less noisy than
 * that of two phases run one after the other.
 */
async function pairedRounds(
  pairs: Pair[],
  run: (target: Target) => Promise<PhaseResult>,
): Promise<Array<{ a: PhaseResult[]; b: PhaseResult[] }>> {
  const out = pairs.map(() => ({ a: [] as PhaseResult[], b: [] as PhaseResult[] }));
  for (let r = 0; r < REPS; r++) {
    for (let j = 0; j < pairs.length; j++) {
      const index = (j + r) % pairs.length;
      const [a, b] = pairs[index] as Pair;
      const [first, second] = r % 2 === 0 ? [a, b] : [b, a];
      const one = run(first);
      await sleep(INTERVAL_MS / 2);
      const two = run(second);
      const [x, y] = await Promise.all([one, two]);
      const result = out[index] as { a: PhaseResult[]; b: PhaseResult[] };
      result.a.push(r % 2 === 0 ? x : y);
      result.b.push(r % 2 === 0 ? y : x);
    }
  }
  return out;
}

const per = (results: PhaseResult[], value: (r: PhaseResult) => number) => results.map(value);
const deliveryRatio = (results: PhaseResult[]) =>
  Math.min(...results.map((r) => (r.expected === 0 ? 1 : r.delivered / r.expected)));
const cpuPerMessage = (r: PhaseResult) => r.cpuUs / r.messages;
const writesPerMessage = (r: PhaseResult) => r.writes / r.messages;
const redisPerMessage = (r: PhaseResult) => r.redisUs / r.messages;
const medianOf = (results: PhaseResult[], value: (r: PhaseResult) => number) => stat(per(results, value)).median;

interface Spec {
  name: string;
  env: Record<string, string>;
  /** A redis-server of its own (STEPS_REDIS_URL / REDIS_URL): its CPU per message is this server's alone. */
  redis?: boolean;
}

const APP = "bench/steps/server.ts";
const ours = (name: string, env: Record<string, string> = {}, redis = false): Spec => ({
  name,
  env: { STEPS_MODE: "app", ...env },
  redis,
});
const vanillaSpec = (name: string, redis = false): Spec => ({ name, env: { STEPS_MODE: "vanilla" }, redis });
const deliverySpec = (name: string, env: Record<string, string> = {}): Spec => ({
  name,
  env: { STEPS_MODE: "delivery", ...env },
});

/** Starts a spec's redis-server (if any) and server process, connects and joins its clients. */
async function startSpec(spec: Spec, prefix: string): Promise<Target> {
  let env = spec.env;
  let redis: RedisServer | undefined;
  if (spec.redis) {
    redis = await startRedisServer();
    redisServers.push(redis);
    env =
      env.STEPS_MODE === "app"
        ? { ...env, STEPS_REDIS_URL: redis.url, STEPS_REDIS_KEY_PREFIX: prefix }
        : { ...env, REDIS_URL: redis.url };
  }
  const target = await forkTarget(spec.name, APP, env);
  target.redisPid = redis?.child.pid;
  target.app = env.STEPS_MODE === "app";
  return target;
}

interface PairSpec {
  a: Spec;
  b: Spec;
  id: string;
  step: string;
  /** How the table names b. */
  label: string;
  note?: string;
}

/**
 * Every comparison is a pair of processes of its own (the "ours as shipped" of each pair is a twin of the others):
 * two processes with the same history (start-up, warm-up, phases), so that one that has run more messages, and
 * has more of its code optimised by V8, does not pass for cheaper.
 */
async function startPairs(pairs: PairSpec[], prefix: string): Promise<Pair[]> {
  const started: Pair[] = [];
  // A few at a time: every start-up compiles TypeScript, on the 2 cores the others measure on later.
  for (let i = 0; i < pairs.length; i += 3) {
    const group = pairs.slice(i, i + 3);
    const targets = await Promise.all(group.map((p) => Promise.all([startSpec(p.a, prefix), startSpec(p.b, prefix)])));
    started.push(...(targets as Pair[]));
  }
  for (const pair of started) {
    for (const target of pair) {
      if (target.app) await waitReady(target);
      await connectClients(target);
    }
  }
  return started;
}

async function serverSteps(): Promise<void> {
  log("starting the server processes");
  const prefix = `steps-${randomUUID().slice(0, 8)}:`;
  const memoryPairs: PairSpec[] = [
    {
      a: ours("ours"),
      b: vanillaSpec("vanilla"),
      id: "2b",
      step: "server CPU per `room-message`, memory store",
      label: "vanilla",
    },
  ];
  const redisPairs: PairSpec[] = [
    {
      a: ours("ours+redis", {}, true),
      b: vanillaSpec("vanilla+redis", true),
      id: "2c",
      step: "ours as shipped against vanilla",
      label: "vanilla",
    },
    {
      a: ours("before 63807dc", { STEPS_ELD_MS: "10" }, true),
      b: ours("ours+redis", {}, true),
      id: "2c",
      step: "63807dc (event-loop delay sampled every 100 ms, was 10): before vs after",
      label: "after",
      note: "before: candidates.ts eventLoopMonitorsAt(10); ",
    },
    {
      a: ours("before 9b62c74", { STEPS_APPEND: "pipelined" }, true),
      b: ours("ours+redis", {}, true),
      id: "2c",
      step: "9b62c74 (appends out of ioredis auto-pipelining): before vs after",
      label: "after",
      note: "before: candidates.ts appendsAutoPipelined; ",
    },
    {
      a: ours("ours+redis", {}, true),
      b: ours("C5", { STEPS_WAIT_TIMER: "lazy" }, true),
      id: "C5",
      step: "feeds.ts: the ack-wait interval cleared by its own tick only (candidates.ts lazyWaitTimer)",
      label: "candidate",
    },
    {
      a: ours("ours+redis", {}, true),
      b: ours("C6", { STEPS_COMMAND_TIMERS: "off" }, true),
      id: "C6",
      step: "ioredis commandTimeout off on the command connection (a bound: the cost of its per-command timers)",
      label: "candidate",
    },
    {
      a: ours("ours+redis", {}, true),
      b: ours("C3", { STEPS_FLUSH: "immediate" }, true),
      id: "C3",
      step: "deferred flush on setImmediate, the ack joins the copy (candidates.ts deferFlushToImmediate)",
      label: "candidate",
    },
  ];
  const deliveryPairs: PairSpec[] = [
    {
      a: deliverySpec("coalesced", { STEPS_PATCH: "1" }),
      b: deliverySpec("plain"),
      id: "3",
      step: "coalesced vs plain",
      label: "plain",
      note: "src/engine/coalesce.ts with nothing to batch",
    },
    {
      a: deliverySpec("coalesced+hook", { STEPS_PATCH: "1", STEPS_HOOK: "1" }),
      b: deliverySpec("coalesced", { STEPS_PATCH: "1" }),
      id: "3",
      step: "coalesced+hook vs coalesced",
      label: "coalesced",
      note: "src/limits/slow-consumer.ts on top of the patch",
    },
    {
      a: deliverySpec("coalesced+hook", { STEPS_PATCH: "1", STEPS_HOOK: "1" }),
      b: deliverySpec("plain"),
      id: "3",
      step: "coalesced+hook vs plain",
      label: "plain",
      note: "what a replica runs against plain Engine.IO",
    },
    {
      a: deliverySpec("coalesced+hook", { STEPS_PATCH: "1", STEPS_HOOK: "1" }),
      b: deliverySpec("C3: immediate+hook", { STEPS_PATCH: "1", STEPS_HOOK: "1", STEPS_FLUSH: "immediate" }),
      id: "C3",
      step: "coalesced+hook vs flush on setImmediate + hook",
      label: "candidate",
      note: "the ack joins the copy",
    },
    {
      a: deliverySpec("coalesced+hook", { STEPS_PATCH: "1", STEPS_HOOK: "1" }),
      b: deliverySpec("C7: skip empty flush", { STEPS_PATCH: "1", STEPS_HOOK: "1", STEPS_SKIP_EMPTY: "1" }),
      id: "C7",
      step: "coalesced+hook vs the same, an empty flush returning at once (candidates.ts skipEmptyFlush)",
      label: "candidate",
      note: "Engine.IO flushes on every write completion: today each delivery is deferred twice",
    },
  ];
  const [memory, withRedis, deliveries] = [
    await startPairs(memoryPairs, prefix),
    await startPairs(redisPairs, prefix),
    await startPairs(deliveryPairs, prefix),
  ];
  await sleep(300);
  // Warm-up, the same for every process: V8 optimises a handler after some hundreds of calls.
  log("warm-up");
  const senders = [...memory, ...withRedis].flat();
  for (let i = 0; i < senders.length; i += 4) {
    await Promise.all(senders.slice(i, i + 4).map((x) => sendPhase(x, "chat", WARMUP)));
  }
  await Promise.all(memory.flat().map((x) => sendPhase(x, "solo", WARMUP)));
  for (let i = 0; i < deliveries.length; i += 2) {
    await Promise.all(
      deliveries
        .slice(i, i + 2)
        .flat()
        .map((x) => deliveryPhase(x, WARMUP)),
    );
  }

  log("2b: server CPU per room-message, memory store vs vanilla, the two at once");
  const memoryPair = memory[0] as Pair;
  for (const shape of ["solo", "chat"] as const) {
    const [{ a: o, b: v }] = (await pairedRounds([memoryPair], (x) => sendPhase(x, shape))) as [
      { a: PhaseResult[]; b: PhaseResult[] },
    ];
    const members = shape === "solo" ? 1 : CLIENTS;
    paired(
      "2b",
      shape === "solo"
        ? "server CPU per `room-message`, room of 1 (sender's copy + ack), memory store"
        : `server CPU per \`room-message\`, room of ${CLIENTS}, memory store`,
      "µs/message",
      { ours: per(o, cpuPerMessage), other: per(v, cpuPerMessage) },
      "vanilla",
      `writes/message ${f(medianOf(o, writesPerMessage))} vs ${f(medianOf(v, writesPerMessage))}` +
        (members > 1
          ? `; per delivered ${f(medianOf(o, cpuPerMessage) / members)} vs ${f(medianOf(v, cpuPerMessage) / members)}`
          : ""),
      {
        writesPerMessage: { ours: stat(per(o, writesPerMessage)), other: stat(per(v, writesPerMessage)) },
        deliveredRatio: { ours: deliveryRatio(o), other: deliveryRatio(v) },
        members,
      },
    );
  }

  log("2c: one replica with Redis: ours (history + feed) vs vanilla (redis adapter), before/after, candidates");
  const twoC = await pairedRounds(withRedis, (x) => sendPhase(x, "chat"));
  redisPairs.forEach((spec, i) => {
    const { a: o, b: v } = twoC[i] as { a: PhaseResult[]; b: PhaseResult[] };
    paired(
      spec.id,
      `replica CPU per \`room-message\`, room of ${CLIENTS}, one replica + Redis: ${spec.step}`,
      "µs/message",
      { ours: per(o, cpuPerMessage), other: per(v, cpuPerMessage) },
      spec.label,
      `${spec.note ?? ""}Redis CPU/message ${cell(stat(per(o, redisPerMessage)))} vs ${cell(
        stat(per(v, redisPerMessage)),
      )}; writes/message ${f(medianOf(o, writesPerMessage))} vs ${f(medianOf(v, writesPerMessage))}`,
      {
        redisUsPerMessage: { ours: stat(per(o, redisPerMessage)), other: stat(per(v, redisPerMessage)) },
        writesPerMessage: { ours: stat(per(o, writesPerMessage)), other: stat(per(v, writesPerMessage)) },
        deliveredRatio: { ours: deliveryRatio(o), other: deliveryRatio(v) },
      },
      spec.id.startsWith("C") ? candidates : rows,
    );
  });

  log("2d: idle CPU, every server process over the same windows");
  const idlePairs: Array<[Pair, string, string]> = [
    [memoryPair, `idle server CPU, memory store, ${CLIENTS} idle clients`, "vanilla"],
    [withRedis[0] as Pair, "idle server CPU, with Redis", "vanilla"],
    [withRedis[1] as Pair, "idle server CPU, with Redis: 63807dc before (monitors at 10 ms) vs after", "after"],
  ];
  const watched = idlePairs.flatMap(([pair]) => pair);
  const idle = new Map<Target, number[]>(watched.map((x) => [x, []]));
  for (let r = 0; r < REPS; r++) {
    const before = watched.map((x) => usage(x));
    await sleep(IDLE_MS);
    watched.forEach((x, i) => {
      idle.get(x)?.push((usage(x).cpuNs - (before[i] as Usage).cpuNs) / 1000 / (IDLE_MS / 1000));
    });
  }
  for (const [[a, b], step, label] of idlePairs) {
    const row = paired("2d", step, "µs/s", { ours: idle.get(a) ?? [], other: idle.get(b) ?? [] }, label, "");
    row.notes = `at 200 msg/s per replica: ${f((row.diff?.median ?? NaN) / 200)} µs per message`;
  }

  log("3: delivery to 20 members: plain Engine.IO, deferred flush + cork, + slow-consumer hook, the pairs at once");
  const three = await pairedRounds(deliveries, (x) => deliveryPhase(x));
  const perDelivered = (r: PhaseResult) => r.cpuUs / r.delivered;
  deliveryPairs.forEach((spec, i) => {
    const { a: o, b: v } = three[i] as { a: PhaseResult[]; b: PhaseResult[] };
    paired(
      spec.id,
      `delivery to ${CLIENTS} local members + an ack to one, one entry per tick: ${spec.step}`,
      "µs/delivered",
      { ours: per(o, perDelivered), other: per(v, perDelivered) },
      spec.label,
      `${spec.note}; writes/message ${f(medianOf(o, writesPerMessage))} vs ${f(medianOf(v, writesPerMessage))}`,
      {
        writesPerMessage: { ours: stat(per(o, writesPerMessage)), other: stat(per(v, writesPerMessage)) },
        deliveredRatio: { ours: deliveryRatio(o), other: deliveryRatio(v) },
      },
      spec.id.startsWith("C") ? candidates : rows,
    );
  });
}

// ---------------------------------------------------------------------------------------------------------------
// 7. ioredis auto-pipelining, one EVALSHA (the room log's append) per tick

async function autoPipelining(redis: RedisServer): Promise<void> {
  log("7: ioredis enableAutoPipelining on vs off, one append per tick");
  const options = (auto: boolean) => ({
    // The command connection's options in src/redis.ts (clientOptions "pub"), auto-pipelining aside.
    enableAutoPipelining: auto,
    maxRetriesPerRequest: 2,
    commandTimeout: 2000,
    autoResendUnfulfilledCommands: false,
    enableOfflineQueue: false,
    lazyConnect: true,
  });
  const clients = { on: new Redis(redis.url, options(true)), off: new Redis(redis.url, options(false)) };
  const subscriber = new Redis(redis.url, { lazyConnect: true });
  const all = [clients.on, clients.off, subscriber];
  for (const c of all) c.on("error", () => undefined);
  await Promise.all(all.map((c) => c.connect()));
  const prefix = `steps-${randomUUID().slice(0, 8)}:`;
  const logs = {
    on: createRedisLog({
      commands: clients.on,
      subscriber,
      keyPrefix: `${prefix}on:`,
      limits: { size: 1000, ttlS: 60, dedupeWindowS: 60 },
      commandTimeoutMs: 2000,
      log: quiet,
    }),
    off: createRedisLog({
      commands: clients.off,
      subscriber,
      keyPrefix: `${prefix}off:`,
      limits: { size: 1000, ttlS: 60, dedupeWindowS: 60 },
      commandTimeoutMs: 2000,
      log: quiet,
    }),
  };
  const redisPid = redis.child.pid as number;
  let n = 0;
  const phase = async (variant: "on" | "off") => {
    const history = logs[variant];
    const latencies: number[] = [];
    const cpu = process.cpuUsage();
    const redisBefore = cpuNanoseconds(redisPid);
    const deadline = performance.now() + REDIS_PHASE_MS;
    while (latencies.length < REDIS_COMMANDS && performance.now() < deadline) {
      const t0 = performance.now();
      await history.append({ room: `r${n % 10}`, id: `${started}-${n++}`, from: "steps", message: TEXT }, undefined);
      // The next command goes out from the reply's continuation: an I/O callback, as a replica sends its append
      // from a client's read (auto-pipelining's setImmediate then runs in the same turn of the loop).
      latencies.push(performance.now() - t0);
    }
    const used = process.cpuUsage(cpu);
    latencies.sort((a, b) => a - b);
    return {
      clientUs: (used.user + used.system) / latencies.length,
      clientUserUs: used.user / latencies.length,
      redisUs: (cpuNanoseconds(redisPid) - redisBefore) / 1000 / latencies.length,
      p50ms: percentile(latencies, 50),
      p99ms: percentile(latencies, 99),
      commands: latencies.length,
    };
  };
  try {
    await phase("on");
    await phase("off");
    const out: Record<"on" | "off", Array<Awaited<ReturnType<typeof phase>>>> = { on: [], off: [] };
    for (let r = 0; r < REPS; r++) {
      for (const v of r % 2 === 0 ? (["on", "off"] as const) : (["off", "on"] as const)) out[v].push(await phase(v));
    }
    const pick = (v: "on" | "off", k: "clientUs" | "clientUserUs" | "redisUs" | "p50ms" | "p99ms") =>
      out[v].map((x) => x[k]);
    paired(
      "7",
      "ioredis client CPU per append (EVALSHA), one per tick: auto-pipelining on (before 9b62c74) vs off",
      "µs/command",
      { ours: pick("on", "clientUs"), other: pick("off", "clientUs") },
      "off",
      `src/redis.ts: on for the command connection, appends excepted since 9b62c74; includes the redis-log append JS and this loop; ${out.on[0]?.commands ?? 0} commands/phase`,
    );
    paired(
      "7",
      "· of which user time (JS, no syscalls)",
      "µs/command",
      { ours: pick("on", "clientUserUs"), other: pick("off", "clientUserUs") },
      "off",
      "process.cpuUsage().user: the Pipeline object, setImmediate, callbacks",
    );
    paired(
      "7",
      "round trip per append, p50 (ms)",
      "ms",
      { ours: pick("on", "p50ms"), other: pick("off", "p50ms") },
      "off",
      `p99 on ${cell(stat(pick("on", "p99ms")))}, off ${cell(stat(pick("off", "p99ms")))} ms`,
    );
    paired(
      "7",
      "Redis CPU per append (the Lua script, no subscriber)",
      "µs/command",
      { ours: pick("on", "redisUs"), other: pick("off", "redisUs") },
      "off",
      "the same commands either way: a control",
    );
  } finally {
    logs.on.close();
    logs.off.close();
    for (const c of all) c.disconnect();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Run, report

function loopOverheadNs(): number {
  return loopNs((i) => void (sink.value += i & 1), MICRO.iterations, MICRO.maxMs);
}

function print(): string {
  const lines: string[] = [];
  const header = "| # | step | unit | ours | vanilla / off | difference (paired) | notes |";
  const sep = "| --- | --- | --- | ---: | ---: | ---: | --- |";
  lines.push(header, sep);
  for (const r of rows) {
    lines.push(
      `| ${r.id} | ${r.step} | ${r.unit} | ${cell(r.ours)} | ${r.otherLabel}: ${cell(r.other)} | ${diffCell(r.diff)} | ${r.notes} |`,
    );
  }
  lines.push("", "Candidate changes (not in src/), shipped code against the candidate:", "", header, sep);
  for (const r of candidates) {
    lines.push(
      `| ${r.id} | ${r.step} | ${r.unit} | ${cell(r.ours)} | ${r.otherLabel}: ${cell(r.other)} | ${diffCell(r.diff)} | ${r.notes} |`,
    );
  }
  return lines.join("\n");
}

const redisServers: RedisServer[] = [];
async function cleanup(): Promise<void> {
  for (const socket of clientsToClose) socket.disconnect();
  await Promise.all(children.map((c) => (c.kill("SIGTERM"), waitForExit(c, 10_000))));
  await Promise.all(redisServers.map((r) => r.stop()));
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => void cleanup().then(() => process.exit(signal === "SIGINT" ? 130 : 143)));
}

try {
  log("in-process steps");
  const overhead = loopOverheadNs();
  validation();
  log("2a: listener chain");
  await listenerChain();
  await chainParts();
  log("3, 4, 5, 6 in process");
  await deferredFlush();
  slowConsumerHook();
  metricsSteps();
  await roomRecord();
  if (!IN_PROCESS_ONLY) {
    await serverSteps();
    const redis = await startRedisServer();
    redisServers.push(redis);
    await autoPipelining(redis);
  }
  const seconds = Math.round((Date.now() - started) / 1000);
  const table = print();
  console.log(
    `\nper-message steps, Node ${process.version}, ${cpus().length} cores; in-process: median (min–max) of ${MICRO_REPS} ` +
      `bounded loops; processes: median (min–max) of ${REPS} phases of ${MESSAGES} messages at ${1000 / INTERVAL_MS}/s; ` +
      `${seconds} s. Differences are paired per repetition; *in noise*: their range includes 0.\n`,
  );
  console.log(table);
  let commit = "unknown";
  try {
    commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
  } catch {
    // not a git checkout
  }
  mkdirSync(`${ROOT}bench/results`, { recursive: true });
  writeFileSync(
    `${ROOT}bench/results/steps-latest.json`,
    JSON.stringify(
      {
        bench: "steps",
        date: new Date().toISOString(),
        commit,
        node: process.version,
        machine: { cpus: cpus().length, model: cpus()[0]?.model ?? "?", memGiB: Math.round(totalmem() / 2 ** 30) },
        seconds,
        params: {
          microReps: MICRO_REPS,
          micro: MICRO,
          chain: CHAIN,
          processReps: REPS,
          messagesPerPhase: MESSAGES,
          intervalMs: INTERVAL_MS,
          clients: CLIENTS,
          idleMs: IDLE_MS,
          redisCommandsPerPhase: REDIS_COMMANDS,
          loopOverheadNs: overhead,
        },
        rows,
        candidates,
      },
      null,
      2,
    ) + "\n",
  );
  console.log("\nwritten: bench/results/steps-latest.json");
} finally {
  await cleanup();
}
