/**
 * Gap-free room delivery on top of a socket.io-client socket: every room message reaches the application once
 * and in offset order, across reconnects, and every loss the server can no longer repair is reported as a gap.
 *
 * Browser-safe: no Node API, only types from socket.io-client, ids from `globalThis.crypto.randomUUID()`.
 */
import type { Socket } from "socket.io-client";
import {
  HISTORY_PAGE_LIMIT,
  type JoinRoomAck,
  type JoinRoomRequest,
  type RoomHistoryAck,
  type RoomHistoryRequest,
  type RoomMessageAck,
  type RoomMessageReceived,
  type RoomMessageRequest,
  type RoomPosition,
} from "./protocol.js";
import { manageTokens, type TokenOptions } from "./tokens.js";

/**
 * Why messages were skipped:
 * - `epoch-changed`: the room's history was lost (the server answers in another epoch, or none);
 * - `history-trimmed`: the history no longer reaches back to the last delivered offset;
 * - `position-ahead`: the last delivered offset is beyond the room's latest (the server lost messages).
 */
export type GapReason = "epoch-changed" | "history-trimmed" | "position-ahead";

export interface RoomGap {
  room: string;
  /** The last position delivered to the application. */
  from: RoomPosition;
  /** Where delivery resumes: the next message delivered is `to.offset + 1` in `to.epoch`. */
  to: RoomPosition;
  reason: GapReason;
}

/** Where a sent message landed in its room's history. */
export type SentPosition = Pick<RoomMessageAck, "epoch" | "offset">;

export interface ReliableRoomsOptions {
  /** Each room message, exactly once and in offset order per room. */
  onMessage: (message: RoomMessageReceived) => void;
  /** Messages that can no longer be delivered; delivery goes on at `gap.to`. */
  onGap?: (gap: RoomGap) => void;
  /** Each acknowledged join, the first and every rejoin (observability: how much was replayed, from where). */
  onJoin?: (ack: JoinRoomAck) => void;
  /** Failures with no caller to reject (a rejoin refused, a throwing callback). Default: `console.error`. */
  onError?: (error: Error) => void;
  /** How long to wait for each acknowledgement. Default 5000 ms. */
  ackTimeoutMs?: number;
  /** First retry delay while connected; doubles on each retry up to `maxRetryDelayMs`. Default 250 ms. */
  retryDelayMs?: number;
  /** Default 5000 ms. */
  maxRetryDelayMs?: number;
  /**
   * The application's tokens (AUTH_MODE optional/required): asked before every (re)connect and when the
   * token expired; with `refreshBeforeExpiryMs` (default 30 s) the helper sends `auth-refresh` ahead of expiry.
   * Create the helper before the socket connects, so that the first connect carries a token too.
   */
  getToken?: TokenOptions["getToken"];
  refreshBeforeExpiryMs?: number;
}

export interface ReliableRooms {
  /**
   * Joins `room`, replaying what was missed after `since` when given (a position saved from an earlier session).
   * Resolves once the room's messages up to its position at join are delivered (or reported as a gap). A room
   * already joined keeps its own position (`since` is ignored).
   */
  join(room: string, since?: RoomPosition): Promise<void>;
  /** Leaves `room` and forgets its position. */
  leave(room: string): Promise<void>;
  /**
   * Sends a message with a fresh idempotency key, resent with the same key until acknowledged. Rejects with a
   * `ReliableRoomsError` on a final error code (not a member, invalid payload …). The server remembers a key for
   * its dedupe window (120 s): a message still unacknowledged after that long could be stored twice.
   */
  send(room: string, message: string): Promise<SentPosition>;
  /** The last position delivered to the application, for a joined room. */
  position(room: string): RoomPosition | undefined;
  /** Removes the helper's listeners and rejects whatever is pending; the socket stays connected. */
  close(): void;
}

/** A failure answered by the server (its error code), or one of the helper's own: `TIMEOUT`, `LEFT`, `CLOSED`, `UNSUPPORTED_SERVER`. */
export class ReliableRoomsError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly room?: string,
  ) {
    super(message);
    this.name = "ReliableRoomsError";
  }
}

// The outcome of an emit with an ack: `no-answer` (timeout, disconnect) means the server may or may not have acted.
type Outcome<T> =
  { kind: "ok"; value: T } | { kind: "failed"; code: string; message: string } | { kind: "no-answer"; reason: string };

type AckPayload<T> = ({ ok: true } & T) | { ok: false; error: { code: string; message: string } };

