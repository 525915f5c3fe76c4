import { readFileSync } from "node:fs";

const NGINX_CONF = new URL("../../nginx/nginx.conf", import.meta.url);

/** The upstream list for replicas at fixed addresses (processes, or nginx without the `resolve` parameter). */
export function staticUpstream(addresses: string[]): string {
  // No shared `zone` here: on nginx 1.22 with `hash`, a zone made every peer look failed during a rolling
  // restart under load ("no live upstreams" for tens of seconds; test/chaos). Each worker keeps its own
  // failure marks, so a polling session of a draining replica may be sent elsewhere and reconnect.
  return addresses.map((a) => `server ${a} max_fails=1 fail_timeout=5s;`).join("\n") + "\n";
}

/** The project's nginx.conf, listening on `listen` (an nginx listen address) instead of 5000. */
export function renderNginxConf(listen = "5000"): string {
  const conf = readFileSync(NGINX_CONF, "utf8");
  if (!conf.includes("listen 5000;")) throw new Error("nginx/nginx.conf: expected a `listen 5000;` line");
  return conf.replace("listen 5000;", `listen ${listen};`);
}

/**
 * The per-IP limits file nginx.conf includes as `limits.conf`: nginx/limits.conf (empty, the default) or,
 * with `example`, nginx/limits.example.conf (the values the README shows).
 */
export function nginxLimitsConf(example = false): string {
  return readFileSync(
    new URL(`../../nginx/${example ? "limits.example.conf" : "limits.conf"}`, import.meta.url),
    "utf8",
  );
}

/**
 * nginx/tls.conf (included by nginx.conf from tls.d/) listening on `listen` with the given certificate and
 * key files (absolute paths) instead of compose's certs/tls.crt and certs/tls.key.
 */
export function renderTlsConf(listen: string, cert: string, key: string): string {
  const conf = readFileSync(new URL("../../nginx/tls.conf", import.meta.url), "utf8");
  for (const line of ["listen 5443 ssl;", "ssl_certificate certs/tls.crt;", "ssl_certificate_key certs/tls.key;"])
    if (!conf.includes(line)) throw new Error(`nginx/tls.conf: expected a \`${line}\` line`);
  return conf
    .replace("listen 5443 ssl;", `listen ${listen} ssl;`)
    .replace("ssl_certificate certs/tls.crt;", `ssl_certificate ${cert};`)
    .replace("ssl_certificate_key certs/tls.key;", `ssl_certificate_key ${key};`);
}
