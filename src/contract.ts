/**
 * The event contract, shared by the server, the tests, the example client and the load tests.
 */

export interface Post {
  id: string;
  title: string;
  body: string;
  createdAt: string;
}

export type ErrorCode = "INVALID_PAYLOAD" | "NOT_A_MEMBER" | "ACK_REQUIRED" | "UNKNOWN_EVENT" | "INTERNAL";

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

export interface RoomMessage {
  from: string;
  room: string;
  message: string;
}

export interface ServerInfo {
  replica: string;
  socketId: string;
  rooms: string[];
}

export interface ClientToServerEvents {
  echo: (payload?: unknown, ack?: Ack) => void;
  broadcast: (message: string, ack?: Ack) => void;
  "join-room": (room: string, ack?: Ack<{ room: string }>) => void;
  "leave-room": (room: string, ack?: Ack<{ room: string }>) => void;
  "room-message": (payload: { room: string; message: string }, ack?: Ack) => void;
  "get-time": (ack?: Ack<{ time: string }>) => void;
  "update-list": (list: unknown[], ack?: Ack<{ count: number }>) => void;
  chat: (message: string, ack?: Ack) => void;
  "server-info": (ack: Ack<ServerInfo>) => void;
  "room-members": (room: string, ack: Ack<{ room: string; members: string[] }>) => void;
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

export const CLIENT_EVENTS: readonly ClientEventName[] = [
  "echo",
  "broadcast",
  "join-room",
  "leave-room",
  "room-message",
  "get-time",
  "update-list",
  "chat",
  "server-info",
  "room-members",
];

const CLIENT_EVENT_SET = new Set<string>(CLIENT_EVENTS);
/** Whether a name a client sent is one of the contract's events. */
export const isClientEvent = (name: string): name is ClientEventName => CLIENT_EVENT_SET.has(name);
