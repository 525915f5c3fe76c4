/**
 * The room-history part of the event contract: positions, offsets and epochs. This file is the single source
 * of these types; src/contract.ts re-exports them for the server. Types only: it is safe in a browser bundle.
 *
 * Acknowledgement types are the success part only (`Ack<JoinRoomAck>` in the contract adds `ok`).
 */

/**
 * A position in a room's history: the last offset seen in one epoch. Offsets are 1, 2, 3 … with no holes
 * within an epoch; the epoch changes only when the room's history was lost. A room without history yet is at
 * `{ epoch: null, offset: 0 }`, which the server also accepts as `since` ("nothing seen yet").
 */
export interface RoomPosition {
  epoch: string | null;
  offset: number;
}

/** `room-message-received`: a room message as members receive it, live or replayed. */
export interface RoomMessageReceived {
  from: string;
  room: string;
  message: string;
  /** The sender's idempotency key, or one the server made. */
  id: string;
  offset: number;
  epoch: string;
}

/** `join-room`'s object form (the seed form is the plain room name). */
export interface JoinRoomRequest {
  room: string;
  /** Replay what was missed after this position: up to 100 messages, emitted before the ack. */
  since?: RoomPosition;
}

export interface JoinRoomAck {
  room: string;
  /** The room's latest position at join (`null`, 0 for a room without history). */
  epoch: string | null;
  offset: number;
  /** Whether every message after `since` was replayed or can be paged with `room-history`. */
  recovered: boolean;
  /** How many messages were replayed before this ack. */
  missed: number;
}

/** `room-history` (members only): the messages after `since`, oldest first. */
export interface RoomHistoryRequest {
  room: string;
  since: RoomPosition;
  /** At most 100, the default. */
  limit?: number;
}

export interface RoomHistoryAck {
  room: string;
  /** The room's latest position. */
  epoch: string | null;
  offset: number;
  /** `false` when the history no longer holds everything after `since` (then `messages` is empty). */
  recovered: boolean;
  messages: RoomMessageReceived[];
}

export interface RoomMessageRequest {
  room: string;
  message: string;
  /** Idempotency key (≤ 64 chars): a resend with the same id within the dedupe window is acked once and delivered once. */
  id?: string;
}

/** The message is in the room's history at this position. */
export interface RoomMessageAck {
  room: string;
  epoch: string;
  offset: number;
}

/** Most messages one `room-history` page (and one replay on join) carries. */
export const HISTORY_PAGE_LIMIT = 100;

/** Longest idempotency key the server accepts. */
export const MAX_MESSAGE_ID_LENGTH = 64;
