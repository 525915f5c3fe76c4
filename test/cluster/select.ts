import { spawnSync } from "node:child_process";
import type { ClusterDriver } from "./driver.js";

function dockerAnswers(): boolean {
  const result = spawnSync("docker", ["info", "--format", "{{.ServerVersion}}"], { encoding: "utf8", timeout: 10_000 });
  return result.status === 0 && result.stdout.trim() !== "";
}

function hasBinary(name: string, fallback: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${name} || test -x ${fallback}`]).status === 0;
}

/**
 * Containers when a Docker engine answers, else processes when redis-server and nginx are installed.
 * CLUSTER_DRIVER=containers|processes forces one. Neither possible: a clear error, never a skip.
 */
export async function selectDriver(): Promise<ClusterDriver> {
  const forced = process.env.CLUSTER_DRIVER;
  if (forced && forced !== "containers" && forced !== "processes") {
    throw new Error(`CLUSTER_DRIVER must be "containers" or "processes", got "${forced}"`);
  }
  if (forced === "containers" || (!forced && dockerAnswers())) {
    const { containersDriver } = await import("./containers-driver.js");
    return containersDriver;
  }
  if (hasBinary("redis-server", "/usr/bin/redis-server") && hasBinary("nginx", "/usr/sbin/nginx")) {
    const { processesDriver } = await import("./processes-driver.js");
    return processesDriver;
  }
  throw new Error(
    "cross-replica suite cannot run: no Docker engine answers `docker info`, and redis-server/nginx are not " +
      "installed (apt-get install -y redis-server nginx-light)",
  );
}
