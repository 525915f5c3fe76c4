import { randomUUID } from "node:crypto";
import type { JoinRoomAck, RoomMessage, RoomPosition } from "../contract.js";
import type { DirectFrames } from "../engine/direct-frames.js";
import type { RoomFeed } from "../history/feeds.js";
import { toRoomMessage, type HistoryPage } from "../history/log.js";
import { HISTORY_PAGE_LIMIT } from "../client/protocol.js";
import { joinRoom, roomHistory, roomMessage, roomMessageFast, roomName } from "../schemas.js";
import { dedupeUserOf, senderOf } from "../auth/identity.js";
import {
  defineEvent,
  EventError,
  ThenAfterAck,
  type AppContext,
  type EventRegistry,
  type TypedSocket,
} from "./handler.js";

// User rooms live under a prefix so that no client can join another socket's private room (its id).
const PREFIX = "room:";

export const roomKey = (room: string): string => PREFIX + room;

// socket.io-parser's PacketType.EVENT (the Socket.IO protocol's event packet).
const EVENT_PACKET = 2;

/** How long `room-members` waits for every replica's answer before it returns this replica's, marked partial. */
export const ROOM_MEMBERS_TIMEOUT_MS = 2000;

export function joinedRooms(rooms: Set<string>): string[] {
  const names: string[] = [];
  for (const room of rooms) if (room.startsWith(PREFIX)) names.push(room.slice(PREFIX.length));
  return names;
}

/**
 * A replay or history page stops at about 256 KiB (at least one message), far below the slow-consumer cap
 * (MAX_SOCKET_BUFFER_BYTES, 1 MiB by default): 100 messages of 16 KiB would trip it. The client pages on
 * from the last offset it got, the ack's `offset` telling it how far to go.
 */
export const PAGE_BYTES = 256 * 1024;

function withinBudget(messages: RoomMessage[]): RoomMessage[] {
  let bytes = 0;
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as RoomMessage;
    // UTF-16 length: bytes for ASCII, a third of them at worst (a page then stays under 768 KiB).
    bytes += m.message.length + m.from.length + m.id.length + m.epoch.length + 64;
    if (bytes > PAGE_BYTES && i > 0) return messages.slice(0, i);
  }
  return messages;
}

function requireMember(socket: TypedSocket, room: string): string {
  const key = roomKey(room);
  if (!socket.rooms.has(key)) throw new EventError("NOT_A_MEMBER", `not a member of room "${room}"`);
  return key;
}

/** Socket ids, and beside them the distinct user ids of the authenticated ones. */
function membersOf(sockets: ReadonlyArray<{ id: string; data: { user?: string } }>) {
  const users = new Set<string>();
  for (const s of sockets) if (s.data.user !== undefined) users.add(s.data.user);
  return { members: sockets.map((s) => s.id), users: [...users] };
}

const storeUnavailable = (what: string) =>
  new EventError("STORE_UNAVAILABLE", `${what}: the room history is unavailable, try again shortly`);

/** Keeps one feed per room with local members: created on the first join, dropped with the last member. */
export function watchRoomFeeds(app: AppContext): void {
  const adapter = app.io.of("/").adapter;
  adapter.on("delete-room", (key: string) => {
    if (key.startsWith(PREFIX)) app.feeds.drop(key.slice(PREFIX.length));
  });
  // A socket that leaves (or disconnects) while its join is still replaying is held no longer.
  adapter.on("leave-room", (key: string, socketId: string) => {
    if (key.startsWith(PREFIX)) app.feeds.get(key.slice(PREFIX.length))?.unhold(socketId);
  });
}

/**
 * What the live feed delivers: one broadcast to the room's local members, minus the held ones. With `frames`,
 * the packet is encoded and framed once, and written straight to each idle websocket member
 * (src/engine/direct-frames.ts); the other members get it the usual way, through the broadcast.
 */
export function deliverLocally(
  app: AppContext,
  frames?: DirectFrames,
): (entry: RoomMessage, except: readonly string[]) => void {
  // Built once: `io.local` makes a new operator on every read, and this runs once per room message per replica.
  const local = app.io.local;
  const nsp = app.io.of("/");
  const broadcast = (entry: RoomMessage, except: readonly string[]) => {
    const target = local.to(roomKey(entry.room));
    (except.length > 0 ? target.except(except as string[]) : target).emit("room-message-received", entry);
  };
  if (!frames) return broadcast;
  return (entry, except) => {
    const members = nsp.adapter.rooms.get(roomKey(entry.room));
    if (!members) return;
    const encoded = app.io.encoder.encode({
      type: EVENT_PACKET,
      nsp: "/",
      data: ["room-message-received", entry],
    }) as unknown[];
    if (encoded.length !== 1 || typeof encoded[0] !== "string") return broadcast(entry, except);
    const frame = frames.frame(encoded[0]);
    let others: string[] | undefined;
    for (const id of members) {
      if (except.length > 0 && except.includes(id)) continue;
      const socket = nsp.sockets.get(id);
      if (!socket) continue;
      // A socket with outgoing listeners (the admin UI) hears its packets through Socket.IO.
      if (socket.listenersAnyOutgoing().length > 0 || !frames.write(socket.conn, frame)) (others ??= []).push(id);
    }
    if (others) local.to(others).emit("room-message-received", entry);
  };
}

