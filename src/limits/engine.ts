import { ServerResponse, STATUS_CODES, type IncomingMessage } from "node:http";
import type { Socket as NetSocket } from "node:net";
import type { TypedServer } from "../events/handler.js";
import type { Logger } from "../logger.js";
import { originPolicy } from "./origin.js";

export interface EngineGuardOptions {
  maxConnections: number;
  maxPacketsPerPoll: number;
  corsOrigins: readonly string[] | "*";
  replicaId: string;
  log: Logger;
  /** Counts one refusal by its code. */
  refused: (code: RefusalCode) => void;
}

type EngineRequest = IncomingMessage & { _query?: Record<string, string | undefined> };
/** What Engine.IO passes as `res` to middlewares for a websocket upgrade: a stand-in over the TCP socket. */
type UpgradeResponse = { socket?: NetSocket; end(): void };

export type RefusalCode = "ORIGIN_NOT_ALLOWED" | "TOO_MANY_CONNECTIONS" | "TOO_MANY_PACKETS";

const RECORD_SEPARATOR = 0x1e;

/**
 * Refusals at the Engine.IO layer, before a session exists: a foreign Origin (403), a replica at
 * MAX_CONNECTIONS (429), a long-polling POST carrying more than MAX_PACKETS_PER_POLL packets (413, and the
 * session is closed). Never 5xx: nginx takes a 502/503 for a dead replica and would move every polling
 * session away from a healthy one. Registered with io.engine.use (Engine.IO's middleware hook), which
 * runs for every polling request and websocket upgrade before Engine.IO looks at the session.
 */
export function guardEngine(io: TypedServer, options: EngineGuardOptions): void {
  const { maxConnections, maxPacketsPerPoll, replicaId, log, refused } = options;
  const allows = originPolicy(options.corsOrigins);
  let warnedUpgrade = false;
  // Engine.IO documents `clients` (sessions by id) though its typings mark it protected.
  const sessions = () =>
    (io.engine as unknown as { clients: Record<string, { close(discard?: boolean): void }> }).clients;

  const refuse = (res: ServerResponse | UpgradeResponse, status: number, code: RefusalCode, message: string) => {
    refused(code);
    const body = JSON.stringify({ error: { code, message } });
    if (res instanceof ServerResponse) {
      if (res.headersSent) return void res.end();
      res.writeHead(status, { "Content-Type": "application/json", "X-Replica-Id": replicaId });
      res.end(body);
      return;
    }
    // An upgrade: Engine.IO's stand-in ignores writeHead and destroys the socket on end(), so a refused
    // websocket would see a reset instead of a status. Answer on the TCP socket it wraps (a private field:
    // checked, and test/limits.test.ts fails if it changes).
    const socket = res.socket;
    if (!socket || typeof socket.end !== "function") {
      if (!warnedUpgrade) log.warn("engine.io upgrade response has no socket: refusals are bare resets");
      warnedUpgrade = true;
      return res.end();
    }
    socket.on("error", () => undefined);
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
        `X-Replica-Id: ${replicaId}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  };

  /** Counts the packets of a polling POST as its body streams in; past the limit, answers 413 and closes. */
  const countPackets = (req: EngineRequest, res: ServerResponse, sid: string) => {
    const ownData = new Set(req.listeners("data"));
    const ownEnd = new Set(req.listeners("end"));
    let packets = 1;
    const onData = (chunk: Buffer | string) => {
      const buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      for (let i = buf.indexOf(RECORD_SEPARATOR); i !== -1; i = buf.indexOf(RECORD_SEPARATOR, i + 1)) {
        if (++packets <= maxPacketsPerPoll) continue;
        req.off("data", onData);
        // The polling transport's own listeners would decode the payload and answer 200: drop them.
        for (const l of req.listeners("data")) if (!ownData.has(l)) req.off("data", l as () => void);
        for (const l of req.listeners("end")) if (!ownEnd.has(l)) req.off("end", l as () => void);
        req.resume();
        log.warn({ sid, limit: maxPacketsPerPoll }, "MAX_PACKETS_PER_POLL: polling payload refused, session closed");
        refuse(res, 413, "TOO_MANY_PACKETS", `more than ${maxPacketsPerPoll} packets in one request`);
        // Closed once the body is read: closing now would destroy the request and reset the answer.
        const close = () => sessions()[sid]?.close(true);
        if (req.readableEnded) close();
        else req.once("end", close);
        return;
      }
    };
    req.on("data", onData);
  };

  io.engine.use((req: EngineRequest, res: ServerResponse | UpgradeResponse, next: (err?: Error) => void) => {
    if (!allows(req.headers.origin)) {
      log.info({ origin: req.headers.origin?.slice(0, 64) }, "engine.io request from a foreign origin refused");
      return refuse(res, 403, "ORIGIN_NOT_ALLOWED", "this origin is not allowed (CORS_ORIGIN)");
    }
    // Engine.IO parses the query before its middlewares (`_query`); parse it ourselves if that changes.
    const sid = req._query ? req._query.sid : new URL(req.url ?? "/", "http://x").searchParams.get("sid");
    if (!sid) {
      if (io.engine.clientsCount >= maxConnections) {
        return refuse(res, 429, "TOO_MANY_CONNECTIONS", `this replica is at MAX_CONNECTIONS (${maxConnections})`);
      }
    } else if (req.method === "POST" && res instanceof ServerResponse) {
      countPackets(req, res, sid);
    }
    next();
  });
}
