import type { RequestHandler } from "express";

/**
 * Whether a request's Origin may use this server. CORS headers only stop a browser from reading answers:
 * websocket handshakes and simple cross-origin POSTs still reach the server, so an allow-list must refuse
 * them outright. A request without Origin (curl, the Node client, server-to-server) is not a browser's
 * cross-site request and stays allowed.
 */
export function originPolicy(allowed: readonly string[] | "*"): (origin: string | undefined) => boolean {
  if (allowed === "*") return () => true;
  const set = new Set(allowed);
  return (origin) => origin === undefined || set.has(origin);
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** Refuses state-changing requests (POST, PUT, …) from origins outside the allow-list with 403. */
export function refuseForeignOrigins(allowed: readonly string[] | "*"): RequestHandler {
  const allows = originPolicy(allowed);
  return (req, res, next) => {
    if (SAFE_METHODS.has(req.method) || allows(req.headers.origin)) return next();
    res.status(403).json({
      error: { code: "ORIGIN_NOT_ALLOWED", message: "this origin is not allowed (CORS_ORIGIN)" },
    });
  };
}
