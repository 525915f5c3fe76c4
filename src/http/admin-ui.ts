/**
 * The Socket.IO Admin UI (`@socket.io/admin-ui`), opt-in with ADMIN_UI=on:
 * - the `/admin` Socket.IO namespace (admin-ui's `instrument`, `mode: "production"`, read-only), whose
 *   handshake checks the credentials (`auth: { username, password }` against ADMIN_UI_PASSWORD_HASH);
 * - the UI itself, served by this app under `/admin/` behind HTTP basic auth with the same credentials
 *   (no third-party site: the Google Fonts link is dropped, the icon font is served from `@mdi/font`).
 * Every replica instruments its own server; the stats reach the admin client through the adapter, so one UI
 * connected through the balancer sees every replica.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { instrument } from "@socket.io/admin-ui";
import bcrypt from "bcryptjs";
import express, { type RequestHandler, type Router } from "express";
import type { RedisClient } from "../redis.js";
import type { Server } from "socket.io";
import { ConfigError } from "../config.js";
import type { Logger } from "../logger.js";

export type AdminUiConfig = { enabled: false } | { enabled: true; username: string; passwordHash: string };

type Env = Record<string, string | undefined>;

/** The admin UI's Socket.IO namespace (fixed: the UI's connection form defaults to it). */
export const ADMIN_NAMESPACE = "/admin";
/** How long an admin-ui session id (sent by the UI on reconnect instead of the password) stays valid. */
const SESSION_TTL_S = 8 * 3600;
/** Longest username and password accepted before bcrypt runs (bcrypt reads 72 bytes at most anyway). */
const MAX_CREDENTIAL_LENGTH = 256;
const BCRYPT_HASH = /^\$2[aby]?\$\d{2}\$[./A-Za-z0-9]{53}$/;

/** ADMIN_UI (`on`/`off`, default off), ADMIN_UI_USERNAME (default `admin`), ADMIN_UI_PASSWORD_HASH (bcrypt). */
export function parseAdminUiConfig(env: Env): AdminUiConfig {
  const mode = env.ADMIN_UI?.trim() || "off";
  if (mode !== "on" && mode !== "off") throw new ConfigError("ADMIN_UI", `expected on or off, got "${mode}"`);
  if (mode === "off") return { enabled: false };
  const username = env.ADMIN_UI_USERNAME?.trim() || "admin";
  if (username.length > 64 || /[:\s]/.test(username)) {
    throw new ConfigError("ADMIN_UI_USERNAME", "expected 1-64 characters without spaces or ':'");
  }
  const passwordHash = env.ADMIN_UI_PASSWORD_HASH?.trim();
  if (!passwordHash) {
    throw new ConfigError("ADMIN_UI_PASSWORD_HASH", "required with ADMIN_UI=on: a bcrypt hash of the admin password");
  }
  let rounds = 0;
  try {
    rounds = bcrypt.getRounds(passwordHash);
  } catch {
    // reported below
  }
  if (!BCRYPT_HASH.test(passwordHash) || rounds < 4 || rounds > 31) {
    // Never echo the value: it is a credential's hash.
    throw new ConfigError("ADMIN_UI_PASSWORD_HASH", "not a bcrypt hash (expected $2b$<cost>$ and 53 characters)");
  }
  return { enabled: true, username, passwordHash };
}

const digest = (value: string) => createHash("sha256").update(value).digest();

/** Checks a username and password against the configuration; constant time on the username. */
function credentialsChecker(config: { username: string; passwordHash: string }) {
  const expectedUser = digest(config.username);
  return async (username: unknown, password: unknown): Promise<boolean> => {
    if (typeof username !== "string" || typeof password !== "string") return false;
    if (username.length > MAX_CREDENTIAL_LENGTH || password.length > MAX_CREDENTIAL_LENGTH) return false;
    const userOk = timingSafeEqual(digest(username), expectedUser);
    // bcrypt runs either way, so a wrong username takes as long as a wrong password.
    const passwordOk = await bcrypt.compare(password, config.passwordHash).catch(() => false);
    return userOk && passwordOk;
  };
}

/** admin-ui's session store: in Redis when there is one (every replica knows the session), else in memory. */
interface SessionStore {
  doesSessionExist(sessionId: string): Promise<boolean>;
  saveSession(sessionId: string): void;
}