// Codes after which the same request may succeed later: the store was unreachable or the server stumbled.
const RETRYABLE = new Set(["STORE_UNAVAILABLE", "INTERNAL"]);

interface Waiter {
  resolve: () => void;
  reject: (error: Error) => void;
}

interface RoomState {
  name: string;
  /** Last delivered position; `epoch` is null until the room has history. */
  epoch: string | null;
  offset: number;
  /** Highest offset known to exist in `epoch`: anything between `offset` and it must be paged. */
  latest: number;
  /** `live` only once this connection's join is acknowledged: until then messages are buffered. */
  phase: "offline" | "joining" | "live";
  /** False until the first join ack (or a given `since`): the first join delivers only what comes after it. */
  hasBaseline: boolean;
  /** Bumped by every (re)join, disconnect and leave: answers to older requests are ignored. */
  attempt: number;
  filling: boolean;
  retries: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Messages of `epoch` after `offset`, by offset, waiting for the ones before them. */
  pending: Map<number, RoomMessageReceived>;
  /** Messages of another epoch (or any, while `epoch` is null), in arrival order. */
  foreign: RoomMessageReceived[];
  /** Epochs left behind: their late messages are dropped. */
  retired: Set<string>;
  waiters: Waiter[];
}

interface PendingSend {
  request: Required<RoomMessageRequest>;
  resolve: (position: SentPosition) => void;
  reject: (error: Error) => void;
  /** Bumped by every emit and disconnect: answers to older emits are ignored. */
  attempt: number;
  inFlight: boolean;
  retries: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** Wraps `socket` (connected or not); rooms are joined through `join`, not with raw `join-room` emits. */
export function createReliableRooms(socket: Socket, options: ReliableRoomsOptions): ReliableRooms {
  const ackTimeoutMs = options.ackTimeoutMs ?? 5000;
  const retryDelayMs = options.retryDelayMs ?? 250;
  const maxRetryDelayMs = options.maxRetryDelayMs ?? 5000;
  const reportError = options.onError ?? ((error: Error) => console.error(error));
  const rooms = new Map<string, RoomState>();
  const sends = new Map<string, PendingSend>();
  let closed = false;

  const detachTokens =
    options.getToken &&
    manageTokens(socket, {
      getToken: options.getToken,
      refreshBeforeExpiryMs: options.refreshBeforeExpiryMs,
      ackTimeoutMs,
      retryDelayMs,
      maxRetryDelayMs,
      reportError,
      error: (code, message) => new ReliableRoomsError(code, message),
    });

  const backoff = (retries: number) => Math.min(retryDelayMs * 2 ** retries, maxRetryDelayMs);

  function request<T>(event: string, payload: unknown): Promise<Outcome<T>> {
    return new Promise((resolve) => {
      socket.timeout(ackTimeoutMs).emit(event, payload, (err: Error | null, answer: AckPayload<T>) => {
        if (err) resolve({ kind: "no-answer", reason: err.message });
        else if (answer.ok) resolve({ kind: "ok", value: answer });
        else resolve({ kind: "failed", code: answer.error.code, message: answer.error.message });
      });
    });
  }

  // ---- delivery ----

  /** Runs an application callback: its failure must not stop delivery of the next messages, nor stay silent. */
  function callApp(callback: () => void): void {
    try {
      callback();
    } catch (err) {
      reportError(err instanceof Error ? err : new Error(String(err)));
    }
  }

  function deliver(state: RoomState, message: RoomMessageReceived): void {
    state.offset = message.offset;
    callApp(() => options.onMessage(message));
  }

  function reportGap(state: RoomState, from: RoomPosition, reason: GapReason): void {
    const to = { epoch: state.epoch, offset: state.offset };
    callApp(() => options.onGap?.({ room: state.name, from, to, reason }));
  }

  /** Files a message by epoch; duplicates (offset ≤ delivered) and messages of abandoned epochs are dropped. */
  function intake(state: RoomState, message: RoomMessageReceived): void {
    if (state.retired.has(message.epoch)) return;
    if (state.epoch === null || message.epoch !== state.epoch) {
      state.foreign.push(message);
    } else if (message.offset > state.offset) {
      state.pending.set(message.offset, message);
      state.latest = Math.max(state.latest, message.offset);
    }
  }

  /** Moves to `epoch` at offset 0; buffered messages are filed again (the old epoch's are dropped). */
  function switchEpoch(state: RoomState, epoch: string | null, gap: GapReason | null): void {
    const from = { epoch: state.epoch, offset: state.offset };
    if (state.epoch !== null) state.retired.add(state.epoch);
    state.epoch = epoch;
    state.offset = 0;
    state.latest = 0;
    refile(state);
    if (gap) reportGap(state, from, gap);
  }

  function refile(state: RoomState): void {
    const buffered = [...state.foreign, ...state.pending.values()];
    state.foreign = [];
    state.pending = new Map();
    for (const message of buffered) intake(state, message);
  }

  /** Skips forward (or back) within the epoch to `offset`, after a loss the history cannot repair. */
  function jumpTo(state: RoomState, offset: number, reason: GapReason): void {
    const from = { epoch: state.epoch, offset: state.offset };
    state.offset = offset;
    state.latest = Math.max(state.latest, offset);
    for (const key of state.pending.keys()) if (key <= offset) state.pending.delete(key);
    reportGap(state, from, reason);
  }

  function drain(state: RoomState): void {
    for (;;) {
      let next = state.pending.get(state.offset + 1);
      while (next) {
        state.pending.delete(next.offset);
        deliver(state, next);
        next = state.pending.get(state.offset + 1);
      }
      // A hole in the current epoch is filled from history first; another epoch is followed only after that.
      const first = state.foreign[0];
      if (state.pending.size > 0 || state.latest > state.offset || !first) return;
      // Nothing delivered yet in a null epoch means nothing was lost: adopt the new epoch silently.
      switchEpoch(state, first.epoch, state.epoch === null ? null : "epoch-changed");
    }
  }

  const needsFill = (state: RoomState) => state.epoch !== null && state.latest > state.offset;

  /** Delivers what can be delivered, then pages the rest; settles `join` waiters once caught up. */
  function pump(state: RoomState): void {
    if (state.phase !== "live" || rooms.get(state.name) !== state) return;
    drain(state);
    if (needsFill(state)) {
      if (!state.filling && state.timer === undefined) void fill(state);
      return;
    }
    for (const waiter of state.waiters.splice(0)) waiter.resolve();
  }

  function onLive(message: RoomMessageReceived): void {
    const state = rooms.get(message.room);
    if (!state) return;
    intake(state, message);
    pump(state);
  }

  // ---- history ----

  async function fill(state: RoomState): Promise<void> {
    if (!socket.connected || state.epoch === null) return;
    state.filling = true;
    const attempt = state.attempt;
    const since: RoomPosition = { epoch: state.epoch, offset: state.offset };
    const body: RoomHistoryRequest = { room: state.name, since, limit: HISTORY_PAGE_LIMIT };
    const outcome = await request<RoomHistoryAck>("room-history", body);
    if (attempt !== state.attempt) return; // rejoined, disconnected or left meanwhile: that path takes over
    state.filling = false;
    if (outcome.kind === "ok") {
      onHistory(state, since, outcome.value);
      // A page that moved nothing forward (a server answering oddly) must not turn into a busy loop.
      if (state.epoch === since.epoch && state.offset === since.offset && !state.pending.has(since.offset + 1)) {
        retryLater(state, () => pump(state));
        return;
      }
      state.retries = 0;
    } else if (outcome.kind === "failed" && outcome.code === "NOT_A_MEMBER") {
      // The server no longer counts this socket as a member: join again, from the same position.
      void startJoin(state);
      return;
    } else if (outcome.kind === "failed" && !RETRYABLE.has(outcome.code)) {
      const error = new ReliableRoomsError(outcome.code, `room-history: ${outcome.message}`, state.name);
      const waiters = state.waiters.splice(0);
      for (const waiter of waiters) waiter.reject(error);
      if (waiters.length === 0) reportError(error);
      return;
    } else {
      retryLater(state, () => pump(state));
      return;
    }
    pump(state);
  }

  function onHistory(state: RoomState, since: RoomPosition, page: RoomHistoryAck): void {
    if (state.epoch !== since.epoch) return; // the epoch moved on while the page was on its way
    if (page.recovered) {
      if (page.epoch !== state.epoch) switchEpoch(state, page.epoch, null);
      for (const message of page.messages) intake(state, message);
      if (page.epoch !== null) state.latest = Math.max(state.latest, page.offset);
      return;
    }
    if (state.offset !== since.offset) return; // delivery moved on meanwhile: ask again from there
    unrecoverable(state, page.epoch, page.offset);
  }

  /** The server cannot replay from the held position: report the gap and go on from what it still has. */
  function unrecoverable(state: RoomState, epoch: string | null, latest: number): void {
    if (epoch !== state.epoch) {
      // History lost: start over from the new epoch's first message (paged if the server still has it).
      switchEpoch(state, epoch, "epoch-changed");
      if (epoch !== null) state.latest = Math.max(state.latest, latest);
    } else if (state.offset > latest) {
      jumpTo(state, latest, "position-ahead");
    } else {
      // Trimmed: go on from the oldest message at hand, or from the latest when none is.
      const oldest = Math.min(...state.pending.keys(), latest + 1);
      jumpTo(state, oldest - 1, "history-trimmed");
    }
  }

  // ---- joining ----

  function newRoom(name: string, since: RoomPosition | undefined): RoomState {
    return {
      name,
      epoch: since?.epoch ?? null,
      offset: since?.offset ?? 0,
      latest: since?.offset ?? 0,
      phase: "offline",
      hasBaseline: since !== undefined,
      attempt: 0,
      filling: false,
      retries: 0,
      timer: undefined,
      pending: new Map(),
      foreign: [],
      retired: new Set(),
      waiters: [],
    };
  }

  function clearTimer(holder: { timer: ReturnType<typeof setTimeout> | undefined }): void {
    if (holder.timer !== undefined) clearTimeout(holder.timer);
    holder.timer = undefined;
  }

  /** Retries after a backoff while connected; once disconnected, the next `connect` retries everything. */
  function retryLater(state: RoomState, again: () => void): void {
    if (!socket.connected) return;
    clearTimer(state);
    state.timer = setTimeout(() => {
      state.timer = undefined;
      again();
    }, backoff(state.retries++));
  }

  async function startJoin(state: RoomState): Promise<void> {
    clearTimer(state);
    const attempt = ++state.attempt;
    state.filling = false;
    state.phase = "offline";
    if (!socket.connected || closed) return; // the `connect` listener joins
    state.phase = "joining";
    const since = state.hasBaseline ? { epoch: state.epoch, offset: state.offset } : undefined;
    const body: JoinRoomRequest = since ? { room: state.name, since } : { room: state.name };
    const outcome = await request<JoinRoomAck>("join-room", body);
    if (attempt !== state.attempt || rooms.get(state.name) !== state) return;
    if (outcome.kind === "ok" && typeof outcome.value.offset !== "number") {
      failJoin(state, "UNSUPPORTED_SERVER", "join-room ack carries no offset: the server has no room history");
    } else if (outcome.kind === "ok") {
      state.retries = 0;
      callApp(() => options.onJoin?.(outcome.value));
      onJoined(state, since, outcome.value);
      flushSends(state.name);
      pump(state);
    } else if (outcome.kind === "failed" && !RETRYABLE.has(outcome.code)) {
      failJoin(state, outcome.code, outcome.message);
    } else {
      state.phase = "offline";
      retryLater(state, () => void startJoin(state));
    }
  }

  function onJoined(state: RoomState, since: RoomPosition | undefined, ack: JoinRoomAck): void {
    state.phase = "live";
    if (!since) {
      // First join: delivery starts after the room's position at join; what came before is not ours.
      state.hasBaseline = true;
      state.epoch = ack.epoch;
      state.offset = ack.offset;
      state.latest = ack.offset;
      refile(state);
    } else if (ack.recovered) {
      // Everything after `since` was replayed or can be paged; a null epoch means the room is empty.
      if (ack.epoch !== state.epoch) switchEpoch(state, ack.epoch, null);
      if (ack.epoch !== null) state.latest = Math.max(state.latest, ack.offset);
    } else {
      unrecoverable(state, ack.epoch, ack.offset);
    }
  }

  function failJoin(state: RoomState, code: string, message: string): void {
    rooms.delete(state.name);
    state.attempt++;
    const error = new ReliableRoomsError(code, `join-room: ${message}`, state.name);
    const waiters = state.waiters.splice(0);
    for (const waiter of waiters) waiter.reject(error);
    if (waiters.length === 0) reportError(error); // a rejoin nobody awaits
    flushSends(state.name);
  }

  // ---- sending ----

  function emitSend(send: PendingSend): void {
    clearTimer(send);
    const { room, id } = send.request;
    if (closed || sends.get(id) !== send || !socket.connected) return; // resent on `connect`
    // A room being (re)joined is not ready for messages yet: they go out once its join is acknowledged.
    if (rooms.get(room) !== undefined && rooms.get(room)?.phase !== "live") return;
    const attempt = ++send.attempt;
    send.inFlight = true;
    void request<RoomMessageAck>("room-message", send.request).then((outcome) => {
      if (attempt !== send.attempt || sends.get(id) !== send) return;
      send.inFlight = false;
      if (outcome.kind === "ok") {
        sends.delete(id);
        send.resolve({ epoch: outcome.value.epoch, offset: outcome.value.offset });
      } else if (outcome.kind === "failed" && outcome.code !== "STORE_UNAVAILABLE") {
        sends.delete(id);
        send.reject(new ReliableRoomsError(outcome.code, `room-message: ${outcome.message}`, room));
      } else if (socket.connected) {
        // Outcome unknown: the same id again, so that a message already stored is acked, not stored twice.
        send.timer = setTimeout(() => emitSend(send), backoff(send.retries++));
      }
    });
  }

  /** Sends what waits for `room` (every room when omitted): not in flight and not waiting for a backoff. */
  function flushSends(room?: string): void {
    for (const send of sends.values()) {
      if ((room === undefined || send.request.room === room) && !send.inFlight && send.timer === undefined) {
        emitSend(send);
      }
    }
  }

  // ---- connection ----

  function onConnect(): void {
    // Rejoin everything with `since`; each room's unacknowledged messages are resent after its join ack.
    for (const state of rooms.values()) void startJoin(state);
    flushSends();
  }

  function onDisconnect(): void {
    for (const state of rooms.values()) {
      clearTimer(state);
      state.attempt++;
      state.phase = "offline";
      state.filling = false;
    }
    // Acks of the old connection never come: every message in flight is resent after the reconnect.
    for (const send of sends.values()) {
      clearTimer(send);
      send.attempt++;
      send.inFlight = false;
    }
  }

  socket.on("room-message-received", onLive);
  socket.on("connect", onConnect);
  socket.on("disconnect", onDisconnect);

  return {
    join(room, since) {
      if (closed) return Promise.reject(new ReliableRoomsError("CLOSED", "the helper is closed", room));
      let state = rooms.get(room);
      const joinNow = state === undefined;
      if (!state) {
        state = newRoom(room, since);
        rooms.set(room, state);
      }
      const joined = new Promise<void>((resolve, reject) => state.waiters.push({ resolve, reject }));
      if (joinNow) void startJoin(state);
      else pump(state);
      return joined;
    },

    async leave(room) {
      const state = rooms.get(room);
      if (state) {
        rooms.delete(room);
        clearTimer(state);
        state.attempt++;
        const error = new ReliableRoomsError("LEFT", `left room "${room}"`, room);
        for (const waiter of state.waiters.splice(0)) waiter.reject(error);
      }
      // Socket.IO drops a disconnected socket's rooms: there is nothing to leave.
      if (!socket.connected) return;
      const left = request<{ room: string }>("leave-room", room);
      flushSends(room); // after the leave: what was waiting for the room is refused, not silently kept
      const outcome = await left;
      if (outcome.kind === "ok" || (outcome.kind === "failed" && outcome.code === "NOT_A_MEMBER")) return;
      if (outcome.kind === "no-answer" && !socket.connected) return;
      const code = outcome.kind === "failed" ? outcome.code : "TIMEOUT";
      const reason = outcome.kind === "failed" ? outcome.message : outcome.reason;
      throw new ReliableRoomsError(code, `leave-room: ${reason}`, room);
    },

    send(room, message) {
      if (closed) return Promise.reject(new ReliableRoomsError("CLOSED", "the helper is closed", room));
      return new Promise<SentPosition>((resolve, reject) => {
        const id = globalThis.crypto.randomUUID();
        const send: PendingSend = {
          request: { room, message, id },
          resolve,
          reject,
          attempt: 0,
          inFlight: false,
          retries: 0,
          timer: undefined,
        };
        sends.set(id, send);
        emitSend(send);
      });
    },

    position(room) {
      const state = rooms.get(room);
      return state && { epoch: state.epoch, offset: state.offset };
    },

    close() {
      if (closed) return;
      closed = true;
      detachTokens?.();
      socket.off("room-message-received", onLive);
      socket.off("connect", onConnect);
      socket.off("disconnect", onDisconnect);
      const error = new ReliableRoomsError("CLOSED", "the helper is closed");
      for (const state of rooms.values()) {
        clearTimer(state);
        state.attempt++;
        for (const waiter of state.waiters.splice(0)) waiter.reject(error);
      }
      rooms.clear();
      for (const send of sends.values()) {
        clearTimer(send);
        send.reject(error);
      }
      sends.clear();
    },
  };
}
