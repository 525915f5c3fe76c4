/**
 * Loaded into each replica by `npm run bench:capacity` through NODE_OPTIONS (`--expose-gc --import`): on SIGUSR2,
 * two full garbage collections, then the V8 heap in use written to CAPACITY_PROBE_DIR/<pid>.json. The replicas of
 * the process cluster have no IPC channel (bench/servers/heap-probe.ts needs one), hence a signal and a file.
 * The file is also written once at load, so the bench only signals a replica that has the probe: an unhandled
 * SIGUSR2 would end the process.
 */
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const gc = (globalThis as { gc?: () => void }).gc;
const dir = process.env.CAPACITY_PROBE_DIR;

if (gc && dir) {
  const file = join(dir, `${process.pid}.json`);
  let seq = 0;
  const write = () => {
    const { heapUsed, rss, external, arrayBuffers } = process.memoryUsage();
    writeFileSync(`${file}.tmp`, JSON.stringify({ seq: seq++, heapUsed, rss, external, arrayBuffers }));
    renameSync(`${file}.tmp`, file);
  };
  process.on("SIGUSR2", () => {
    gc();
    gc();
    write();
  });
  write();
}
