/**
 * Tokens for a socket.io-client socket, from the application: one before every (re)connect, a new one and a
 * reconnect when the server says the token expired, and optionally `auth-refresh` ahead of expiry.
 *
 * Browser-safe: no Node API (`atob`, `TextDecoder`, timers only).
 */
import type { Socket } from "socket.io-client";

export interface TokenOptions {
  /** The application's token source, asked before every (re)connect and every refresh. */
  getToken: () => Promise<string>;
  /**
   * Sends `auth-refresh` with a new token this long before the current one's `exp` (read from the token,
   * unverified). Default 30000 ms; 0 turns it off (the server then drops the connection at expiry, and a new
   * token is fetched for the reconnect).
   */
  refreshBeforeExpiryMs?: number;
}

interface Settings extends TokenOptions {
  ackTimeoutMs: number;
  retryDelayMs: number;
  maxRetryDelayMs: number;
  reportError: (error: Error) => void;
  /** Errors carry a code: the helper's own error class. */
  error: (code: string, message: string) => Error;
}

/** The `exp` claim (seconds) of a compact JWT, decoded without verifying anything; undefined when absent. */
export function decodeTokenExpiry(token: string): number | undefined {
  const part = token.split(".")[1];
  if (!part) return undefined;
  try {
    const base64 = part
      .replace(/-/g, "+")
      .replace(/_/g, "/")
      .padEnd(Math.ceil(part.length / 4) * 4, "=");
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes)) as { exp?: unknown };
    return typeof claims.exp === "number" ? claims.exp : undefined;
  } catch {
    return undefined;
  }
}

interface ConnectErrorData {
  code?: unknown;
  reason?: unknown;
}

/** Installs the token handling on `socket`; returns what removes it. */
export function manageTokens(socket: Socket, settings: Settings): () => void {
  const refreshBeforeMs = settings.refreshBeforeExpiryMs ?? 30_000;
  let current: string | undefined;
  let expiredNotice = false;
  let retries = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let detached = false;

  const clearTimer = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };
  const later = (ms: number, then: () => void) => {
    clearTimer();
    timer = setTimeout(() => {
      timer = undefined;
      then();
    }, ms);
  };

  // Called by socket.io-client on every connection attempt, the reconnections included.
  socket.auth = (send: (data: object) => void) => {
    settings.getToken().then(
      (token) => {
        current = token;
        send({ token });
      },
      (err: unknown) => {
        // Without a token the server refuses (or, in optional mode, accepts anonymously): never hang the connect.
        settings.reportError(settings.error("UNAUTHORIZED", `getToken failed: ${(err as Error)?.message ?? err}`));
        current = undefined;
        send({});
      },
    );
  };

  function scheduleRefresh(previousExp?: number): void {
    clearTimer();
    const exp = current === undefined ? undefined : decodeTokenExpiry(current);
    // A token no later than the one it replaces would refresh in a loop: let the expiry path take over.
    if (refreshBeforeMs <= 0 || exp === undefined || (previousExp !== undefined && exp <= previousExp)) return;
    later(Math.max(exp * 1000 - refreshBeforeMs - Date.now(), 0), () => void refresh(exp));
  }

  async function refresh(exp: number): Promise<void> {
    let token: string;
    try {
      token = await settings.getToken();
    } catch (err) {
      settings.reportError(settings.error("UNAUTHORIZED", `getToken failed: ${(err as Error)?.message ?? err}`));
      return;
    }
    if (detached || !socket.connected) return;
    socket
      .timeout(settings.ackTimeoutMs)
      .emit(
        "auth-refresh",
        { token },
        (err: Error | null, answer: { ok: boolean; error?: { code: string; message: string } }) => {
          if (detached) return;
          if (err || !answer.ok) {
            const code = answer?.error?.code ?? "TIMEOUT";
            settings.reportError(settings.error(code, `auth-refresh: ${answer?.error?.message ?? err?.message}`));
            return;
          }
          current = token;
          scheduleRefresh(exp);
        },
      );
  }

  const onConnect = () => {
    retries = 0;
    expiredNotice = false;
    scheduleRefresh();
  };

  // A refused handshake is not retried by socket.io-client: an expired token is replaced and the connect
  // retried (with a backoff, in case the source keeps handing out stale ones); any other refusal is reported.
  const onConnectError = (err: Error & { data?: ConnectErrorData }) => {
    if (err.data?.code !== "UNAUTHORIZED") return; // transport failures: the manager reconnects by itself
    if (err.data.reason === "expired") {
      later(Math.min(settings.retryDelayMs * 2 ** retries++, settings.maxRetryDelayMs), () => socket.connect());
    } else {
      settings.reportError(settings.error("UNAUTHORIZED", err.message));
    }
  };

  const onError = (payload: { code?: string } | undefined) => {
    if (payload?.code === "TOKEN_EXPIRED") expiredNotice = true;
  };

  // The server disconnects right after TOKEN_EXPIRED: reconnect, which asks for a new token.
  const onDisconnect = (reason: string) => {
    clearTimer();
    if (reason === "io server disconnect" && expiredNotice) {
      expiredNotice = false;
      socket.connect();
    }
  };

  socket.on("connect", onConnect);
  socket.on("connect_error", onConnectError);
  socket.on("error", onError);
  socket.on("disconnect", onDisconnect);
  if (socket.connected) scheduleRefresh();

  return () => {
    detached = true;
    clearTimer();
    socket.off("connect", onConnect);
    socket.off("connect_error", onConnectError);
    socket.off("error", onError);
    socket.off("disconnect", onDisconnect);
  };
}
