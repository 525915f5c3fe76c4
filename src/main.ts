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
    { port: config.port, host: config.host, redis: config.redisCluster ? "cluster" : Boolean(config.redisUrl) },
    `listening on port ${config.port}`,
  );
});
const { metricsServer } = app;
if (metricsServer) {
  metricsServer.on("error", (err) => {
    log.fatal({ err, metricsPort: config.ops.metricsPort }, "cannot listen on METRICS_PORT");
    process.exit(1);
  });
  metricsServer.listen(config.ops.metricsPort, config.host, () => {
    log.info({ metricsPort: config.ops.metricsPort, host: config.host }, `metrics on port ${config.ops.metricsPort}`);
  });
}

let stopping = false;
let skipDrain: () => void = () => undefined;
/**
 * Drain (readiness 503, new handshakes refused, sessions closed gradually: src/ops/drain.ts), then close.
 * A second signal skips what is left of the drain. SHUTDOWN_TIMEOUT_MS bounds the whole of it.
 */
function shutdown(signal: string, exitCode = 0, drain = true): void {
  if (stopping) {
    skipDrain();
    return;
  }
  stopping = true;
  log.info({ signal }, "signal received");
  const timer = setTimeout(() => {
    log.error({ timeoutMs: config.ops.shutdownTimeoutMs }, "shutdown timed out");
    process.exit(1);
  }, config.ops.shutdownTimeoutMs);
  timer.unref();
  const skipped = new Promise<void>((resolve) => (skipDrain = resolve));
  (drain ? Promise.race([app.drain(), skipped]) : Promise.resolve())
    .then(() => app.close())
    .then(
      () => process.exit(exitCode),
      (err: unknown) => {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));

// Policy: a rejection nobody handled means a state this code did not plan for. Carrying on could mean acking
// messages that go nowhere; so log it, close every connection at once (clients reconnect to another replica)
// and exit 1, for the orchestrator to restart the process. No drain: this process is not to be trusted.
// One exception: a Redis command failing because the connection dropped (a library's unawaited command while
// Redis restarts or this process shuts down). Every path that acks a client awaits its own commands, so
// these change nothing a client was told; restarting every replica on a Redis blip would be the outage.
const REDIS_TRANSPORT_FAILURE =
  /^(Connection is closed\.|Stream isn't writeable|Command timed out|Reached the max retries per request)/;
process.on("unhandledRejection", (reason) => {
  if (reason instanceof Error && REDIS_TRANSPORT_FAILURE.test(reason.message)) {
    log.warn({ err: reason.message }, "unawaited redis command failed (connection lost): ignored");
    return;
  }
  log.fatal({ err: reason }, "unhandled rejection: exiting");
  shutdown("unhandledRejection", 1, false);
});