export function roomEvents(
  app: AppContext,
): Pick<EventRegistry, "join-room" | "leave-room" | "room-message" | "room-history" | "room-members"> {
  const { io, log, history, feeds } = app;

  async function replayAndJoin(
    socket: TypedSocket,
    room: string,
    feed: RoomFeed,
    since: RoomPosition | undefined,
  ): Promise<ThenAfterAck> {
    let page: HistoryPage | undefined;
    try {
      await feed.start();
      if (since) page = await history.read(room, since, HISTORY_PAGE_LIMIT);
    } catch (err) {
      feed.unhold(socket.id);
      void socket.leave(roomKey(room));
      app.limited.log("warn", "join:store", { err: (err as Error).message }, "join failed: room history unavailable");
      throw storeUnavailable("not joined");
    }
    if (!socket.connected || !socket.rooms.has(roomKey(room))) {
      feed.unhold(socket.id);
      throw new EventError("NOT_A_MEMBER", `left room "${room}" before the join completed`);
    }
    let result: JoinRoomAck;
    // The socket receives live messages after `from` (in `epoch`); older held ones it has already, or
    // never needed.
    let from: number;
    if (page?.recovered) {
      const replay = withinBudget(page.messages);
      for (const entry of replay) socket.emit("room-message-received", entry);
      from = replay.at(-1)?.offset ?? (since as RoomPosition).offset;
      result = { room, epoch: page.epoch, offset: page.offset, recovered: true, missed: replay.length };
    } else if (page) {
      from = page.offset;
      result = { room, epoch: page.epoch, offset: page.offset, recovered: false, missed: 0 };
    } else {
      // Without `since` the socket starts where the feed stands, or before the first entry it holds.
      const first = feed.firstHeld(socket.id);
      from = first ? first.offset - 1 : feed.last;
      result = { room, epoch: first ? first.epoch : feed.epoch, offset: from, recovered: false, missed: 0 };
    }
    socket.emit("room-joined", room);
    log.debug({ socket: socket.id, room, since, recovered: result.recovered, missed: result.missed }, "joined room");
    return new ThenAfterAck(result, () =>
      feed.release(socket.id, result.epoch, from, (entry) => socket.emit("room-message-received", entry)),
    );
  }

  return {
    // Membership applies at once (before any await), the replay and the ack follow.
    "join-room": defineEvent(app, "join-room", joinRoom, (socket, { room, since }) => {
      app.auth.checkJoin(socket, room);
      const joined = socket.join(roomKey(room));
      const feed = feeds.ensure(room);
      feed.hold(socket.id);
      return (joined instanceof Promise ? joined : Promise.resolve()).then(() =>
        replayAndJoin(socket, room, feed, since),
      );
    }),

    "leave-room": defineEvent(app, "leave-room", roomName, async (socket, room) => {
      const key = requireMember(socket, room);
      feeds.get(room)?.unhold(socket.id);
      await socket.leave(key);
      socket.emit("room-left", room);
      log.debug({ socket: socket.id, room }, "left room");
      return { room };
    }),

    // A promise chain rather than an async function: one message per tick at chat rates, each await a hop.
    "room-message": defineEvent(
      app,
      "room-message",
      roomMessage,
      (socket, { room, message, id }) => {
        requireMember(socket, room);
        const feed = feeds.get(room);
        // The id reaches members as sent; an authenticated sender's ids are deduplicated per user.
        const entry = { room, id: id ?? randomUUID(), from: senderOf(socket), message, user: dedupeUserOf(socket) };
        return history.append(entry, feed?.position).then(
          ({ epoch, offset, duplicate }) => {
            const result = { room, epoch, offset };
            // This replica's members get the message from the reply (src/history/feeds.ts), now when it is next in
            // order, else once the entries before it are in; either way the ack follows the sender's own copy.
            feed?.settle(
              duplicate ? { duplicate: { epoch, offset } } : { entry: toRoomMessage(entry, room, epoch, offset) },
            );
            const delivered = feed?.delivered(epoch, offset);
            return delivered ? delivered.then(() => result) : result;
          },
          (err: Error) => {
            feed?.settle("failed");
            // Once a second with a count, not once per message (a Redis outage fails every one).
            app.limited.log(
              "warn",
              "room-message:store",
              { err: err.message },
              "room messages not stored (outcome unknown)",
            );
            throw storeUnavailable("outcome unknown, resend with the same id");
          },
        );
      },
      { fast: roomMessageFast },
    ),

    "room-history": defineEvent(
      app,
      "room-history",
      roomHistory,
      async (socket, { room, since, limit }) => {
        app.auth.checkRoom(socket, room);
        requireMember(socket, room);
        let page: HistoryPage;
        try {
          page = await history.read(room, since, limit ?? HISTORY_PAGE_LIMIT);
        } catch {
          throw storeUnavailable("no history");
        }
        return { room, ...page, messages: withinBudget(page.messages) };
      },
      { ackRequired: true },
    ),

    "room-members": defineEvent(
      app,
      "room-members",
      roomName,
      async (socket, room) => {
        app.auth.checkRoom(socket, room);
        // fetchSockets asks every replica through the adapter: presence is cluster-wide. When a replica or
        // Redis does not answer in time, the members this replica knows are returned, marked partial.
        try {
          const sockets = await io.in(roomKey(room)).timeout(ROOM_MEMBERS_TIMEOUT_MS).fetchSockets();
          return { room, ...membersOf(sockets), partial: false };
        } catch (err) {
          app.limited.log(
            "warn",
            "room-members:partial",
            { err: (err as Error).message },
            "room-members: not every replica answered",
          );
          const sockets = await io.local.in(roomKey(room)).fetchSockets();
          return { room, ...membersOf(sockets), partial: true };
        }
      },
      { ackRequired: true },
    ),
  };
}
