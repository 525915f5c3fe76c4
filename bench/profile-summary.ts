/**
 * Prints the functions with the most self time in V8 CPU profiles (from BENCH_CPU_PROF=<dir>):
 *   npx tsx bench/profile-summary.ts <dir> [top]
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [dir, topArg] = process.argv.slice(2);
if (!dir) throw new Error("usage: bench/profile-summary.ts <dir> [top]");
for (const file of readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"))) {
  const profile = JSON.parse(readFileSync(join(dir, file), "utf8")) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const dt = profile.timeDeltas[i] ?? 0;
    if (!node) return;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url
      ? `${url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*\/src\//, "src/")}:${lineNumber + 1}`
      : "";
    const key = `${functionName || "(anonymous)"} ${where}`;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  });
  console.log(`\n${file}: ${(total / 1e6).toFixed(1)} s sampled`);
  const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg ?? 15));
  for (const [key, us] of top) console.log(`${((100 * us) / total).toFixed(1).padStart(5)} %  ${key}`);
}
