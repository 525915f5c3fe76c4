import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const NGINX_CONF = new URL("../../nginx/nginx.conf", import.meta.url);

/** The upstream list for replicas at fixed addresses (processes, or nginx without the `resolve` parameter). */
export function staticUpstream(addresses: string[]): string {
  // max_fails=0: see nginx/upstream.static.conf (a failure mark outlives the replica's restart while websockets
  // are open: "no live upstreams" for tens of seconds after a rolling restart; test/chaos).
  return addresses.map((a) => `server ${a} max_fails=0;`).join("\n") + "\n";
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

export interface NginxSite {
  /** Loopback port nginx listens on. */
  port: number;
  /** The replicas' addresses (host:port), as a static upstream. */
  upstream: string[];
  /** limits.conf; nginx/limits.conf (none) by default. */
  limits?: string;
  /** Also TLS on `port`, with these PEM files (absolute paths). */
  tls?: { port: number; cert: string; key: string };
}

/**
 * The project's nginx.conf and the files it includes, written into `dir` for `site`; returns the arguments that
 * run nginx from `dir` in the foreground.
 */
export function writeNginxSite(dir: string, site: NginxSite): string[] {
  writeFileSync(join(dir, "nginx.conf"), renderNginxConf(`127.0.0.1:${site.port}`));
  writeFileSync(join(dir, "upstream.conf"), staticUpstream(site.upstream));
  if (site.tls) {
    mkdirSync(join(dir, "tls.d"));
    writeFileSync(
      join(dir, "tls.d", "tls.conf"),
      renderTlsConf(`127.0.0.1:${site.tls.port}`, site.tls.cert, site.tls.key),
    );
  }
  writeFileSync(join(dir, "limits.conf"), site.limits ?? nginxLimitsConf());
  return ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", "stderr", "-g", `daemon off; pid ${join(dir, "nginx.pid")};`];
}
