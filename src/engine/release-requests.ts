import { ServerResponse } from "node:http";
import type { Logger } from "../logger.js";

/** The parts of socket.io's `io.engine` used here. */
interface EngineServer {
  use?: (middleware: (req: unknown, res: { req?: unknown }, next: (err?: unknown) => void) => void) => void;
  on(event: "connection", listener: (rawSocket: { request?: unknown }) => void): unknown;
}

const warnSkipped = (log: Pick<Logger, "warn">, part: string, reason: string) =>
  log.warn(
    { patch: "release-handshake-requests", part, reason },
    `ENGINE_PATCH_SKIPPED: ${part} not released (${reason}); every connection keeps its handshake ` +
      "request in memory as long as it lives. Engine.IO works as before; check src/engine/release-requests.ts " +
      "against this engine.io version",
  );

/**
 * Engine.IO keeps the HTTP request that opened each session twice: as `rawSocket.request`, and, for
 * websocket upgrades, through the response stand-in whose close listener lives as long as the TCP
 * socket. Together about 2 KB per idle connection, and nothing here reads them after the handshake.
 * The middleware must stay the last one: setHeader on the stand-in needs its request. A hook or field
 * that is missing (a future Engine.IO) is left alone, with a warning on `log`.
 */
export function releaseHandshakeRequests(io: { engine: unknown }, log: Pick<Logger, "warn">): void {
  const engine = io.engine as EngineServer;
  if (typeof engine.use !== "function") {
    warnSkipped(log, "the websocket response stand-in's request", "io.engine.use (middlewares) is not a function");
  } else {
    let warned = false;
    engine.use((_req, res, next) => {
      next();
      // Polling requests get the real ServerResponse, which Engine.IO still answers through.
      if (res instanceof ServerResponse) return;
      if ("req" in res) res.req = null;
      else if (!warned) {
        warned = true;
        warnSkipped(log, "the websocket response stand-in's request", "the stand-in has no `req` field");
      }
    });
  }
  let warned = false;
  engine.on("connection", (rawSocket) => {
    if ("request" in rawSocket) rawSocket.request = null;
    else if (!warned) {
      warned = true;
      warnSkipped(log, "rawSocket.request", "the Engine.IO socket has no `request` field");
    }
  });
}
