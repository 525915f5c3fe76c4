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
  "INVALID_PAYLOAD" | "NOT_A_MEMBER" | "ACK_REQUIRED" | "UNKNOWN_EVENT" | "STORE_UNAVAILABLE" | "INTERNAL";

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

/**
 * A position in a room's history: the last offset seen in one epoch. A room without history yet is at
 * `{ epoch: null, offset: 0 }`.
 */
export interface RoomPosition {
  epoch: string | null;
  offset: number;
}

/** A room message as members receive it, live or replayed: offsets are 1, 2, 3 … within one epoch. */
export interface RoomMessage {
  from: string;
  room: string;
  message: string;
  /** The sender's idempotency key, or one the server made. */
  id: string;
  offset: number;
  epoch: string;
}

export interface RoomMessageRequest {
  room: string;
  message: string;
  /** Idempotency key (≤ 64 chars): a resend with the same id is acknowledged once and delivered once. */
  id?: string;
}

export interface JoinRoomRequest {
  room: string;
  /** Replay what was missed after this position (up to 100 messages, before the ack). */
  since?: RoomPosition;
}

export interface JoinRoomResult {
  room: string;
  /** The room's latest position. */
  epoch: string | null;
  offset: number;
  /** Whether every message after `since` was (or can be, with room-history) delivered. */
  recovered: boolean;
  /** Messages replayed before this ack. */
  missed: number;
}

export interface RoomHistoryRequest {
  room: string;
  since: RoomPosition;
  /** At most 100 (the default). */
  limit?: number;
}

export interface RoomHistoryResult {
  room: string;
  epoch: string | null;
  offset: number;
  recovered: boolean;
  messages: RoomMessage[];
}

export interface ServerInfo {
  replica: string;
  socketId: string;
  rooms: string[];
}

export interface ClientToServerEvents {
  echo: (payload?: unknown, ack?: Ack) => void;
  broadcast: (message: string, ack?: Ack) => void;
  "join-room": (room: string | JoinRoomRequest, ack?: Ack<JoinRoomResult>) => void;
  "leave-room": (room: string, ack?: Ack<{ room: string }>) => void;
  "room-message": (payload: RoomMessageRequest, ack?: Ack<{ room: string; epoch: string; offset: number }>) => void;
  "room-history": (request: RoomHistoryRequest, ack: Ack<RoomHistoryResult>) => void;
  "get-time": (ack?: Ack<{ time: string }>) => void;
  "update-list": (list: unknown[], ack?: Ack<{ count: number }>) => void;
  chat: (message: string, ack?: Ack) => void;
  "server-info": (ack: Ack<ServerInfo>) => void;
  "room-members": (room: string, ack: Ack<{ room: string; members: string[]; partial: boolean }>) => void;
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
} as const satisfies Record<ClientEventName, true>;

export const CLIENT_EVENTS = Object.keys(CLIENT_EVENT_FLAGS) as readonly ClientEventName[];

const CLIENT_EVENT_SET = new Set<string>(CLIENT_EVENTS);
/** Whether a name a client sent is one of the contract's events. */
export const isClientEvent = (name: string): name is ClientEventName => CLIENT_EVENT_SET.has(name);
