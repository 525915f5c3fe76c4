/**
 * Loaded with `--import` (and `--expose-gc`) into a server process that has an IPC channel:
 * answers `{ cmd: "heap" }` with the V8 heap in use after full garbage collections.
 */
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("heap-probe needs --expose-gc");

process.on("message", (message: { cmd?: string }) => {
  if (message?.cmd !== "heap") return;
  gc();
  gc();
  process.send?.({ ev: "heap", heapUsed: process.memoryUsage().heapUsed });
});
