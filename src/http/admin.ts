import { Router } from "express";
import { z } from "zod";
import type { Auth } from "../auth/auth.js";
import { requireScope } from "../auth/http.js";
import type { Logger } from "../logger.js";
import { describeIssue } from "../schemas.js";

const disconnectRequest = z.object(
  { sub: z.string({ error: "sub must be a string" }).min(1, "sub must not be empty").max(256, "sub is too long") },
  { error: "expected a JSON object { sub }" },
);

/** Operator routes: a token whose `scope` holds `admin`, whatever AUTH_MODE (closed when it is off). */
export function adminRoutes(auth: Auth, log: Logger): Router {
  const router = Router();
  router.use("/api/admin", requireScope(auth, "admin"));

  // After a token is revoked upstream: its user's live connections go too, on every replica (through the
  // adapter). They are told by a server-side disconnect, after which socket.io-client does not reconnect.
  router.post("/api/admin/disconnect", (req, res) => {
    const parsed = disconnectRequest.safeParse(req.body);
    if (!parsed.success) {
      const { field, message } = describeIssue(parsed.error);
      res.status(400).json({ error: { code: "INVALID_BODY", message, ...(field ? { field } : {}) } });
      return;
    }
    const { sub } = parsed.data;
    log.info({ user: sub, by: res.locals.user as string }, "admin: disconnect user");
    auth.disconnectUser(sub);
    res.json({ sub });
  });
  return router;
}
