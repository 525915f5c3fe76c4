/**
 * The event contract, shared by the server, the tests, the example client and the load tests.
 */

export interface Post {
  id: string;
  title: string;
  body: string;
  createdAt: string;
}

export type ErrorCode =
  | "INVALID_PAYLOAD"
  | "NOT_A_MEMBER"
  | "ACK_REQUIRED"
  | "UNKNOWN_EVENT"
  | "STORE_UNAVAILABLE"
  | "INTERNAL"
  | "UNAUTHORIZED"
  | "FORBIDDEN"
  | "TOKEN_EXPIRED"
  | "TOO_MANY_ROOMS"
  | "RATE_LIMITED"
  | "SLOW_CONSUMER";

/** `connect_error`'s `data` when the handshake's token is refused (`err.data` in socket.io-client). */
export interface UnauthorizedData {
  code: "UNAUTHORIZED";
  reason: "missing" | "invalid" | "expired";
  message: string;
}

export interface ErrorPayload {
  event: string;
  code: ErrorCode;
  message: string;
}

export type AckFailure = { ok: false; error: { code: ErrorCode; message: string } };
export type AckResult<T extends object = object> = ({ ok: true } & T) | AckFailure;
export type Ack<T extends object = object> = (result: AckResult<T>) => void;

export interface BroadcastMessage {
  from: string;
  message: string;
}

import type {
  JoinRoomAck,
  JoinRoomRequest,
  RoomHistoryAck,
  RoomHistoryRequest,
  RoomMessageAck,
  RoomMessageReceived,
  RoomMessageRequest,
} from "./client/protocol.js";

// The room-history part of the contract lives beside the client helper (browser-safe, types only).
export type {
  JoinRoomAck,
  JoinRoomRequest,
  RoomHistoryAck,
  RoomHistoryRequest,
  RoomMessageAck,
  RoomMessageReceived,
  RoomMessageRequest,
  RoomPosition,
} from "./client/protocol.js";
/** A room message as members receive it (`room-message-received`). */
export type RoomMessage = RoomMessageReceived;

/**
 * How far a `broadcast` or `chat` went: every replica's clients, or this replica's only (Redis was away or the
 * cross-replica publish failed). They keep no history, so the ack is the only place a sender can learn it.
 */
export type Delivery = "local" | "cluster";

export interface ServerInfo {
  replica: string;
  socketId: string;
  rooms: string[];
}

export interface ClientToServerEvents {
  echo: (payload?: unknown, ack?: Ack) => void;
  broadcast: (message: string, ack?: Ack<{ delivered: Delivery }>) => void;
  "join-room": (room: string | JoinRoomRequest, ack?: Ack<JoinRoomAck>) => void;
  "leave-room": (room: string, ack?: Ack<{ room: string }>) => void;
  "room-message": (payload: RoomMessageRequest, ack?: Ack<RoomMessageAck>) => void;
  "room-history": (request: RoomHistoryRequest, ack: Ack<RoomHistoryAck>) => void;
  "get-time": (ack?: Ack<{ time: string }>) => void;
  "update-list": (list: unknown[], ack?: Ack<{ count: number }>) => void;
  chat: (message: string, ack?: Ack<{ delivered: Delivery }>) => void;
  "server-info": (ack: Ack<ServerInfo>) => void;
  "room-members": (
    room: string,
    ack: Ack<{ room: string; members: string[]; users: string[]; partial: boolean }>,
  ) => void;
  /** A fresh token for the same `sub`, before the connection's token expires. */
  "auth-refresh": (payload: { token: string }, ack?: Ack<{ exp: number | null }>) => void;
}

export interface ServerToClientEvents {
  "echo-response": (payload: unknown) => void;
  "broadcast-message": (data: BroadcastMessage) => void;
  "room-joined": (room: string) => void;
  "room-left": (room: string) => void;
  "room-message-received": (data: RoomMessage) => void;
  "current-time": (time: string) => void;
  "user-list": (list: unknown[]) => void;
  chat: (data: BroadcastMessage) => void;
  "post-created": (post: Post) => void;
  error: (error: ErrorPayload) => void;
}

export type ClientEventName = keyof ClientToServerEvents;

/**
 * Every client event, checked against the map above by the compiler: a name missing here, or one the map
 * does not have, fails the type check. The server registers a handler for each (see src/events/index.ts).
 */
const CLIENT_EVENT_FLAGS = {
  echo: true,
  broadcast: true,
  "join-room": true,
  "leave-room": true,
  "room-message": true,
  "room-history": true,
  "get-time": true,
  "update-list": true,
  chat: true,
  "server-info": true,
  "room-members": true,
  "auth-refresh": true,
} as const satisfies Record<ClientEventName, true>;

export const CLIENT_EVENTS = Object.keys(CLIENT_EVENT_FLAGS) as readonly ClientEventName[];

const CLIENT_EVENT_SET = new Set<string>(CLIENT_EVENTS);
/** Whether a name a client sent is one of the contract's events. */
export const isClientEvent = (name: string): name is ClientEventName => CLIENT_EVENT_SET.has(name);
