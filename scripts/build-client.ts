/**
 * `npm run build`, after tsc: bundles the browser client helper (src/client/) into dist/web/reliable-rooms.js,
 * which the compiled server serves as /chat/reliable-rooms.js (src/http/chat.ts). Runs where the development
 * dependencies are installed (the Docker build stage); the production image needs no esbuild.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleClient } from "../src/http/chat.js";

const out = fileURLToPath(new URL("../dist/web/reliable-rooms.js", import.meta.url));
mkdirSync(dirname(out), { recursive: true });
const code = await bundleClient();
writeFileSync(out, code);
console.log(`wrote ${out} (${code.length} bytes)`);
