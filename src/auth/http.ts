import type { RequestHandler, Response } from "express";
import type { Auth } from "./auth.js";
import { AuthFailure, type Identity } from "./verify.js";

const BEARER = /^Bearer[ \t]+([^\s]+)[ \t]*$/i;

function refuse(res: Response, status: 401 | 403, challenge: string, message: string): void {
  res.setHeader("WWW-Authenticate", challenge);
  res.status(status).json({ error: { code: status === 401 ? "UNAUTHORIZED" : "FORBIDDEN", message } });
}

/**
 * A route that needs `Authorization: Bearer <token>` whose space-separated `scope` holds `scope`: 401 without a
 * valid token, 403 without the scope. With `openWhenOff`, AUTH_MODE=off lets every request through (the seed's
 * POST /api/posts); otherwise the route stays closed when there is no key to verify with.
 */
export function requireScope(auth: Auth, scope: string, { openWhenOff = false } = {}): RequestHandler {
  return async (req, res, next) => {
    if (openWhenOff && auth.mode === "off") return next();
    const match = BEARER.exec(req.get("authorization") ?? "");
    if (!match?.[1]) return refuse(res, 401, 'Bearer realm="api"', "missing token: send Authorization: Bearer <token>");
    let identity: Identity;
    try {
      identity = await auth.verify(match[1]);
    } catch (err) {
      if (!(err instanceof AuthFailure)) throw err;
      return refuse(res, 401, 'Bearer realm="api", error="invalid_token"', err.message);
    }
    if (!identity.scopes.has(scope)) {
      const challenge = `Bearer realm="api", error="insufficient_scope", scope="${scope}"`;
      return refuse(res, 403, challenge, `the token's scope lacks "${scope}"`);
    }
    res.locals.user = identity.sub;
    next();
  };
}
