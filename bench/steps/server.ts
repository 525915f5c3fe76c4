/**
 * A server process for bench/steps.ts, whose CPU time and write syscalls the parent reads from /proc. It reports
 * `{ port }` over IPC once it listens, and exits cleanly on SIGTERM (so that `--cpu-prof` writes its profile).
 *
 * STEPS_MODE=app: this server as shipped, `createApp` with a `parseConfig` config (port 0, no metrics port, the
 * memory store, or Redis with STEPS_REDIS_URL; every other setting at its default, LOG_LEVEL info).
 *
 * Candidates and reverts (bench/steps/candidates.ts), applied before createApp: STEPS_FLUSH=immediate defers the
 * flush to setImmediate instead of a microtask; STEPS_ELD_MS=<ms> runs the event-loop delay monitors at that
 * resolution (10: before 63807dc); STEPS_APPEND=pipelined sends the room log's appends through ioredis's
 * auto-pipeline (before 9b62c74); STEPS_COMMAND_TIMERS=off drops ioredis's per-command timeout timers;
 * STEPS_WAIT_TIMER=lazy keeps the feed's acknowledgement-wait interval armed between messages; STEPS_SKIP_EMPTY=1
 * (delivery mode, after the patch) returns at once from a flush with nothing queued.
 *
 * STEPS_MODE=vanilla: bench/servers/vanilla-socketio.ts (PORT, REDIS_URL), unchanged, exiting cleanly on SIGTERM.
 *
 * STEPS_MODE=delivery: a bare Socket.IO server that delivers room entries on its own, from a timer, the way the
 * room feeds do (`deliverLocally` of src/events/rooms.ts), one entry per tick. STEPS_PATCH=1 applies
 * `coalesceWebSocketWrites` (src/engine/coalesce.ts: deferred flush + cork), STEPS_HOOK=1 also installs the
 * slow-consumer after-flush hook (src/limits/slow-consumer.ts). Without them it is plain Engine.IO: the patch is
 * process-wide, hence a process of its own. IPC `{ cmd: "send", room, count, intervalMs }` delivers `count`
 * entries to `room`, one every `intervalMs`, each followed two microtasks later by a `steps-ack` packet to one
 * member (as a handler acknowledges after its awaits), then answers `{ sent }`.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server } from "socket.io";
import { createApp } from "../../src/app.js";
import { parseConfig } from "../../src/config.js";
import type { RoomMessage } from "../../src/contract.js";
import { coalesceWebSocketWrites } from "../../src/engine/coalesce.js";
import type { AppContext, TypedServer } from "../../src/events/handler.js";
import { deliverLocally, roomKey } from "../../src/events/rooms.js";
import { watchSlowConsumers } from "../../src/limits/slow-consumer.js";
import { createLogger } from "../../src/logger.js";
import {
  appendsAutoPipelined,
  deferFlushToImmediate,
  eventLoopMonitorsAt,
  lazyWaitTimer,
  skipEmptyFlush,
  withoutPerCommandTimers,
} from "./candidates.js";

interface SendCommand {
  cmd: "send";
  room: string;
  count: number;
  intervalMs: number;
}

const mode = process.env.STEPS_MODE;
const send = (message: object) => process.send?.(message);
if (process.env.STEPS_FLUSH === "immediate") deferFlushToImmediate();
if (process.env.STEPS_ELD_MS) eventLoopMonitorsAt(Number(process.env.STEPS_ELD_MS));
if (process.env.STEPS_APPEND === "pipelined") appendsAutoPipelined();
if (process.env.STEPS_COMMAND_TIMERS === "off") withoutPerCommandTimers();
if (process.env.STEPS_WAIT_TIMER === "lazy") lazyWaitTimer();

if (mode === "app") {
  const env: Record<string, string> = { PORT: "0", HOST: "127.0.0.1", METRICS_PORT: "0", REPLICA_ID: "steps" };
  // STEPS_REDIS_URL: one replica on that Redis (history, room feeds and the adapter in Redis).
  if (process.env.STEPS_REDIS_URL) {
    env.REDIS_URL = process.env.STEPS_REDIS_URL;
    env.REDIS_KEY_PREFIX = process.env.STEPS_REDIS_KEY_PREFIX ?? "steps:";
  }
  const config = parseConfig(env);
  const app = createApp(config);
  app.httpServer.listen(0, "127.0.0.1", () => send({ port: (app.httpServer.address() as AddressInfo).port }));
  process.once("SIGTERM", () => void app.close().then(() => process.exit(0)));
} else if (mode === "delivery") {
  const log = createLogger({ logLevel: "info", replicaId: "steps-delivery" });
  if (process.env.STEPS_PATCH === "1") coalesceWebSocketWrites(log);
  if (process.env.STEPS_SKIP_EMPTY === "1") skipEmptyFlush();
  const http = createServer();
  const io: TypedServer = new Server(http, { serveClient: false });
  if (process.env.STEPS_HOOK === "1") {
    watchSlowConsumers(io, { maxBytes: 1024 * 1024, log, evicted: () => undefined });
  }
  io.on("connection", (socket) => {
    // The bench's clients join with the same event as ours (a room name, acknowledged).
    (socket as unknown as { on(e: string, f: (room: string, ack?: (r: object) => void) => void): void }).on(
      "join-room",
      (room, ack) => {
        void socket.join(roomKey(room));
        ack?.({ ok: true, room });
      },
    );
  });
  const deliver = deliverLocally({ io } as AppContext);
  const message = "m".repeat(100);
  process.on("message", (command: SendCommand) => {
    if (command.cmd !== "send") return;
    let sent = 0;
    const acked = [...io.of("/").sockets.values()][0] as unknown as
      { emit(e: string, d: unknown): boolean } | undefined;
    const timer = setInterval(() => {
      sent++;
      const entry: RoomMessage = {
        room: command.room,
        id: `id-${sent}`,
        from: "steps-sender",
        message,
        epoch: "000000000000-steps",
        offset: sent,
      };
      deliver(entry, []);
      void Promise.resolve()
        .then(() => undefined)
        .then(() => acked?.emit("steps-ack", { ok: true, offset: entry.offset }));
      if (sent >= command.count) {
        clearInterval(timer);
        send({ sent });
      }
    }, command.intervalMs);
  });
  http.listen(0, "127.0.0.1", () => send({ port: (http.address() as AddressInfo).port }));
  process.once("SIGTERM", () => io.close(() => process.exit(0)));
} else if (mode === "vanilla") {
  // bench/servers/vanilla-socketio.ts as it is (PORT, REDIS_URL), with a clean exit on SIGTERM for --cpu-prof.
  process.once("SIGTERM", () => process.exit(0));
  await import("../servers/vanilla-socketio.js");
} else {
  throw new Error(`STEPS_MODE must be app, delivery or vanilla, got ${mode}`);
}
