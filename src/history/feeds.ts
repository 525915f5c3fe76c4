import type { RoomMessage, RoomPosition } from "../contract.js";
import type { Logger } from "../logger.js";
import { isOlderEpoch, type HistoryPage, type RoomLog } from "./log.js";

/** Delivers one entry to this replica's members of its room, except the sockets still being caught up. */
export type Deliver = (entry: RoomMessage, except: readonly string[]) => void;

type Emit = (entry: RoomMessage) => void;

/**
 * A socket that must not receive the room's broadcasts yet: while it joins, entries are buffered; once
 * released, entries up to `through` are ones it already has (from its replay), later ones are passed on,
 * until the feed itself has gone past `through` and the socket can take the room's broadcasts again.
 */
interface Holder {
  buffer: RoomMessage[] | null;
  emit?: Emit;
  epoch?: string | null;
  through?: number;
}

const PAGE = 100;
// Longest an acknowledgement waits for the sender's own copy (a feed that lags only delays, never blocks).
const DELIVERED_WAIT_MS = 1000;

interface Waiter {
  epoch: string;
  offset: number;
  since: number;
  resolve: () => void;
}
// How long after an append failed (outcome unknown: it may be stored) the feed reads the history for it.
const FAILED_APPEND_RESYNC_MS = 1000;
// A hole the history cannot fill within this many pages is skipped (and logged): members detect it themselves.
const MAX_FILL_PAGES = 20;

/**
 * The ordered stream of one room on this replica. Entries come from the log's live feed; a hole in the
 * offsets (a lost publish, a subscriber reconnect) is filled from the history before anything later is
 * delivered, so local members see offsets 1, 2, 3 … in order. Sockets that are joining are held: their
 * entries are buffered until their replay and join ack have gone out.
 */
