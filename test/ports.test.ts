import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { freePortRun } from "./support/redis.js";

const listen = (port: number) =>
  new Promise<() => Promise<void>>((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen({ port, host: "127.0.0.1", exclusive: true }, () =>
      resolve(() => new Promise((done) => srv.close(() => done()))),
    );
  });

describe("free ports for spawned servers", () => {
  it("hands out runs of bindable ports below the kernel's ephemeral range", async () => {
    const ephemeralLow = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    for (let i = 0; i < 20; i++) {
      const base = await freePortRun(3);
      expect(base + 2).toBeLessThan(ephemeralLow);
      const closers = await Promise.all([base, base + 1, base + 2].map(listen));
      await Promise.all(closers.map((close) => close()));
    }
  });
});