function sessionStore(redis: RedisClient | undefined, keyPrefix: string, log: Logger): SessionStore {
  if (redis) {
    const key = (id: string) => `${keyPrefix}admin-ui:session:${id}`;
    return {
      // Never rejects: admin-ui awaits it inside a middleware without a catch (an unhandled rejection).
      doesSessionExist: (id) =>
        redis.exists(key(id)).then(
          (n) => n === 1,
          (err: unknown) => {
            log.warn({ err }, "admin-ui session lookup failed: asking for the password");
            return false;
          },
        ),
      saveSession: (id) => {
        redis.set(key(id), "1", "EX", SESSION_TTL_S).catch((err: unknown) => {
          log.warn({ err }, "admin-ui session not saved");
        });
      },
    };
  }
  const sessions = new Map<string, number>();
  return {
    doesSessionExist: (id) => Promise.resolve((sessions.get(id) ?? 0) > Date.now()),
    saveSession: (id) => {
      const now = Date.now();
      for (const [old, until] of sessions) if (until <= now || sessions.size >= 1000) sessions.delete(old);
      sessions.set(id, now + SESSION_TTL_S * 1000);
    },
  };
}

export interface AdminUiDeps {
  io: Server;
  config: { adminUi: AdminUiConfig; replicaId: string; redisKeyPrefix: string };
  log: Logger;
  redis: RedisClient | undefined;
}

/**
 * Installs the admin namespace. Call it after the authentication middleware (src/auth/auth.ts): it adds one
 * that masks the handshake's token once verified. Returns what stops admin-ui's stats timer.
 */
export function installAdminUi({ io, config, log, redis }: AdminUiDeps): () => void {
  const settings = config.adminUi;
  if (!settings.enabled) return () => undefined;

  // The token was read and verified by the middlewares before this one; from here on nothing needs it, and
  // nothing that shows a socket (admin-ui's socket details, a debugger) may show it.
  io.use((socket, next) => {
    const auth = socket.handshake.auth as Record<string, unknown> | undefined;
    if (auth && "token" in auth) socket.handshake.auth = { ...auth, token: "[redacted]" };
    const headers = socket.handshake.headers;
    if (headers.authorization) headers.authorization = "[redacted]";
    if (headers.cookie) headers.cookie = "[redacted]";
    next();
  });

  // admin-ui hands any `password` to bcrypt and awaits it without a catch: a missing or non-string password
  // would reject, unhandled, and stop the process. Only well-formed credentials or a session id get through.
  const admin = io.of(ADMIN_NAMESPACE);
  admin.use((socket, next) => {
    const auth = (socket.handshake.auth ?? {}) as Record<string, unknown>;
    const sessionOk = typeof auth.sessionId === "string" && /^[0-9a-f]{16}$/.test(auth.sessionId);
    const credentialsOk =
      typeof auth.username === "string" &&
      typeof auth.password === "string" &&
      auth.username.length <= MAX_CREDENTIAL_LENGTH &&
      auth.password.length <= MAX_CREDENTIAL_LENGTH;
    if (!sessionOk && !credentialsOk) return next(new Error("invalid credentials"));
    // A session id that is not (or no longer) valid falls through to the credentials, when they are sent.
    if (!sessionOk) socket.handshake.auth = { username: auth.username, password: auth.password };
    else if (!credentialsOk) socket.handshake.auth = { sessionId: auth.sessionId };
    next();
  });
  admin.on("connection", (socket) => {
    log.info({ socket: socket.id }, "admin UI connected");
  });

  // admin-ui starts a 2 s stats interval it never clears: capture it so that close() can.
  const timers: ReturnType<typeof setInterval>[] = [];
  const originalSetInterval = globalThis.setInterval;
  globalThis.setInterval = ((...args: Parameters<typeof setInterval>) => {
    const timer = originalSetInterval(...args);
    timers.push(timer);
    return timer;
  }) as typeof setInterval;
  try {
    instrument(io, {
      namespaceName: ADMIN_NAMESPACE,
      auth: { type: "basic", username: settings.username, password: settings.passwordHash },
      // Aggregated stats only: no per-socket details nor every event's payload are sent to the UI.
      mode: "production",
      // The UI's join, leave, emit and disconnect would bypass room permissions and the room history.
      readonly: true,
      serverId: config.replicaId,
      store: sessionStore(redis, config.redisKeyPrefix, log) as never,
    });
  } finally {
    globalThis.setInterval = originalSetInterval;
  }
  // After admin-ui's own check: the connected admin socket keeps no password in memory.
  admin.use((socket, next) => {
    socket.handshake.auth = {};
    next();
  });
  log.info({ namespace: ADMIN_NAMESPACE, user: settings.username }, "admin UI on: /admin/");
  return () => {
    for (const timer of timers) clearInterval(timer);
  };
}

