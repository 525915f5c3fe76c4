import WebSocket from "ws";
import { afterEach, describe, expect, it } from "vitest";
import { createLimitedLog, truncate } from "../src/ops/log-limiter.js";
import { captureLog, startLoggedServer } from "./support/capture-log.js";
import { cleanupAll, eventually, onCleanup, sleep } from "./support/server.js";

afterEach(cleanupAll);

describe("logs a client can trigger at will", () => {
  it("logs 2,000 polls with an unknown 8 KB sid as a couple of lines, the URL cut to 128 chars", async () => {
    const { url, lines, bytes } = await startLoggedServer();
    const before = bytes();
    const poll = `${url}/socket.io/?EIO=4&transport=polling&sid=${"x".repeat(8000)}`;
    for (let i = 0; i < 2000; i += 100) {
      await Promise.all(Array.from({ length: 100 }, () => fetch(poll).then((r) => r.arrayBuffer())));
    }
    await sleep(1100); // the window closes and reports what it counted
    const errors = lines.filter((l) => l.msg === "engine.io connection error");
    expect(errors.length).toBeGreaterThanOrEqual(1);
    expect(errors.length).toBeLessThanOrEqual(4);
    expect(errors.reduce((sum, l) => sum + (l.count as number), 0)).toBe(2000);
    for (const line of errors) expect((line.url as string).length).toBeLessThanOrEqual(128 + 20);
    expect(bytes() - before).toBeLessThan(4000);
  });

  it("logs one line per rejected connection kind, each with its own count", async () => {
    const { url, lines } = await startLoggedServer();
    await fetch(`${url}/socket.io/?EIO=4&transport=polling&sid=nope`);
    await fetch(`${url}/socket.io/?EIO=4&transport=carrier-pigeon`);
    await fetch(`${url}/socket.io/?EIO=4&transport=polling&sid=nope`);
    await sleep(1100);
    const kinds = lines.filter((l) => l.msg === "engine.io connection error").map((l) => [l.reason, l.count]);
    expect(kinds).toEqual([
      ["Session ID unknown", 1],
      ["Transport unknown", 1],
      ["Session ID unknown", 1],
    ]);
  });

  it("logs a deeply nested payload's failure without a stack, once a second however many arrive", async () => {
    const { url, lines } = await startLoggedServer();
    const ws = new WebSocket(`${url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
    onCleanup(() => ws.close());
    await new Promise((resolve) => ws.once("open", resolve));
    ws.send("40");
    await sleep(100);
    const deep = "[".repeat(20_000) + "]".repeat(20_000);
    for (let i = 0; i < 20; i++) ws.send(`42["echo",${deep}]`);
    await eventually(() => lines.some((l) => l.msg === "event handler failed"), 3000, "a failure line");
    await sleep(1100);
    const failures = lines.filter((l) => l.msg === "event handler failed");
    expect(failures.length).toBeLessThanOrEqual(2);
    expect(failures.reduce((sum, l) => sum + (l.count as number), 0)).toBe(20);
    for (const line of failures) {
      expect(JSON.stringify(line)).not.toMatch(/"stack"|\\n\s+at /);
      expect(line.error).toEqual({ type: "RangeError", message: "Maximum call stack size exceeded" });
    }
  });
});

describe("rate-limited log", () => {
  it("logs the first of a kind at once, then one line per interval with the count since the previous line", async () => {
    const { log, lines } = captureLog();
    const limited = createLimitedLog(log, 200);
    onCleanup(() => limited.close());
    for (let i = 0; i < 50; i++) limited.log("warn", "a", { i }, "kind a");
    limited.log("warn", "b", {}, "kind b");
    expect(lines.map((l) => [l.msg, l.count])).toEqual([
      ["kind a", 1],
      ["kind b", 1],
    ]);
    await sleep(250);
    expect(lines.map((l) => [l.msg, l.count, l.i])).toEqual([
      ["kind a", 1, 0],
      ["kind b", 1, undefined],
      ["kind a", 49, 49],
    ]);
    await sleep(250);
    // A quiet window: nothing more, and the next one logs at once again.
    expect(lines).toHaveLength(3);
    limited.log("warn", "a", {}, "kind a");
    expect(lines).toHaveLength(4);
  });

  it("cuts long values to 128 chars and says how long they were", () => {
    expect(truncate("x".repeat(8000))).toBe(`${"x".repeat(128)}…(8000 chars)`);
    expect(truncate("short")).toBe("short");
  });
});
