import { existsSync, readFileSync } from "node:fs";
import { defineConfig } from "vitest/config";

// The image names (and Testcontainers settings) that `npm run test:setup` wrote, for a plain `npm test` or
// `npx vitest run` after it; variables already set win.
const SETUP_ENV = ".ci-work/test.env";
if (existsSync(SETUP_ENV)) {
  for (const [, key, value] of readFileSync(SETUP_ENV, "utf8").matchAll(/^([A-Z][A-Z0-9_]*)=(.*)$/gm)) {
    if (key && key !== "PATH" && process.env[key] === undefined) process.env[key] = value;
  }
}

/**
 * The tests that need nothing but Node and node_modules (no redis-server, nginx, Docker, Chromium, openssl or
 * Prometheus): config, validation, the in-memory event handlers, REST, ports, logs, shutdown of one process.
 * `npm run test:unit` runs only these, in well under a minute. The fuzzer needs only Node too but runs for half
 * a minute, so it stays in the full suite.
 */
export const UNIT_TESTS = [
  "test/admin-ui.test.ts",
  "test/client-reliable.test.ts",
  "test/config.test.ts",
  "test/engine-patches.test.ts",
  "test/events.test.ts",
  "test/http.test.ts",
  "test/loadtest-protocol.test.ts",
  "test/logs.test.ts",
  "test/ops-config.test.ts",
  "test/ports.test.ts",
  "test/shutdown.test.ts",
  "test/validation.test.ts",
];

export default defineConfig({
  test: {
    testTimeout: 20_000,
    hookTimeout: 60_000,
    projects: [
      { extends: true, test: { name: "unit", include: UNIT_TESTS } },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/**/*.test.ts"],
          exclude: UNIT_TESTS,
          // Fails the run at once, naming the command to run, when redis-server, nginx, Chromium… are missing.
          globalSetup: ["test/support/prerequisites.ts"],
        },
      },
    ],
  },
});
