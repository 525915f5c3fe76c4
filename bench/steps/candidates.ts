/**
 * Candidate code for the changes bench/steps.ts proposes, measured beside what src/ does today, and the code before
 * two changes already made (to measure them before/after). Nothing here is used by the server: each is applied by
 * bench/steps/server.ts in a process of its own, before createApp, and keeps the rules of the code it replaces.
 */
import { syncBuiltinESMExports } from "node:module";
import perfHooks from "node:perf_hooks";
import { Redis } from "ioredis";
import { MAX_MESSAGE_ID_LENGTH } from "../../src/client/protocol.js";
import { AFTER_FLUSH } from "../../src/engine/coalesce.js";
import { socketIoEngine } from "../../src/engine/engine-io.js";
import { RoomFeed } from "../../src/history/feeds.js";
import { APPEND_COMMAND } from "../../src/history/redis-log.js";
import { MAX_MESSAGE_BYTES, roomMessage } from "../../src/schemas.js";

const ROOM = /^[A-Za-z0-9_.:-]{1,64}$/;
// A UTF-16 string of n code units is at most 3n bytes in UTF-8: below this length no byte count is needed.
const SURELY_SHORT = Math.floor(MAX_MESSAGE_BYTES / 3);

type RoomMessageInput = { room: string; message: string; id?: string };

/**
 * The rules of `roomMessage` (src/schemas.ts) checked by hand for the accepted case; anything it does not accept
 * goes to zod, so a rejection's message is zod's, word for word. Returns what zod's parse returns (a new object
 * with the known keys only), or zod's failure.
 */
export function parseRoomMessage(value: unknown): ReturnType<typeof roomMessage.safeParse> {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const { room, message, id } = value as Record<string, unknown>;
    if (
      typeof room === "string" &&
      ROOM.test(room) &&
      typeof message === "string" &&
      (message.length <= SURELY_SHORT || Buffer.byteLength(message) <= MAX_MESSAGE_BYTES) &&
      (id === undefined || (typeof id === "string" && id.length >= 1 && id.length <= MAX_MESSAGE_ID_LENGTH))
    ) {
      const data: RoomMessageInput = id === undefined ? { room, message } : { room, message, id };
      return { success: true, data } as ReturnType<typeof roomMessage.safeParse>;
    }
  }
  return roomMessage.safeParse(value);
}

const DEFERRED = Symbol.for("realtime-server.deferred-flush");

interface FlushingSocket {
  readyState: string;
  flush(): void;
  [AFTER_FLUSH]?: (socket: FlushingSocket) => void;
}

/**
 * `deferFlushToEndOfTick` of src/engine/coalesce.ts with `setImmediate` in place of `queueMicrotask`: the flush runs
 * once this turn of the event loop has run every callback and microtask, so what a handler sends after an `await`
 * (an acknowledgement after the sender's own copy) joins the same write. Installed on socket.io's engine.io before
 * `coalesceWebSocketWrites`, which then keeps it (it sees the deferred-flush marker) and adds the cork as shipped.
 */
export function deferFlushToImmediate(): void {
  const engine = socketIoEngine();
  if (!engine.ok) throw new Error(engine.reason);
  const proto = engine.module.Socket?.prototype as (FlushingSocket & Record<symbol, unknown>) | undefined;
  if (!proto || typeof proto.flush !== "function") throw new Error("engine.io has no Socket.prototype.flush");
  if (proto[DEFERRED]) throw new Error("a deferred flush is already installed");
  const flushNow = proto.flush;
  const pending = new Set<FlushingSocket>();
  let scheduled = false;
  const flushPending = () => {
    scheduled = false;
    for (const socket of pending) {
      pending.delete(socket);
      flushNow.call(socket);
      socket[AFTER_FLUSH]?.(socket);
    }
  };
  proto.flush = function (this: FlushingSocket) {
    if (this.readyState !== "open") return flushNow.call(this);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flushPending);
    }
    pending.add(this);
  };
  proto[DEFERRED] = true;
}

/**
 * The event-loop delay monitors of src/metrics.ts (its own `monitorEventLoopDelay` and prom-client's
 * `collectDefaultMetrics`) at `resolutionMs`, whatever src/metrics.ts asks for: perf_hooks is wrapped before
 * createMetrics runs. `eventLoopMonitorsAt(10)` is the code before 63807dc (each sample is a timer that wakes an
 * idle process; src/metrics.ts now samples every EVENT_LOOP_SAMPLE_MS, 100 ms).
 */
