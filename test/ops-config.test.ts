import { describe, expect, it } from "vitest";
import { parseConfig } from "../src/config.js";
import { fdLimitWarning, openFilesLimit } from "../src/limits/fd-limit.js";
import { defaultMaxConnections } from "../src/limits/config.js";

describe("METRICS_PORT, DRAIN_DELAY_S, DRAIN_CLOSE_S, SHUTDOWN_TIMEOUT_MS", () => {
  it("defaults to metrics on 9464, a 5 s + 5 s drain and a shutdown bound that covers it", () => {
    expect(parseConfig({}).ops).toEqual({
      metricsPort: 9464,
      drainDelayMs: 5000,
      drainCloseMs: 5000,
      shutdownTimeoutMs: 18_000,
    });
  });

  it("takes fractional seconds and turns metrics off with 0", () => {
    const ops = parseConfig({ METRICS_PORT: "0", DRAIN_DELAY_S: "0.25", DRAIN_CLOSE_S: "1.5" }).ops;
    expect(ops).toMatchObject({ metricsPort: 0, drainDelayMs: 250, drainCloseMs: 1500, shutdownTimeoutMs: 9750 });
  });

  it.each([
    [{ METRICS_PORT: "5000", PORT: "5000" }, "invalid METRICS_PORT: must differ from PORT (5000)"],
    [{ METRICS_PORT: "70000" }, "invalid METRICS_PORT"],
    [{ DRAIN_DELAY_S: "-1" }, "invalid DRAIN_DELAY_S"],
    [{ DRAIN_CLOSE_S: "soon" }, "invalid DRAIN_CLOSE_S"],
    [{ SHUTDOWN_TIMEOUT_MS: "9000" }, "invalid SHUTDOWN_TIMEOUT_MS: expected more than DRAIN_DELAY_S + DRAIN_CLOSE_S"],
  ])("refuses %o naming the variable", (env, message) => {
    expect(() => parseConfig(env)).toThrow(message);
  });
});

describe("MAX_CONNECTIONS against the file-descriptor limit", () => {
  const procLimits = (soft: string) =>
    "Limit                     Soft Limit           Hard Limit           Units     \n" +
    "Max processes             127431               127431               processes \n" +
    `Max open files            ${soft.padEnd(20)} 20000                files     \n`;

  it("reads the soft limit of open files from /proc/self/limits", () => {
    expect(openFilesLimit(procLimits("20000"))).toBe(20_000);
    expect(openFilesLimit(procLimits("unlimited"))).toBeUndefined();
    expect(openFilesLimit("")).toBeUndefined();
    // This process's own, on Linux.
    expect(openFilesLimit()).toBeGreaterThan(0);
  });

  it("warns when MAX_CONNECTIONS plus the reserve does not fit, naming both numbers", () => {
    expect(fdLimitWarning(20_000, 20_000)).toMatch(
      /MAX_CONNECTIONS \(20000\).*20000 files.*past 19744 fail with EMFILE/,
    );
    expect(fdLimitWarning(19_744, 20_000)).toBeUndefined();
    expect(fdLimitWarning(1_000_000, undefined)).toBeUndefined();
  });

  it("defaults MAX_CONNECTIONS to 20000, or to what the file limit allows when that is lower", () => {
    expect(defaultMaxConnections(undefined)).toBe(20_000);
    expect(defaultMaxConnections(1_048_576)).toBe(20_000);
    expect(defaultMaxConnections(20_000)).toBe(19_744);
    expect(parseConfig({}).limits.maxConnections).toBe(defaultMaxConnections(openFilesLimit()));
    expect(parseConfig({ MAX_CONNECTIONS: "50000" }).limits.maxConnections).toBe(50_000);
  });
});
