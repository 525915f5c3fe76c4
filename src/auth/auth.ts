import type { ExtendedError } from "socket.io";
import type { Config } from "../config.js";
import type { UnauthorizedData } from "../contract.js";
import { EventError, type TypedServer, type TypedSocket } from "../events/handler.js";
import { joinedRooms, roomKey } from "../events/rooms.js";
import type { Logger } from "../logger.js";
import type { AuthMode } from "./config.js";
import { userRoom } from "./identity.js";
import { anyButPrivate, PRIVATE_ROOM_PREFIX, roomRule, type RoomRule } from "./room-access.js";
import { AuthFailure, createTokenVerifier, type Identity } from "./verify.js";

export interface Auth {
  readonly mode: AuthMode;
  /** Verifies a bearer token (REST); rejects with AuthFailure, always when authentication is off. */
  verify(token: string): Promise<Identity>;
  /** Throws FORBIDDEN when `socket` may not use `room` (join, members, history). */
  checkRoom(socket: TypedSocket, room: string): void;
  /** checkRoom, then TOO_MANY_ROOMS when the socket is already in MAX_ROOMS_PER_SOCKET other rooms. */
  checkJoin(socket: TypedSocket, room: string): void;
  /** `auth-refresh`: a new token of the same user replaces the connection's; rooms it no longer allows are left. */
  refresh(socket: TypedSocket, token: string): Promise<{ exp: number | null }>;
  /** Disconnects the user's sockets on every replica (through the adapter). */
  disconnectUser(sub: string): void;
}

interface Session {
  identity: Identity;
  rule: RoomRule;
  timer: ReturnType<typeof setTimeout> | undefined;
}

// setTimeout's longest delay (about 24.8 days): a later expiry is re-armed when this one fires.
const MAX_TIMER_MS = 2 ** 31 - 1;

function unauthorized(failure: AuthFailure): ExtendedError {
  const err: ExtendedError = new Error(failure.message);
  const data: UnauthorizedData = { code: "UNAUTHORIZED", reason: failure.reason, message: failure.message };
  err.data = data;
  return err;
}

/**
 * Authentication in the Socket.IO handshake (`auth: { token }`), the identity of each connection, its room
 * permissions and its token's expiry. Installs its middleware and connection listener on `io`.
 */
export function createAuth(config: Config, io: TypedServer, log: Logger): Auth {
  const { mode } = config.auth;
  const verifyToken = createTokenVerifier(config.auth);
  // Per connection, on this replica only: socket.data (shipped by fetchSockets) carries the user id alone.
  const sessions = new WeakMap<TypedSocket, Session>();

  const verify = (token: string): Promise<Identity> =>
    verifyToken ? verifyToken(token) : Promise.reject(new AuthFailure("invalid", "authentication is off (AUTH_MODE)"));

  function expire(socket: TypedSocket): void {
    log.info({ socket: socket.id, user: socket.data.user }, "token expired: disconnecting");
    socket.emit("error", { event: "auth", code: "TOKEN_EXPIRED", message: "token expired: reconnect with a new one" });
    // A server-side disconnect: socket.io-client does not reconnect on its own with the stale token.
    socket.disconnect();
  }

  function arm(socket: TypedSocket, session: Session): void {
    clearTimeout(session.timer);
    session.timer = undefined;
    const { exp } = session.identity;
    if (exp === undefined) return;
    const wait = Math.min(Math.max(exp * 1000 - Date.now(), 0), MAX_TIMER_MS);
    session.timer = setTimeout(() => {
      if (Date.now() < exp * 1000) arm(socket, session);
      else expire(socket);
    }, wait);
    session.timer.unref();
  }

  if (mode === "off") {
    log.warn("AUTH_MODE=off: every connection is anonymous and POST /api/posts is open to anyone");
  } else {
    io.use((socket, next) => {
      const token: unknown = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
      if (token === undefined || token === null || token === "") {
        if (mode === "optional") return next();
        return next(unauthorized(new AuthFailure("missing", "missing token: send auth: { token }")));
      }
      if (typeof token !== "string") return next(unauthorized(new AuthFailure("invalid", "token must be a string")));
      verify(token).then(
        (identity) => {
          socket.data.user = identity.sub;
          sessions.set(socket, { identity, rule: roomRule(identity.rooms), timer: undefined });
          next();
        },
        (err: unknown) => {
          const failure = err instanceof AuthFailure ? err : new AuthFailure("invalid", "token cannot be verified");
          log.debug({ reason: failure.reason, err: failure.message }, "handshake refused");
          next(unauthorized(failure));
        },
      );
    });
    io.on("connection", (socket) => {
      const session = sessions.get(socket);
      if (!session) return;
      void socket.join(userRoom(session.identity.sub));
      arm(socket, session);
      socket.once("disconnect", () => clearTimeout(session.timer));
    });
  }

  function checkRoom(socket: TypedSocket, room: string): void {
    const session = sessions.get(socket);
    if ((session?.rule ?? anyButPrivate)(room)) return;
    const why = !session && room.startsWith(PRIVATE_ROOM_PREFIX) ? "needs an authenticated connection" : "not allowed";
    throw new EventError("FORBIDDEN", `room "${room}": ${why}`);
  }

  return {
    mode,
    verify,
    checkRoom,

    checkJoin(socket, room) {
      checkRoom(socket, room);
      if (socket.rooms.has(roomKey(room))) return;
      if (joinedRooms(socket.rooms).length >= config.maxRoomsPerSocket) {
        throw new EventError("TOO_MANY_ROOMS", `at most ${config.maxRoomsPerSocket} rooms per connection`);
      }
    },

    async refresh(socket, token) {
      const session = sessions.get(socket);
      if (!session) throw new EventError("FORBIDDEN", "this connection is anonymous: reconnect with a token instead");
      let identity: Identity;
      try {
        identity = await verify(token);
      } catch (err) {
        if (err instanceof AuthFailure) throw new EventError("UNAUTHORIZED", err.message);
        throw err;
      }
      if (identity.sub !== session.identity.sub) throw new EventError("FORBIDDEN", "the token names another user");
      session.identity = identity;
      session.rule = roomRule(identity.rooms);
      if (socket.connected) arm(socket, session);
      for (const room of joinedRooms(socket.rooms)) {
        if (session.rule(room)) continue;
        await socket.leave(roomKey(room));
        socket.emit("room-left", room);
      }
      log.debug({ socket: socket.id, user: identity.sub, exp: identity.exp }, "token refreshed");
      return { exp: identity.exp ?? null };
    },

    disconnectUser(sub) {
      log.info({ user: sub }, "disconnecting user on every replica");
      io.in(userRoom(sub)).disconnectSockets();
    },
  };
}
