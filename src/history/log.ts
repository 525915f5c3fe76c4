import type { RoomMessage, RoomPosition } from "../contract.js";

/**
 * Epochs start with their creation time (12 hex digits of milliseconds, from Redis's clock for the Redis
 * log), so a later epoch sorts after an earlier one: a late message of a lost history is recognised as such.
 */
export const isOlderEpoch = (epoch: string, than: string): boolean => epoch < than;

/** What a replica hands the log to append: the log gives it its epoch and offset. */
export interface NewEntry {
  room: string;
  id: string;
  from: string;
  message: string;
  /** An authenticated sender: its ids are deduplicated apart from other users' and anonymous ones. Not stored. */
  user?: string;
}

/**
 * The name under which an entry's id is remembered: `i:<id>` for anonymous senders (as before users existed),
 * `u:<length of user>:<user>:<id>` for a user, so that no id can stand for another sender's.
 */
export const dedupeKey = (entry: NewEntry): string =>
  entry.user === undefined ? `i:${entry.id}` : `u:${entry.user.length}:${entry.user}:${entry.id}`;

/** Whether this replica has delivered the entry at `offset` of `epoch` in `room` already. */
export type Delivered = (room: string, epoch: string, offset: number) => boolean;

/** A stored entry as members receive it; every path builds it here, so every copy has one shape. */
export const toRoomMessage = (
  entry: { from: string; message: string; id: string },
  room: string,
  epoch: string,
  offset: number,
): RoomMessage => ({ from: entry.from, room, message: entry.message, id: entry.id, offset, epoch });

export interface Appended {
  epoch: string;
  offset: number;
  /** The id was seen in this room within the dedupe window: nothing was appended or delivered again. */
  duplicate: boolean;
}

export interface HistoryPage {
  /** The room's latest position (`null`, 0 without history). */
  epoch: string | null;
  offset: number;
  /** Whether the history holds every message after `since` (then `messages` starts right after it). */
  recovered: boolean;
  messages: RoomMessage[];
}

export interface HistoryLimits {
  /** Newest messages kept per room. */
  size: number;
  /** Seconds a room's history lives after its last message. */
  ttlS: number;
  /** Seconds an id is remembered for deduplication. */
  dedupeWindowS: number;
}

/**
 * Per-room history with offsets, and the ordered live feed of appended entries: one source per room, so
 * every replica sees a room's messages in offset order. In memory for one process, in Redis for a cluster.
 */
export interface RoomLog {
  /**
   * Appends (or finds by id) a message. `known` is the newest position this replica has seen for the room:
   * a log behind it has lost acknowledged messages, and starts a new epoch rather than reuse offsets.
   * Rejects when the outcome is unknown (the store is unreachable): the caller retries with the same id.
   */
  append(entry: NewEntry, known: RoomPosition | undefined): Promise<Appended>;
  /** The messages after `since` (at most `limit`), or only the latest position when `since` is null. */
  read(room: string, since: RoomPosition | null, limit: number): Promise<HistoryPage>;
  /** Starts the live feed of a room; resolves once every later append will be seen. */
  subscribe(room: string): Promise<void>;
  unsubscribe(room: string): void;
  /**
   * Live entries, per room in offset order (a replica may still miss some: see onResync). `delivered` names
   * the ones this replica has delivered already (its own appends, from the append's reply): the log may drop
   * those unread.
   */
  onEntry(listener: (entry: RoomMessage) => void, delivered?: Delivered): void;
  /** The live feed may have missed entries (its connection was lost): every room should catch up. */
  onResync(listener: () => void): void;
  close(): void;
}

/**
 * Whether a history whose oldest kept offset is `first` and newest is `latest` (in `epoch`) holds every
 * message after `since`. A `since` without epoch means "nothing seen yet": offset 0 of whatever epoch.
 */
export function covers(since: RoomPosition, epoch: string | null, latest: number, first: number): boolean {
  if (epoch === null) return since.offset === 0;
  if (since.epoch !== null && since.epoch !== epoch) return false;
  if (since.epoch === null && since.offset !== 0) return false;
  if (since.offset > latest) return false;
  return since.offset === latest || since.offset + 1 >= first;
}
