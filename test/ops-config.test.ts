import { describe, expect, it } from "vitest";
import { parseConfig } from "../src/config.js";

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
