import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { COMMAND_TIMED_OUT, enforceCommandDeadlines } from "../src/ops/command-deadlines.js";
import { startFreezableRedis } from "./support/redis.js";
import { cleanupAll, connect, onCleanup, startServer } from "./support/server.js";

afterEach(cleanupAll);

async function client(url: string): Promise<Redis> {
  // As the app's command connection: no per-command timer of ioredis's own, no offline queue.
  const redis = new Redis(url, { commandTimeout: undefined, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
  redis.on("error", () => undefined);
  onCleanup(() => redis.disconnect());
  await new Promise((resolve) => redis.once("ready", resolve));
  return redis;
}

/** Milliseconds from now until `promise` settles, and how it did. */
async function timed(promise: Promise<unknown>): Promise<{ ms: number; error?: string }> {
  const start = Date.now();
  try {
    await promise;
    return { ms: Date.now() - start };
  } catch (err) {
    return { ms: Date.now() - start, error: (err as Error).message };
  }
}

describe("command deadlines (one timer for every command of a connection)", () => {
  it("fails every command a frozen Redis leaves unanswered, each within 1.25× the timeout, and none sooner", async () => {
    const redis = await startFreezableRedis();
    const commands = await client(redis.url);
    const deadlines = enforceCommandDeadlines(commands, 400);
    onCleanup(() => deadlines.stop());
    redis.child.kill("SIGSTOP");
    // Queued over a few checks: each must fail on its own deadline, not the first one's, nor one per period.
    const outcomes: Array<Promise<{ ms: number; error?: string }>> = [];
    for (let i = 0; i < 5; i++) {
      for (let j = 0; j < 20; j++) outcomes.push(timed(commands.get(`k${i}:${j}`)));
      await new Promise((resolve) => setTimeout(resolve, 70));
    }
    const results = await Promise.all(outcomes);
    expect(new Set(results.map((r) => r.error))).toEqual(new Set([COMMAND_TIMED_OUT]));
    for (const { ms } of results) {
      expect(ms).toBeGreaterThanOrEqual(400);
      // 1.25 × 400, plus a loaded machine's timer lateness (one failure per check period would take seconds).
      expect(ms).toBeLessThan(500 + 350);
    }
    redis.child.kill("SIGCONT");
    expect(await commands.set("after", "thaw")).toBe("OK");
    expect(await commands.get("after")).toBe("thaw");
  });

  it("never fails a command that is answered, however many are in flight", async () => {
    const redis = await startFreezableRedis();
    const commands = await client(redis.url);
    // A timeout far above Redis's answer time here, checked every 12 ms while thousands of commands come and go.
    const deadlines = enforceCommandDeadlines(commands, 50);
    onCleanup(() => deadlines.stop());
    let answered = 0;
    for (let round = 0; round < 40; round++) {
      const replies = await Promise.all(Array.from({ length: 250 }, (_, i) => commands.incr(`n${i % 7}`)));
      answered += replies.length;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(answered).toBe(10_000);
    expect(Number(await commands.get("n0")) + Number(await commands.get("n6"))).toBe(40 * 36 + 40 * 35);
  });

  it("answers a room message STORE_UNAVAILABLE once Redis has not answered within REDIS_COMMAND_TIMEOUT_MS", async () => {
    const redis = await startFreezableRedis();
    const server = await startServer({
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: `t-${randomUUID()}:`,
      REDIS_COMMAND_TIMEOUT_MS: "600",
    });
    const socket = await connect(server.url);
    const ack = (event: string, payload: unknown) =>
      new Promise<{ ok: boolean; error?: { code: string } }>((resolve) =>
        socket.emit(event as "join-room", payload as string, resolve as never),
      );
    expect(await ack("join-room", "frozen")).toMatchObject({ ok: true });
    redis.child.kill("SIGSTOP");
    const started = Date.now();
    expect(await ack("room-message", { room: "frozen", message: "into the freeze", id: "m1" })).toMatchObject({
      ok: false,
      error: { code: "STORE_UNAVAILABLE" },
    });
    const ms = Date.now() - started;
    expect(ms).toBeGreaterThanOrEqual(600);
    // 1.25 × 600, plus a loaded machine's timer lateness.
    expect(ms).toBeLessThan(750 + 450);
    redis.child.kill("SIGCONT");
  });
});
