import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

/**
 * What the full suite needs besides Node and node_modules, checked before any test starts so that a machine
 * without it fails at once with one message instead of test by test. The cross-replica suite also runs on
 * Docker when an engine answers, but drain, TLS and limits tests always start a process cluster: nginx and
 * redis-server are needed either way.
 */
const PREREQUISITES: Array<{ name: string; present: () => boolean }> = [
  { name: "node >= 22", present: () => Number(process.versions.node.split(".")[0]) >= 22 },
  { name: "redis-server", present: () => found("redis-server", "/usr/bin/redis-server") },
  { name: "nginx", present: () => found("nginx", "/usr/sbin/nginx") },
  {
    name: "chromium",
    present: () =>
      [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"].some((p) => !!p && existsSync(p)),
  },
  { name: "prometheus", present: () => found("prometheus", "/usr/bin/prometheus") },
  { name: "openssl", present: () => found("openssl", "/usr/bin/openssl") },
  { name: "kubectl", present: () => found("kubectl", "/usr/bin/kubectl") },
];

function found(name: string, fallback: string): boolean {
  return existsSync(fallback) || spawnSync("sh", ["-c", `command -v ${name}`]).status === 0;
}

/** The names of what is missing on this machine (empty when the full suite can run). */
export function missingPrerequisites(): string[] {
  return PREREQUISITES.filter((p) => !p.present()).map((p) => p.name);
}

export function prerequisitesMessage(missing: string[]): string {
  return (
    `npm test cannot run on this machine, missing: ${missing.join(", ")}. ` +
    "Run `npm run test:all` (installs what is missing, apt-get as root, then runs npm test), " +
    "or `npm run test:unit` for the tests that need only Node. See README, Test."
  );
}

/** vitest globalSetup of the full suite: stops the run before any test when something is missing. */
export default function checkPrerequisites(): void {
  const missing = missingPrerequisites();
  if (missing.length > 0) throw new Error(prerequisitesMessage(missing));
}
