import type { Duplex } from "node:stream";
import type { Socket as EngineSocket } from "engine.io";
import type { TypedServer } from "../events/handler.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";

export interface DrainOptions {
  io: TypedServer;
  log: Logger;
  metrics: Metrics;
  /** Readiness off and handshakes refused, while existing sessions keep working. */
  delayMs: number;
  /** Then the remaining connections are closed, spread evenly over this window. */
  closeMs: number;
}

export interface Drain {
  draining(): boolean;
  /**
   * Starts draining (idempotent): readiness fails and new handshakes are refused at once; sessions keep working
   * for `delayMs`; then every connection gets a transport close (so its client reconnects, through the
   * balancer, to another replica), spread over `closeMs`. Resolves when the last one was closed.
   */
  start(): Promise<void>;
}

/** Time between two closing steps: fine enough to spread, coarse enough not to wake up for each socket. */
const CLOSE_TICK_MS = 20;

type EngineRequest = { _query?: { sid?: string } };

export function createDrain({ io, log, metrics, delayMs, closeMs }: DrainOptions): Drain {
  let started: Promise<void> | undefined;
  const refused = metrics.counter(
    "realtime_handshakes_refused_total",
    "Engine.IO handshakes refused (connection closed unanswered), by reason.",
    ["reason"],
  );
  const refusedDraining = refused.cell("draining");

  const engine = io.engine as unknown as { clients: Record<string, EngineSocket> };

  // The gate is an Engine.IO middleware so it sees both kinds of handshake: a polling GET and a websocket
  // upgrade without a session id. Requests of existing sessions (with `sid`) pass: they keep working.
  //
  // A handshake is refused by closing its connection without an answer. nginx treats that as `error`, which
  // every proxy_next_upstream setting retries (it is nginx's default, and nginx/nginx.conf keeps it while it
  // no longer retries http_503, so that a readiness or store 503 does not evict a live replica): the
  // handshake lands on another replica and the client never notices. A client without a balancer sees a
  // network error and reconnects with its backoff, i.e. to whatever answers next.
  io.engine.use((req: EngineRequest, res: { socket: Duplex | null }, next: (err?: unknown) => void) => {
    const sid = req._query?.sid;
    // A session this replica does not hold, while draining: its handshake was refused here and retried on
    // another replica, but an nginx worker that has not marked this one failed yet still routes its key here.
    // Refusing it the same way sends the request after its handshake (nginx retries in the same order).
    if (!started || (sid && sid in engine.clients)) return next();
    refusedDraining.value++;
    // A polling response or the websocket upgrade stand-in: both carry the TCP socket.
    res.socket?.destroy();
  });

  const closeGradually = () =>
    new Promise<void>((resolve) => {
      const sockets = Object.values(engine.clients);
      // Shuffled, so that no group of clients (the oldest, one room's) always goes first.
      for (let i = sockets.length - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [sockets[i], sockets[j]] = [sockets[j] as EngineSocket, sockets[i] as EngineSocket];
      }
      log.info({ connections: sockets.length, windowMs: closeMs }, "draining: closing connections gradually");
      const begin = Date.now();
      let closed = 0;
      const step = () => {
        // Socket i is due at (i + 1) / n of the window: the last one exactly at its end.
        const elapsed = Date.now() - begin;
        const due = closeMs === 0 ? sockets.length : Math.floor((elapsed / closeMs) * sockets.length);
        for (; closed < Math.min(due, sockets.length); closed++) {
          const socket = sockets[closed] as EngineSocket;
          // An Engine.IO close is a transport close for the client, which reconnects (a Socket.IO
          // disconnect would tell it not to).
          if (socket.readyState === "open") socket.close();
        }
        if (closed < sockets.length) return setTimeout(step, CLOSE_TICK_MS).unref();
        resolve();
      };
      step();
    });

  return {
    draining: () => started !== undefined,
    start() {
      started ??= (async () => {
        log.info(
          { connections: io.engine.clientsCount, delayMs, closeMs },
          "draining: not ready, refusing new handshakes, existing sessions keep working",
        );
        await new Promise((resolve) => setTimeout(resolve, delayMs).unref());
        await closeGradually();
        log.info("drained");
      })();
      return started;
    },
  };
}