export function eventLoopMonitorsAt(resolutionMs: number): void {
  const hooks = perfHooks as { monitorEventLoopDelay: typeof perfHooks.monitorEventLoopDelay };
  const original = hooks.monitorEventLoopDelay;
  hooks.monitorEventLoopDelay = (options) => original({ ...options, resolution: resolutionMs });
  syncBuiltinESMExports();
}

type Options = { autoPipeliningIgnoredCommands?: string[]; commandTimeout?: number };
type DefineCommand = (this: { options: Options }, name: string, definition: object) => void;

/** Runs `change` on a connection's options when it defines the room log's append script. */
function onAppendConnection(change: (options: Options) => void): void {
  const proto = Redis.prototype as unknown as { defineCommand: DefineCommand };
  const define = proto.defineCommand;
  proto.defineCommand = function (name, definition) {
    if (name === APPEND_COMMAND) change(this.options);
    return define.call(this, name, definition);
  };
}

/**
 * The code before 9b62c74: the room log's append (`rtAppend`) goes through ioredis's auto-pipeline again, as every
 * other command of the command connection (src/redis.ts now lists it in `autoPipeliningIgnoredCommands`).
 */
export function appendsAutoPipelined(): void {
  onAppendConnection((options) => {
    options.autoPipeliningIgnoredCommands = (options.autoPipeliningIgnoredCommands ?? []).filter(
      (command) => command !== APPEND_COMMAND,
    );
  });
}

/**
 * Not a proposal as such: the command connection without ioredis's `commandTimeout` (REDIS_COMMAND_TIMEOUT_MS),
 * which arms and clears a `setTimeout` for every command. What this saves bounds what a cheaper way of keeping
 * the same guarantee could save (one deadline sweep for all commands in flight, armed only while there are some).
 */
export function withoutPerCommandTimers(): void {
  onAppendConnection((options) => {
    options.commandTimeout = undefined;
  });
}

interface Waiter {
  epoch: string;
  offset: number;
  since: number;
  resolve: () => void;
}

interface FeedInternals {
  waiters: Waiter[];
  waitTimer: ReturnType<typeof setInterval> | undefined;
  passed(epoch: string, offset: number): boolean;
  settleWaiters(expiredBefore?: number): void;
}

/**
 * `RoomFeed.settleWaiters` of src/history/feeds.ts with one condition changed: the 250 ms interval that bounds an
 * acknowledgement's wait (DELIVERED_WAIT_MS) is cleared by its own tick or by `stop()` once no waiter is left, not
 * by the delivery that settles the last waiter. While messages flow, one interval serves them all instead of one
 * `setInterval` + `clearInterval` per acknowledged message; it outlives the last waiter by 250 ms at most.
 */
export function lazyWaitTimer(): void {
  const proto = RoomFeed.prototype as unknown as FeedInternals;
  proto.settleWaiters = function (this: FeedInternals, expiredBefore = 0) {
    const still: Waiter[] = [];
    for (const waiter of this.waiters) {
      if (waiter.since < expiredBefore || this.passed(waiter.epoch, waiter.offset)) waiter.resolve();
      else still.push(waiter);
    }
    this.waiters = still;
    if (still.length === 0 && this.waitTimer && expiredBefore !== 0) {
      clearInterval(this.waitTimer);
      this.waitTimer = undefined;
    }
  };
}

/**
 * A flush of an open socket with nothing queued returns at once, as Engine.IO's own flush does, instead of being
 * deferred and followed by the after-flush hook. Engine.IO calls flush on every "ready" of the transport, i.e. after
 * each completed write: at one packet per tick every delivery costs `deferFlushToEndOfTick` two rounds (the packet,
 * then the empty flush that follows its write). The hook has nothing to add there: nothing was queued, and the
 * websocket's buffer only shrank since the last check. Applied on top of `coalesceWebSocketWrites`.
 */
export function skipEmptyFlush(): void {
  const engine = socketIoEngine();
  if (!engine.ok) throw new Error(engine.reason);
  const proto = engine.module.Socket?.prototype as
    (FlushingSocket & { writeBuffer?: unknown[] } & Record<symbol, unknown>) | undefined;
  if (!proto?.[DEFERRED]) throw new Error("skipEmptyFlush goes on top of the deferred flush");
  const flush = proto.flush;
  proto.flush = function (this: FlushingSocket & { writeBuffer?: unknown[] }) {
    if (this.readyState === "open" && this.writeBuffer?.length === 0) return;
    return flush.call(this);
  };
}
