import { roomMessage, roomName } from "../schemas.js";
import { defineEvent, EventError, type AppContext, type EventListeners, type TypedSocket } from "./handler.js";

// User rooms live under a prefix so that no client can join another socket's private room (its id).
const PREFIX = "room:";

export const roomKey = (room: string): string => PREFIX + room;

export function joinedRooms(rooms: Set<string>): string[] {
  const names: string[] = [];
  for (const room of rooms) if (room.startsWith(PREFIX)) names.push(room.slice(PREFIX.length));
  return names;
}

// Built-in adapters join synchronously; answering in the same tick keeps `room-joined` ahead of
// whatever the client sent next (the example client sends a room message right after joining).
function after<T>(pending: Promise<void> | void, then: () => T): T | Promise<T> {
  return pending instanceof Promise ? pending.then(then) : then();
}

function requireMember(socket: TypedSocket, room: string): string {
  const key = roomKey(room);
  if (!socket.rooms.has(key)) throw new EventError("NOT_A_MEMBER", `not a member of room "${room}"`);
  return key;
}

export function roomEvents(app: AppContext): EventListeners {
  const { io, log } = app;
  return [
    defineEvent(app, "join-room", roomName, (socket, room) =>
      after(socket.join(roomKey(room)), () => {
        socket.emit("room-joined", room);
        log.debug({ socket: socket.id, room }, "joined room");
        return { room };
      }),
    ),

    defineEvent(app, "leave-room", roomName, (socket, room) =>
      after(socket.leave(requireMember(socket, room)), () => {
        socket.emit("room-left", room);
        log.debug({ socket: socket.id, room }, "left room");
        return { room };
      }),
    ),

    defineEvent(app, "room-message", roomMessage, (socket, { room, message }) => {
      io.to(requireMember(socket, room)).emit("room-message-received", { from: socket.id, room, message });
      return undefined;
    }),

    defineEvent(
      app,
      "room-members",
      roomName,
      async (_socket, room) => {
        // fetchSockets asks every replica through the adapter: presence is cluster-wide.
        const sockets = await io.in(roomKey(room)).fetchSockets();
        return { room, members: sockets.map((s) => s.id) };
      },
      { ackRequired: true },
    ),
  ];
}
