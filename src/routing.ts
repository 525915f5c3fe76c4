import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";

const ROUTE_KEY = /^[0-9a-f]{32}$/;

/**
 * Engine.IO session ids that carry the balancer's route key: `<key>.<random>`.
 * nginx hashes the key out of `?sid=` so every later poll and the websocket upgrade reach this replica,
 * with no cookies and no list of replicas (see nginx/). Without the header the id is just random.
 */
export function generateRoutedId(req: IncomingMessage): string {
  const random = randomBytes(15).toString("base64url");
  const header = req.headers["x-route-key"];
  const key = typeof header === "string" ? header.toLowerCase() : undefined;
  return key && ROUTE_KEY.test(key) ? `${key}.${random}` : random;
}
