import { pino, type Logger } from "pino";
import type { AddressInfo } from "node:net";
import { createApp, type App } from "../../src/app.js";
import { parseConfig } from "../../src/config.js";
import { onCleanup } from "./server.js";

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** A real pino logger whose JSON lines are kept (parsed) and measured in bytes, for tests about logging. */
export function captureLog(): { log: Logger; lines: LogLine[]; bytes(): number } {
  const lines: LogLine[] = [];
  let bytes = 0;
  const log = pino(
    { level: "info", base: { replica: "log-test" } },
    {
      write(line: string) {
        bytes += Buffer.byteLength(line);
        lines.push(JSON.parse(line) as LogLine);
      },
    },
  );
  return { log, lines, bytes: () => bytes };
}

/** startServer with a captured log: the app on a port of its own, closed by cleanupAll. */
export async function startLoggedServer(env: Record<string, string> = {}) {
  const captured = captureLog();
  const config = parseConfig({ PORT: "0", HOST: "127.0.0.1", REPLICA_ID: "log-test", ...env });
  const app: App = createApp(config, captured.log);
  onCleanup(() => app.close());
  await new Promise<void>((resolve) => app.httpServer.listen(0, "127.0.0.1", resolve));
  const { port } = app.httpServer.address() as AddressInfo;
  return { app, url: `http://127.0.0.1:${port}`, ...captured };
}
