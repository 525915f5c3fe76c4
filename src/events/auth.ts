import { z } from "zod";
import { defineEvent, type AppContext, type EventRegistry } from "./handler.js";

const refreshRequest = z.object(
  { token: z.string({ error: "token must be a string" }).min(1, "token must not be empty").max(16_384) },
  { error: "expected { token }" },
);

export function authEvents(app: AppContext): Pick<EventRegistry, "auth-refresh"> {
  return {
    // Before the connection's token expires: same `sub` only; the new `rooms` claim applies at once.
    "auth-refresh": defineEvent(app, "auth-refresh", refreshRequest, (socket, { token }) =>
      app.auth.refresh(socket, token),
    ),
  };
}
