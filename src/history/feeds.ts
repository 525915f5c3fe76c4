import type { RoomMessage, RoomPosition } from "../contract.js";
import type { Logger } from "../logger.js";
import type { HistoryPage, RoomLog } from "./log.js";

/** Delivers one entry to this replica's members of its room, except the sockets still being caught up. */
export type Deliver = (entry: RoomMessage, except: readonly string[]) => void;

const PAGE = 100;
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
  readonly held = new Map<string, RoomMessage[]>();

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
    this.queue.push(entry);
    if (this.started && !this.busy) void this.drain();
  }

  /** The live feed may have missed entries: read the history after `last` before anything else. */
  resync(): void {
    this.resyncWanted = true;
    if (this.started && !this.busy) void this.drain();
  }

  get position(): RoomPosition {
    return { epoch: this.epoch, offset: this.last };
  }

  private async drain(): Promise<void> {
    this.busy = true;
    try {
      while (this.queue.length > 0 || this.resyncWanted) {
        if (this.resyncWanted) {
          this.resyncWanted = false;
          await this.fill(Number.MAX_SAFE_INTEGER);
          continue;
        }
        const entry = this.queue[0] as RoomMessage;
        if (entry.epoch !== this.epoch) {
          if (this.epoch !== null) {
            this.logger.warn(
              { room: this.room, from: this.epoch, to: entry.epoch },
              "room epoch changed: history was lost",
            );
          }
          this.epoch = entry.epoch;
          this.last = 0;
        }
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
  private async fill(target: number): Promise<void> {
    for (let pages = 0; this.last < target && pages < MAX_FILL_PAGES; pages++) {
      let page: HistoryPage;
      try {
        page = await this.log.read(this.room, this.position, Math.min(PAGE, target - this.last));
      } catch (err) {
        this.logger.warn({ room: this.room, err: (err as Error).message }, "room feed cannot read history");
        return;
      }
      if (!page.recovered) {
        if (page.epoch === this.epoch && page.offset < this.last) {
          // The store is behind what this replica already delivered: it lost acknowledged messages.
          await this.log
            .markDiscontinuity(`room ${this.room} is at ${page.offset}, replica saw ${this.last}`)
            .catch((err: Error) => this.logger.error({ err: err.message }, "cannot mark history discontinuity"));
        }
        return;
      }
      for (const entry of page.messages) if (entry.offset === this.last + 1) this.deliver(entry);
      if (page.messages.length === 0) return;
    }
  }

  private deliver(entry: RoomMessage): void {
    this.last = entry.offset;
    this.deliverTo(entry, this.held.size > 0 ? [...this.held.keys()] : []);
    for (const buffer of this.held.values()) buffer.push(entry);
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
    log.onEntry((entry) => this.feeds.get(entry.room)?.push(entry));
    log.onResync(() => {
      for (const feed of this.feeds.values()) feed.resync();
    });
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
    if (this.feeds.delete(room)) this.log.unsubscribe(room);
  }
}
