import type { TypedSocket } from "../events/handler.js";

/** Every authenticated socket is in its user's room, on whichever replica: the admin route empties it. */
export const userRoom = (sub: string): string => `user:${sub}`;

/** `from` of a socket's messages: its user id when authenticated, else its socket id. */
export const senderOf = (socket: TypedSocket): string => socket.data.user ?? socket.id;

/** The user whose idempotency keys a socket's room messages use; anonymous sockets share the room's. */
export const dedupeUserOf = (socket: TypedSocket): string | undefined => socket.data.user;
