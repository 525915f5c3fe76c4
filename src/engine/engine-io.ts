import { createRequire } from "node:module";

/**
 * The parts of the engine.io module that the patches in this folder touch, all optional: they are checked
 * before use, since a future Engine.IO may rename or reshape them.
 */
export interface EngineIoModule {
  Socket?: { prototype?: object };
  transports?: Record<string, { prototype?: object } | undefined>;
}

export type EngineIoResolution = { ok: true; module: EngineIoModule; path: string } | { ok: false; reason: string };

let resolved: EngineIoResolution | undefined;

/**
 * The engine.io that socket.io itself loads: resolved from socket.io's own file, so a second copy of
 * engine.io in node_modules (the project's direct dependency, hoisted or not) is never the one patched.
 * socket.io is CommonJS (its ESM entry wraps `dist/index.js`) and requires "engine.io" from there; so does
 * this, which returns the very module object from Node's require cache. engine.io's ESM entry re-exports
 * the same CommonJS build, so either way there is one copy per path.
 */
export function socketIoEngine(): EngineIoResolution {
  if (resolved) return resolved;
  try {
    const socketIoPath = createRequire(import.meta.url).resolve("socket.io");
    const fromSocketIo = createRequire(socketIoPath);
    const path = fromSocketIo.resolve("engine.io");
    resolved = { ok: true, module: fromSocketIo("engine.io") as EngineIoModule, path };
  } catch (err) {
    resolved = { ok: false, reason: `engine.io not resolvable through socket.io: ${(err as Error).message}` };
  }
  return resolved;
}
