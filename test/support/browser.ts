import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { chromium, type Browser } from "playwright-core";
import { onCleanup } from "./server.js";

const CANDIDATES = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"];

/** Headless Debian Chromium, closed after the test; fails (never skips) when it is not installed. */
export async function launchChromium(): Promise<Browser> {
  const executablePath = CANDIDATES.find((path): path is string => !!path && existsSync(path));
  if (!executablePath) {
    throw new Error("chromium not found: apt-get install -y chromium (or set CHROMIUM_PATH)");
  }
  const browser = await chromium.launch({
    executablePath,
    // No background traffic: this machine's network is closed and the tests talk only to loopback.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  // Playwright starts it with a fresh profile in a temporary directory of its own and removes it on close.
  onCleanup(() => browser.close());
  return browser;
}

/** Serves one static HTML file on a loopback port of its own (another origin than the server under test). */
export async function servePage(file: string): Promise<string> {
  const html = readFileSync(file);
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(html);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  onCleanup(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}
