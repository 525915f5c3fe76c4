import { randomUUID } from "node:crypto";
import type { RoomMessage, RoomPosition } from "../contract.js";
import {
  covers,
  dedupeKey,
  type Appended,
  type HistoryLimits,
  type HistoryPage,
  type NewEntry,
  type RoomLog,
  toRoomMessage,
} from "./log.js";

interface Room {
  epoch: string;
  offset: number;
  /** Oldest first; at most `size`. */
  entries: RoomMessage[];
  /** id → offset and expiry, in insertion (hence expiry) order. */
  ids: Map<string, { offset: number; expires: number }>;
  expires: number;
}

const SWEEP_MS = 10_000;

const newEpoch = (at: number) => `${at.toString(16).padStart(12, "0")}-${randomUUID()}`;

/** The history of one process (`npm start` without Redis): same rules as the Redis log, no persistence. */
export function createMemoryLog(limits: HistoryLimits, now: () => number = Date.now): RoomLog {
  const rooms = new Map<string, Room>();
  const listeners: Array<(entry: RoomMessage) => void> = [];

  const live = (name: string): Room | undefined => {
    const room = rooms.get(name);
    if (room && room.expires <= now()) {
      rooms.delete(name);
      return undefined;
    }
    return room;
  };

  const forgetExpiredIds = (room: Room, at: number) => {
    for (const [id, seen] of room.ids) {
      if (seen.expires > at) break;
      room.ids.delete(id);
    }
  };

  // Rooms nobody writes to any more are freed even if nobody reads them again.
  const sweep = setInterval(() => {
    const at = now();
    for (const [name, room] of rooms) if (room.expires <= at) rooms.delete(name);
  }, SWEEP_MS);
  sweep.unref();

  return {
    append(entry: NewEntry): Promise<Appended> {
      const at = now();
      let room = live(entry.room);
      if (!room) {
        room = { epoch: newEpoch(at), offset: 0, entries: [], ids: new Map(), expires: 0 };
        rooms.set(entry.room, room);
      }
      forgetExpiredIds(room, at);
      const key = dedupeKey(entry);
      const seen = room.ids.get(key);
      if (seen) return Promise.resolve({ epoch: room.epoch, offset: seen.offset, duplicate: true });
      const offset = ++room.offset;
      const message = toRoomMessage(entry, entry.room, room.epoch, offset);
      room.entries.push(message);
      if (room.entries.length > limits.size) room.entries.shift();
      room.ids.set(key, { offset, expires: at + limits.dedupeWindowS * 1000 });
      room.expires = at + limits.ttlS * 1000;
      for (const listener of listeners) listener(message);
      return Promise.resolve({ epoch: room.epoch, offset, duplicate: false });
    },

    read(name: string, since: RoomPosition | null, limit: number): Promise<HistoryPage> {
      const room = live(name);
      const epoch = room?.epoch ?? null;
      const latest = room?.offset ?? 0;
      if (!since) return Promise.resolve({ epoch, offset: latest, recovered: false, messages: [] });
      const first = room?.entries[0]?.offset ?? latest + 1;
      if (!covers(since, epoch, latest, first)) {
        return Promise.resolve({ epoch, offset: latest, recovered: false, messages: [] });
      }
      if (!room) return Promise.resolve({ epoch, offset: latest, recovered: true, messages: [] });
      const start = since.offset + 1 - first;
      return Promise.resolve({
        epoch,
        offset: latest,
        recovered: true,
        messages: room.entries.slice(start, start + limit),
      });
    },

    subscribe: () => Promise.resolve(),
    unsubscribe: () => undefined,
    onEntry: (listener) => void listeners.push(listener),
    // One process: the feed is a function call and never misses anything.
    onResync: () => undefined,
    close: () => clearInterval(sweep),
  };
}
