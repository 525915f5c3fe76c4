/**
 * The chat page at `/chat/`: static files from `public/chat/`, the Socket.IO client from Socket.IO itself
 * (`/socket.io/socket.io.esm.min.js`) and the project's client helper (src/client/) bundled for the browser
 * as `/chat/reliable-rooms.js`.
 *
 * The bundle: running from source (`npm start`, the tests) it is built from src/client/ with esbuild on the
 * first request, so it is always current; compiled (`npm run build`, the Docker image) it is the file
 * `dist/web/reliable-rooms.js` that the build wrote (scripts/build-client.ts), and esbuild, a development
 * dependency, is not needed at run time. A compiled server without that file refuses to start.
 */
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import express, { type Router } from "express";

const FROM_SOURCE = import.meta.url.endsWith(".ts");
/** Where the build writes the bundle: `dist/web/` beside the compiled `dist/http/chat.js`. */
export const BUILT_CLIENT_BUNDLE = fileURLToPath(new URL("../web/reliable-rooms.js", import.meta.url));
// `public/` at the root of the checkout, and of the image (/app/public): two levels up from src/http and dist/http.
const PAGE_DIR = fileURLToPath(new URL("../../public/chat/", import.meta.url));

const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

/** src/client/index.ts as one browser ES module (no Node API, no import left: socket.io-client is types only). */
export async function bundleClient(): Promise<string> {
  const { build } = await import("esbuild");
  const result = await build({
    entryPoints: [fileURLToPath(new URL("../client/index.ts", import.meta.url))],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    charset: "utf8",
    legalComments: "none",
    write: false,
    logLevel: "silent",
    banner: { js: "// realtime-server client helper (src/client/), bundled by esbuild: do not edit." },
  });
  const file = result.outputFiles[0];
  if (!file) throw new Error("esbuild produced no output for src/client/index.ts");
  return file.text;
}

let fromSource: Promise<string> | undefined;

function clientBundle(): () => Promise<string> {
  if (FROM_SOURCE) {
    return () => {
      fromSource ??= bundleClient().catch((err: unknown) => {
        fromSource = undefined; // a fixed source file is picked up on the next request
        throw err;
      });
      return fromSource;
    };
  }
  if (!existsSync(BUILT_CLIENT_BUNDLE)) {
    throw new Error(`${BUILT_CLIENT_BUNDLE} is missing: \`npm run build\` bundles the browser client`);
  }
  const built = Promise.resolve(readFileSync(BUILT_CLIENT_BUNDLE, "utf8"));
  return () => built;
}

/** `/chat/`: the page, its script and style, and the client helper bundle. */
export function chatRoutes(): Router {
  const bundle = clientBundle();
  const router = express.Router({ strict: true });
  router.get("/chat", (_req, res) => res.redirect(301, "/chat/"));
  router.use("/chat/", (_req, res, next) => {
    res.setHeader("Content-Security-Policy", CSP);
    res.setHeader("X-Content-Type-Options", "nosniff");
    res.setHeader("Referrer-Policy", "no-referrer");
    res.setHeader("Cache-Control", "no-cache");
    next();
  });
  router.get("/chat/reliable-rooms.js", async (_req, res) => {
    res.type("text/javascript").send(await bundle());
  });
  router.use("/chat/", express.static(PAGE_DIR, { index: "index.html", redirect: false }));
  return router;
}