export class RoomFeed {
  epoch: string | null = null;
  last = 0;
  ready: Promise<void> | undefined;
  private started = false;
  private busy = false;
  private resyncWanted = false;
  private readonly queue: RoomMessage[] = [];
  private readonly held = new Map<string, Holder>();
  private waiters: Waiter[] = [];
  private waitTimer: ReturnType<typeof setInterval> | undefined;
  /** The pending resync only looks for an append that failed: a read failure is not worth a warning per room. */
  private quietResync = false;
  private retry: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly room: string,
    private readonly log: RoomLog,
    private readonly deliverTo: Deliver,
    private readonly logger: Logger,
  ) {}

  /** Subscribes, then takes the room's latest position as its starting point. Retried after a failure. */
  start(): Promise<void> {
    this.ready ??= (async () => {
      await this.log.subscribe(this.room);
      const page = await this.log.read(this.room, null, 0);
      this.epoch = page.epoch;
      this.last = page.offset;
      this.started = true;
      void this.drain();
    })().catch((err: unknown) => {
      this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  push(entry: RoomMessage): void {
    // The common case, the next entry in order with nothing queued: delivered at once, without a drain.
    if (this.isNextInOrder(entry)) return this.deliver(entry);
    this.queue.push(entry);
    if (this.started && !this.busy) void this.drain();
  }

  /**
   * This replica's append to the room, settled: its entry reaches this feed only from here (the log sends the
   * appending replica no live copy, src/history/redis-log.ts). Stored: its entry is delivered now when next in
   * order, else once the entries before it are in (a copy delivered already is dropped). A duplicate (a resend
   * whose first reply was lost): the stored entry is read from the history unless this feed has it. Failed with
   * an unknown outcome: it may be stored all the same, so the history is read a second later (at most one such
   * read per feed at a time; a subscriber that reconnects reads it again, src/history/redis-log.ts).
   */
  settle(outcome: { entry: RoomMessage } | { duplicate: { epoch: string; offset: number } } | "failed"): void {
    if (outcome === "failed") {
      this.retry ??= setTimeout(() => {
        this.retry = undefined;
        // Redis is likely still away: the failure was logged (rate-limited) with the append's, not once per room.
        this.resync(true);
      }, FAILED_APPEND_RESYNC_MS);
      this.retry.unref();
    } else if ("entry" in outcome) {
      if (!this.has(outcome.entry.epoch, outcome.entry.offset)) this.push(outcome.entry);
    } else if (!this.has(outcome.duplicate.epoch, outcome.duplicate.offset)) {
      this.resync();
    }
  }

  /** Nothing is queued, filling or catching up, and `entry` directly follows the last one delivered. */
  private isNextInOrder(entry: RoomMessage): boolean {
    if (!this.started || this.busy || this.queue.length > 0 || this.resyncWanted) return false;
    return entry.epoch === this.epoch && entry.offset === this.last + 1;
  }

  /** Whether this feed has delivered `offset` of `epoch` already (a later copy of it would be dropped). */
  has(epoch: string, offset: number): boolean {
    return this.started && epoch === this.epoch && offset <= this.last;
  }

  /**
   * The live feed may have missed entries: read the history after `last` before anything else. `quiet`: a read
   * failure is logged at debug (it does not quiet a resync already asked for without it).
   */
  resync(quiet = false): void {
    this.quietResync = quiet && (this.quietResync || !this.resyncWanted);
    this.resyncWanted = true;
    if (this.started && !this.busy) void this.drain();
  }

  /** From now on, `socketId` gets nothing from the room's broadcasts: its entries are buffered. */
  hold(socketId: string): void {
    this.held.set(socketId, { buffer: [] });
  }

  firstHeld(socketId: string): RoomMessage | undefined {
    return this.held.get(socketId)?.buffer?.[0];
  }

  unhold(socketId: string): void {
    this.held.delete(socketId);
  }

  /**
   * Ends a hold: the buffered entries after `through` (in `epoch`) go to `emit` now, and so do later ones
   * until the room's broadcasts have caught up with what the socket already has.
   */
  release(socketId: string, epoch: string | null, through: number, emit: Emit): void {
    const holder = this.held.get(socketId);
    if (!holder) return;
    const buffered = holder.buffer ?? [];
    holder.buffer = null;
    holder.emit = emit;
    holder.epoch = epoch;
    holder.through = through;
    if (this.epoch !== epoch || this.last >= through) this.held.delete(socketId);
    for (const entry of buffered) if (entry.epoch !== epoch || entry.offset > through) emit(entry);
  }

  /** Resolves once this feed has delivered `offset` of `epoch` (or moved past that epoch), or after 1 s. */
  delivered(epoch: string, offset: number): Promise<void> | undefined {
    if (this.passed(epoch, offset)) return undefined;
    return new Promise<void>((resolve) => {
      this.waiters.push({ epoch, offset, since: Date.now(), resolve });
      this.waitTimer ??= setInterval(() => this.settleWaiters(Date.now() - DELIVERED_WAIT_MS), DELIVERED_WAIT_MS / 4);
    });
  }

  private passed(epoch: string, offset: number): boolean {
    return (this.epoch === epoch && this.last >= offset) || this.isBehind(epoch);
  }

  /**
   * An epoch before this feed's own: a history that was lost never comes back, so its late entries are dropped.
   * Epochs sort by creation time (src/history/log.ts), so the feed only ever moves on to a later one.
   */
  private isBehind(epoch: string): boolean {
    return this.epoch !== null && epoch !== this.epoch && isOlderEpoch(epoch, this.epoch);
  }

  /** Resolves the waiters whose entry went out, and those waiting since before `expiredBefore`. */
  private settleWaiters(expiredBefore = 0): void {
    const still: Waiter[] = [];
    for (const waiter of this.waiters) {
      if (waiter.since < expiredBefore || this.passed(waiter.epoch, waiter.offset)) waiter.resolve();
      else still.push(waiter);
    }
    this.waiters = still;
    if (still.length === 0 && this.waitTimer) {
      clearInterval(this.waitTimer);
      this.waitTimer = undefined;
    }
  }

  /** The feed is dropped: nobody waits for it any more. */
  stop(): void {
    clearTimeout(this.retry);
    this.settleWaiters(Number.POSITIVE_INFINITY);
  }

  get position(): RoomPosition {
    return { epoch: this.epoch, offset: this.last };
  }

  private async drain(): Promise<void> {
    this.busy = true;
    try {
      while (this.queue.length > 0 || this.resyncWanted) {
        if (this.resyncWanted) {
          const quiet = this.quietResync;
          this.resyncWanted = false;
          this.quietResync = false;
          await this.fill(Number.MAX_SAFE_INTEGER, quiet);
          continue;
        }
        const entry = this.queue[0] as RoomMessage;
        if (this.isBehind(entry.epoch)) {
          this.queue.shift();
          continue;
        }
        if (entry.epoch !== this.epoch) this.switchEpoch(entry.epoch);
        if (entry.offset <= this.last) {
          this.queue.shift();
        } else if (entry.offset === this.last + 1) {
          this.queue.shift();
          this.deliver(entry);
        } else {
          await this.fill(entry.offset - 1);
          if (this.last < entry.offset - 1) {
            this.logger.warn({ room: this.room, from: this.last, to: entry.offset - 1 }, "room feed skipped a hole");
            this.last = entry.offset - 1;
          }
        }
      }
    } finally {
      this.busy = false;
    }
  }

  /** Delivers the history after `last`, up to `target`, page by page. */
  private async fill(target: number, quiet = false): Promise<void> {
    for (let pages = 0; this.last < target && pages < MAX_FILL_PAGES; pages++) {
      let page: HistoryPage;
      try {
        page = await this.log.read(this.room, this.position, Math.min(PAGE, target - this.last));
      } catch (err) {
        const fields = { room: this.room, err: (err as Error).message };
        if (quiet) this.logger.debug(fields, "room feed cannot read history after a failed append");
        else this.logger.warn(fields, "room feed cannot read history");
        return;
      }
      if (!page.recovered) {
        if (page.epoch !== null && page.epoch !== this.epoch && !this.isBehind(page.epoch)) {
          // The history was lost and started again while this feed was not listening: follow the new one
          // from its start.
          this.switchEpoch(page.epoch);
          target = Number.MAX_SAFE_INTEGER;
          continue;
        }
        if (page.epoch === this.epoch && page.offset < this.last) {
          // The store is behind what this replica already delivered: it lost acknowledged messages. The
          // next append passes this feed's position, and the log starts a new epoch instead of reusing offsets.
          this.logger.error({ room: this.room, store: page.offset, delivered: this.last }, "room history rolled back");
        }
        return;
      }
      for (const entry of page.messages) if (entry.offset === this.last + 1) this.deliver(entry);
      if (page.messages.length === 0) return;
    }
  }

  private switchEpoch(epoch: string): void {
    if (this.epoch !== null) {
      this.logger.warn({ room: this.room, from: this.epoch, to: epoch }, "room epoch changed: history was lost");
    }
    this.epoch = epoch;
    this.last = 0;
  }

  private deliver(entry: RoomMessage): void {
    // A feed that started before the room had history learns its epoch from the first entry it delivers.
    this.epoch = entry.epoch;
    this.last = entry.offset;
    if (this.waiters.length > 0) this.settleWaiters();
    if (this.held.size === 0) return this.deliverTo(entry, []);
    this.deliverTo(entry, [...this.held.keys()]);
    for (const [socketId, holder] of this.held) {
      if (holder.buffer) {
        holder.buffer.push(entry);
        continue;
      }
      const newer = entry.epoch !== holder.epoch || entry.offset > (holder.through as number);
      if (newer) holder.emit?.(entry);
      if (newer || entry.offset === holder.through) this.held.delete(socketId);
    }
  }
}

/** Every room with members on this replica has one feed; it lives as long as the room has local members. */
export class RoomFeeds {
  private readonly feeds = new Map<string, RoomFeed>();

  constructor(
    private readonly log: RoomLog,
    private readonly deliver: Deliver,
    private readonly logger: Logger,
  ) {
    log.onEntry(
      (entry) => this.feeds.get(entry.room)?.push(entry),
      (room, epoch, offset) => this.feeds.get(room)?.has(epoch, offset) ?? true,
    );
    log.onResync(() => this.resyncAll());
  }

  /** Every feed catches up from the history: a subscription may have missed messages. */
  resyncAll(): void {
    for (const feed of this.feeds.values()) feed.resync();
  }

  get(room: string): RoomFeed | undefined {
    return this.feeds.get(room);
  }

  ensure(room: string): RoomFeed {
    let feed = this.feeds.get(room);
    if (!feed) {
      feed = new RoomFeed(room, this.log, this.deliver, this.logger);
      this.feeds.set(room, feed);
    }
    return feed;
  }

  /** The room has no local member any more. */
  drop(room: string): void {
    const feed = this.feeds.get(room);
    if (!feed) return;
    this.feeds.delete(room);
    feed.stop();
    this.log.unsubscribe(room);
  }
}
