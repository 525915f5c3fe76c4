import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../src/config.js";

describe("config", () => {
  it("has defaults for everything", () => {
    const config = parseConfig({ REPLICA_ID: "a" });
    expect(config).toMatchObject({
      port: 5000,
      host: "0.0.0.0",
      replicaId: "a",
      redisUrl: undefined,
      corsOrigins: "*",
      logLevel: "info",
      maxHttpBufferSize: 1_000_000,
      postsLimit: 1000,
    });
  });

  it("reads a Redis Cluster's seed nodes and refuses REDIS_URL beside them", () => {
    const config = parseConfig({
      REDIS_CLUSTER_NODES: "10.0.0.1:7000, redis-1:7001,[::1]:7002",
      REDIS_CLUSTER_PASSWORD: "pw",
    });
    expect(config.redisCluster).toEqual({
      nodes: [
        { host: "10.0.0.1", port: 7000 },
        { host: "redis-1", port: 7001 },
        { host: "::1", port: 7002 },
      ],
      password: "pw",
    });
    expect(() => parseConfig({ REDIS_CLUSTER_NODES: "a:1", REDIS_URL: "redis://b:2" })).toThrow(/not both/);
  });

  it("defaults the replica id to the hostname", () => {
    expect(parseConfig({}).replicaId.length).toBeGreaterThan(0);
  });

  it.each([
    ["PORT", "http", /PORT: expected an integer/],
    ["PORT", "70000", /PORT: expected 0..65535/],
    ["REDIS_URL", "localhost:6379", /REDIS_URL/],
    ["REDIS_URL", "http://x", /REDIS_URL: expected redis:\/\//],
    ["LOG_LEVEL", "loud", /LOG_LEVEL: expected one of/],
    ["CORS_ORIGIN", "example.com", /CORS_ORIGIN/],
    ["MAX_HTTP_BUFFER_SIZE", "-1", /MAX_HTTP_BUFFER_SIZE/],
    ["REPLICA_ID", "has space", /REPLICA_ID/],
    ["REDIS_CLUSTER_NODES", "localhost", /REDIS_CLUSTER_NODES: expected host:port/],
    ["REDIS_CLUSTER_NODES", "a:7000,b:99999", /REDIS_CLUSTER_NODES: expected host:port.*b:99999/],
  ])("rejects %s=%s naming the variable", (name, value, text) => {
    let thrown: unknown;
    try {
      parseConfig({ [name]: value });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as ConfigError).variable).toBe(name);
    expect((thrown as ConfigError).message).toMatch(text);
  });

  it("stops start-up with one line naming the bad variable", () => {
    const result = spawnSync(process.execPath, ["--import", "tsx", "src/main.ts"], {
      env: { ...process.env, PORT: "not-a-port" },
      encoding: "utf8",
      timeout: 15_000,
    });
    expect(result.status).toBe(2);
    expect(result.stderr.trim()).toBe('config error: invalid PORT: expected an integer, got "not-a-port"');
  });
});
