import { readFileSync } from "node:fs";

const NGINX_CONF = new URL("../../nginx/nginx.conf", import.meta.url);

/** The upstream list for replicas at fixed addresses (processes, or nginx without the `resolve` parameter). */
export function staticUpstream(addresses: string[]): string {
  return addresses.map((a) => `server ${a} max_fails=1 fail_timeout=5s;`).join("\n") + "\n";
}

/** The project's nginx.conf, listening on `listen` (an nginx listen address) instead of 5000. */
export function renderNginxConf(listen = "5000"): string {
  const conf = readFileSync(NGINX_CONF, "utf8");
  if (!conf.includes("listen 5000;")) throw new Error("nginx/nginx.conf: expected a `listen 5000;` line");
  return conf.replace("listen 5000;", `listen ${listen};`);
}
