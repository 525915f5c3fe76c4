import cors from "cors";
import express, { type ErrorRequestHandler, type Express } from "express";
import type { Config } from "../config.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import { StoreUnavailableError, type PostStore } from "../posts/store.js";
import { describeIssue, newPost } from "../schemas.js";
import type { TypedServer } from "../events/handler.js";
import { refuseForeignOrigins } from "../limits/origin.js";
import { parsePageQuery } from "../limits/paging.js";
import type { Auth } from "../auth/auth.js";
import { requireScope } from "../auth/http.js";
import { adminRoutes } from "./admin.js";
import { adminUiRoutes } from "./admin-ui.js";
import { chatRoutes } from "./chat.js";

export interface HttpDeps {
  config: Config;
  log: Logger;
  posts: PostStore;
  io: TypedServer;
  isReady: () => boolean;
  metrics: Metrics;
  auth: Auth;
}

function httpError(status: number, code: string, message: string, field?: string) {
  return { status, body: { error: { code, message, ...(field ? { field } : {}) } } };
}

export function createHttpApp({ config, log, posts, io, isReady, metrics, auth }: HttpDeps): Express {
  const app = express();
  app.disable("x-powered-by");
  // Only the balancer may say who the client is (TRUST_PROXY): a client cannot spoof X-Forwarded-For.
  app.set("trust proxy", config.limits.trustProxy);
  app.use((_req, res, next) => {
    res.setHeader("X-Replica-Id", config.replicaId);
    next();
  });
  app.use(cors({ origin: config.corsOrigins }));
  app.use(refuseForeignOrigins(config.corsOrigins));
  app.use(express.json({ limit: "100kb" }));

  app.get("/", (_req, res) => {
    res.type("text/plain").send("Hello server is working");
  });

  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok", replica: config.replicaId });
  });

  app.get("/readyz", (_req, res) => {
    const ready = isReady();
    res.status(ready ? 200 : 503).json({ status: ready ? "ready" : "not ready", replica: config.replicaId });
  });

  app.get("/api/info", (_req, res) => {
    res.json({ replica: config.replicaId, version: config.version, connections: io.engine.clientsCount });
  });

  // No /metrics here: it has its own port (METRICS_PORT, src/ops/metrics-server.ts), which nginx never forwards.

  app.get("/api/posts", async (req, res) => {
    const query = parsePageQuery(req.query);
    if (!query.ok) {
      const { status, body } = httpError(400, "INVALID_QUERY", query.message, query.field);
      res.status(status).json(body);
      return;
    }
    res.json(await posts.list(query.page));
  });

  app.post("/api/posts", requireScope(auth, "posts:write", { openWhenOff: true }), async (req, res) => {
    const parsed = newPost.safeParse(req.body);
    if (!parsed.success) {
      const { field, message } = describeIssue(parsed.error);
      const { status, body } = httpError(400, "INVALID_BODY", message, field);
      res.status(status).json(body);
      return;
    }
    const post = await posts.create(parsed.data);
    metrics.postCreated();
    io.emit("post-created", post);
    log.info({ post: post.id }, "post created");
    res.status(201).json(post);
  });

  app.use(adminRoutes(auth, log));
  app.use(chatRoutes());
  app.use(adminUiRoutes(config.adminUi));

  app.use((_req, res) => {
    const { status, body } = httpError(404, "NOT_FOUND", "no such route");
    res.status(status).json(body);
  });

  const onError: ErrorRequestHandler = (
    err: { status?: number; type?: string; message?: string },
    _req,
    res,
    _next,
  ) => {
    if (err instanceof StoreUnavailableError) {
      // Counted and logged (once a second) by the store guard (src/posts/guard.ts).
      res.status(503).json(httpError(503, "STORE_UNAVAILABLE", "posts are unavailable, try again shortly").body);
      return;
    }
    const status = typeof err.status === "number" && err.status >= 400 && err.status < 500 ? err.status : 500;
    if (status === 500) log.error({ err }, "request failed");
    const code =
      err.type === "entity.parse.failed"
        ? "INVALID_JSON"
        : status === 413
          ? "TOO_LARGE"
          : status === 500
            ? "INTERNAL"
            : "BAD_REQUEST";
    const message = status === 500 ? "internal error" : (err.message ?? "bad request");
    res.status(status).json(httpError(status, code, message).body);
  };
  app.use(onError);
  return app;
}
