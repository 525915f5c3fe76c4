import { pino, type Logger } from "pino";
import type { Config } from "./config.js";

export type { Logger };

export function createLogger(config: Pick<Config, "logLevel" | "replicaId">): Logger {
  return pino({ level: config.logLevel, base: { replica: config.replicaId, pid: process.pid } });
}
