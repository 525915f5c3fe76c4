import { createServer, type Server } from "node:http";
import type { Metrics } from "../metrics.js";

/**
 * The metrics listener: its own port (METRICS_PORT), never the main one, so the balancer, which forwards the
 * main port only, cannot expose it in any spelling of the path. It answers exactly `GET /metrics` (HEAD too);
 * everything else is 404, so nothing of the app is reachable here either.
 */
export function createMetricsServer(metrics: Metrics, replicaId: string): Server {
  return createServer((req, res) => {
    res.setHeader("X-Replica-Id", replicaId);
    const path = (req.url ?? "").split("?", 1)[0];
    if (path !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    metrics.render().then(
      (body) => {
        res.writeHead(200, { "content-type": metrics.contentType });
        res.end(req.method === "HEAD" ? undefined : body);
      },
      (err: unknown) => {
        res.writeHead(500, { "content-type": "text/plain" }).end(`metrics failed: ${(err as Error).message}\n`);
      },
    );
  });
}
