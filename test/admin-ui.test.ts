import bcrypt from "bcryptjs";
import { io as ioClient, type Socket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../src/config.js";
import { cleanupAll, connect, onCleanup, startServer } from "./support/server.js";
import { hs256, TEST_JWT_SECRET } from "./support/tokens.js";

const PASSWORD = "unit-admin-password";
const HASH = bcrypt.hashSync(PASSWORD, 4);
const ON = { ADMIN_UI: "on", ADMIN_UI_PASSWORD_HASH: HASH };

afterEach(cleanupAll);

const configError = (env: Record<string, string>) => {
  try {
    parseConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("no config error");
};

function adminSocket(url: string, auth: object): Socket {
  const socket = ioClient(`${url}/admin`, { auth, transports: ["websocket"], forceNew: true, reconnection: false });
  onCleanup(() => void socket.disconnect());
  return socket;
}

const outcome = (socket: Socket) =>
  new Promise<string>((resolve) => {
    socket.once("connect", () => resolve("connected"));
    socket.once("connect_error", (err) => resolve(err.message));
  });

describe("admin UI configuration", () => {
  it("is off by default, on with a bcrypt hash, the username defaulting to admin", () => {
    expect(parseConfig({}).adminUi).toEqual({ enabled: false });
    expect(parseConfig(ON).adminUi).toEqual({ enabled: true, username: "admin", passwordHash: HASH });
    expect(parseConfig({ ...ON, ADMIN_UI_USERNAME: "ops" }).adminUi).toMatchObject({ username: "ops" });
  });

  it("names the variable: ADMIN_UI=on without a hash, a bad hash, a bad mode or username", () => {
    expect(configError({ ADMIN_UI: "on" }).message).toMatch(
      /^invalid ADMIN_UI_PASSWORD_HASH: required with ADMIN_UI=on/,
    );
    const bad = configError({ ADMIN_UI: "on", ADMIN_UI_PASSWORD_HASH: "plaintext" });
    expect(bad.variable).toBe("ADMIN_UI_PASSWORD_HASH");
    expect(bad.message).not.toContain("plaintext");
    expect(configError({ ADMIN_UI: "yes" }).message).toBe('invalid ADMIN_UI: expected on or off, got "yes"');
    expect(configError({ ...ON, ADMIN_UI_USERNAME: "a:b" }).variable).toBe("ADMIN_UI_USERNAME");
  });
});

describe("admin UI on one server", () => {
  it("is absent when off: /admin/ is 404 and the /admin namespace does not exist", async () => {
    const { url } = await startServer();
    expect((await fetch(`${url}/admin/`)).status).toBe(404);
    expect(await outcome(adminSocket(url, { username: "admin", password: PASSWORD }))).toBe("Invalid namespace");
  });

  it("masks the handshake token once verified; the token still authenticates", async () => {
    const { url, app } = await startServer({ ...ON, AUTH_MODE: "optional", AUTH_JWT_SECRET: TEST_JWT_SECRET });
    const token = await hs256("alice", {}, 300);
    const client = await connect(url, { auth: { token } });
    const [socket] = await app.io.fetchSockets();
    expect(socket?.id).toBe(client.id);
    expect(socket?.data.user).toBe("alice");
    expect(socket?.handshake.auth).toEqual({ token: "[redacted]" });
    expect(JSON.stringify(socket?.handshake)).not.toContain(token);
    // An invalid token is still refused: the mask runs after the verification.
    await expect(connect(url, { auth: { token: "not-a-jwt" } })).rejects.toThrow();
  });

  it("refuses malformed and wrong credentials without stopping the server; accepts the right ones", async () => {
    const { url } = await startServer(ON);
    for (const auth of [{}, { username: "admin" }, { username: "admin", password: 1 }, { password: PASSWORD }]) {
      expect(await outcome(adminSocket(url, auth))).toBe("invalid credentials");
    }
    expect(await outcome(adminSocket(url, { username: "admin", password: "wrong" }))).toBe("invalid credentials");
    expect(await outcome(adminSocket(url, { username: "root", password: PASSWORD }))).toBe("invalid credentials");
    const admin = adminSocket(url, { username: "admin", password: PASSWORD });
    const session = new Promise<string>((resolve) => admin.once("session", resolve));
    expect(await outcome(admin)).toBe("connected");
    // The session id the UI keeps instead of the password lets it reconnect.
    expect(await outcome(adminSocket(url, { sessionId: await session }))).toBe("connected");
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  });

  it("serves the UI under /admin/ with basic auth, the icon font from this server, and the chat page", async () => {
    const { url } = await startServer(ON);
    const basic = (password: string) => ({
      authorization: `Basic ${Buffer.from(`admin:${password}`).toString("base64")}`,
    });
    expect((await fetch(`${url}/admin/`)).status).toBe(401);
    expect((await fetch(`${url}/admin/`, { headers: basic("nope") })).status).toBe(401);
    const redirect = await fetch(`${url}/admin`, { redirect: "manual" });
    expect([redirect.status, redirect.headers.get("location")]).toEqual([301, "/admin/"]);
    const index = await fetch(`${url}/admin/`, { headers: basic(PASSWORD) });
    expect(index.status).toBe(200);
    expect(index.headers.get("content-security-policy")).toContain("default-src 'self'");
    expect(await index.text()).toContain('href="mdi/css/materialdesignicons.min.css"');
    const font = await fetch(`${url}/admin/mdi/fonts/materialdesignicons-webfont.woff2`, { headers: basic(PASSWORD) });
    expect(font.status).toBe(200);

    expect((await fetch(`${url}/`)).status).toBe(200);
    const chat = await fetch(`${url}/chat/`);
    expect(chat.status).toBe(200);
    expect(await chat.text()).toContain('src="chat.js"');
    const bundle = await fetch(`${url}/chat/reliable-rooms.js`);
    expect(bundle.headers.get("content-type")).toMatch(/^text\/javascript/);
    const code = await bundle.text();
    expect(code).toContain("function createReliableRooms");
    expect(code).not.toMatch(/^import /m);
  });
});