const require = createRequire(import.meta.url);
const packageDir = (name: string) => dirname(require.resolve(`${name}/package.json`));

/** The UI's index.html without third-party resources: no Google Fonts, the icon font from this server. */
function adminIndexHtml(uiDir: string): string {
  const html = readFileSync(join(uiDir, "index.html"), "utf8");
  const withoutFonts = html.replace(/<link[^>]+fonts\.googleapis\.com[^>]*>/, "");
  const localIcons = withoutFonts.replace(
    /<link[^>]+cdn\.jsdelivr\.net\/npm\/@mdi\/font[^>]*>/,
    '<link rel="stylesheet" href="mdi/css/materialdesignicons.min.css">',
  );
  if (/https?:\/\//.test(localIcons.replace(/<noscript>.*?<\/noscript>/s, ""))) {
    throw new Error("@socket.io/admin-ui: its index.html still loads a third-party resource");
  }
  return localIcons;
}

// The UI (Vue + Vuetify) injects styles; everything else comes from this origin, the socket included.
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

/** HTTP basic auth with the admin credentials; a verified header is remembered a minute (bcrypt is slow). */
function basicAuth(settings: { username: string; passwordHash: string }): RequestHandler {
  const check = credentialsChecker(settings);
  const verified = new Map<string, { until: number; ok: Promise<boolean> }>();
  // Per process: a random key, so the cache holds no reusable form of the header.
  const salt = randomBytes(16).toString("hex");
  return (req, res, next) => {
    const header = req.headers.authorization ?? "";
    const match = /^Basic ([A-Za-z0-9+/=]{1,700})$/.exec(header);
    const refuse = () => {
      res.setHeader("WWW-Authenticate", 'Basic realm="socket.io admin", charset="UTF-8"');
      res.status(401).json({ error: { code: "UNAUTHORIZED", message: "admin credentials required" } });
    };
    if (!match?.[1]) return refuse();
    const key = createHash("sha256").update(salt).update(match[1]).digest("hex");
    const now = Date.now();
    let entry = verified.get(key);
    if (!entry || entry.until <= now) {
      const decoded = Buffer.from(match[1], "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      const ok = colon < 0 ? Promise.resolve(false) : check(decoded.slice(0, colon), decoded.slice(colon + 1));
      entry = { until: now + 60_000, ok };
      if (verified.size >= 100) verified.clear();
      verified.set(key, entry);
      // Only successes are remembered (concurrent requests share one bcrypt run either way).
      void ok.then((good) => {
        if (!good && verified.get(key) === entry) verified.delete(key);
      });
    }
    entry.ok.then(
      (good) => (good ? next() : refuse()),
      (err: unknown) => next(err),
    );
  };
}

/** `/admin/`: the UI's static files behind basic auth; nothing at all (404) when ADMIN_UI is off. */
export function adminUiRoutes(settings: AdminUiConfig): Router {
  // Strict: `/admin` (redirected) and `/admin/` (the UI) are different routes.
  const router = express.Router({ strict: true });
  if (!settings.enabled) return router;
  const uiDir = join(packageDir("@socket.io/admin-ui"), "ui", "dist");
  const mdiDir = packageDir("@mdi/font");
  const index = adminIndexHtml(uiDir);
  const admin = express.Router({ strict: true });
  admin.use(basicAuth(settings));
  admin.use((_req, res, next) => {
    res.setHeader("Content-Security-Policy", CSP);
    res.setHeader("X-Content-Type-Options", "nosniff");
    res.setHeader("Referrer-Policy", "no-referrer");
    res.setHeader("Cache-Control", "no-store");
    next();
  });
  admin.get(["/", "/index.html"], (_req, res) => {
    res.type("html").send(index);
  });
  admin.use("/mdi/css", express.static(join(mdiDir, "css"), { index: false }));
  admin.use("/mdi/fonts", express.static(join(mdiDir, "fonts"), { index: false }));
  admin.use(express.static(uiDir, { index: false }));
  // The UI's assets are relative to /admin/: the bare path must end with a slash.
  router.get("/admin", (_req, res) => res.redirect(301, "/admin/"));
  router.use("/admin", admin);
  return router;
}
