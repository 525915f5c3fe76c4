import { readFileSync } from "node:fs";
import { createApp } from "./app.js";
import { ConfigError, parseConfig, type Config } from "./config.js";
import { createLogger } from "./logger.js";

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

function readConfig(): Config {
  try {
    return parseConfig(process.env, version());
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`config error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

const config = readConfig();
const log = createLogger(config);
const app = createApp(config, log);

app.httpServer.on("error", (err) => {
  log.fatal({ err }, "cannot listen");
  process.exit(1);
});
app.httpServer.listen(config.port, config.host, () => {
  log.info(
    { port: config.port, host: config.host, redis: Boolean(config.redisUrl) },
    `listening on port ${config.port}`,
  );
});

process.on("unhandledRejection", (reason) => {
  log.error({ err: reason }, "unhandled rejection");
});

let stopping = false;
function shutdown(signal: string): void {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, "signal received");
  const timer = setTimeout(() => {
    log.error({ timeoutMs: config.shutdownTimeoutMs }, "shutdown timed out");
    process.exit(1);
  }, config.shutdownTimeoutMs);
  timer.unref();
  app.close().then(
    () => process.exit(0),
    (err: unknown) => {
      log.error({ err }, "shutdown failed");
      process.exit(1);
    },
  );
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));
