import { randomUUID } from "node:crypto";
import { mkdtemp, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK } from "jose";
import { io as connectClient } from "socket.io-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createReliableRooms, type RoomMessageReceived } from "../src/client/index.js";
import { decodeTokenExpiry } from "../src/client/tokens.js";
import { ConfigError, parseConfig } from "../src/config.js";
import type { ErrorPayload, UnauthorizedData } from "../src/contract.js";
import { startRedis, type RedisServer } from "./support/redis.js";
import { hs256, testSecretKey, TEST_JWT_SECRET, type Claims } from "./support/tokens.js";
import {
  cleanupAll,
  connect,
  eventually,
  next,
  onCleanup,
  postJson,
  record,
  sleep,
  startServer,
  type ClientSocket,
} from "./support/server.js";

afterEach(cleanupAll);

const HS = { AUTH_JWT_SECRET: TEST_JWT_SECRET };

interface KeyPair {
  kid: string;
  alg: "RS256" | "ES256";
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: JWK;
}

async function keyPair(alg: KeyPair["alg"]): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = randomUUID();
  return { kid, alg, privateKey, publicKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" } };
}

function signWith(pair: KeyPair, sub: string, claims: Claims = {}, ttlS = 60): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: pair.alg, kid: pair.kid })
    .setSubject(sub)
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlS)
    .sign(pair.privateKey);
}

async function jwksFile(...pairs: KeyPair[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "auth-test-"));
  const path = join(dir, "jwks.json");
  await writeFile(path, JSON.stringify({ keys: pairs.map((p) => p.jwk) }));
  return path;
}

/** The handshake's refusal: `connect_error`'s data. */
async function refused(url: string, auth?: object): Promise<UnauthorizedData> {
  const err = await connect(url, auth ? { auth } : {}).then(
    () => {
      throw new Error("connected, expected a refusal");
    },
    (e: Error & { data?: UnauthorizedData }) => e,
  );
  expect(err.data?.code).toBe("UNAUTHORIZED");
  return err.data as UnauthorizedData;
}

const as = (url: string, token: string) => connect(url, { auth: { token } });

const post = (url: string, token?: string) => postJson(`${url}/api/posts`, { title: "t", body: "b" }, token);

function configError(env: Record<string, string>): ConfigError {
  try {
    parseConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("no ConfigError");
}

describe("auth configuration", () => {
  it("defaults to AUTH_MODE=off and MAX_ROOMS_PER_SOCKET=100", () => {
    const config = parseConfig({});
    expect(config.auth.mode).toBe("off");
    expect(config.maxRoomsPerSocket).toBe(100);
  });

  it("refuses required or optional mode without a key source, naming AUTH_MODE", () => {
    expect(configError({ AUTH_MODE: "required" }).variable).toBe("AUTH_MODE");
    expect(configError({ AUTH_MODE: "optional" }).message).toMatch(/AUTH_JWT_SECRET, AUTH_JWKS_FILE, AUTH_JWKS_URL/);
  });

  it("refuses two key sources, naming the second", () => {
    const err = configError({ AUTH_MODE: "required", ...HS, AUTH_JWKS_URL: "https://idp.example/jwks" });
    expect(err.variable).toBe("AUTH_JWKS_URL");
  });

  it.each([
    [{ AUTH_MODE: "sometimes" }, "AUTH_MODE"],
    [{ AUTH_MODE: "required", AUTH_JWT_SECRET: "short" }, "AUTH_JWT_SECRET"],
    [{ AUTH_MODE: "required", AUTH_JWKS_FILE: "/nonexistent/jwks.json" }, "AUTH_JWKS_FILE"],
    [{ AUTH_MODE: "required", AUTH_JWKS_URL: "ftp://x/jwks" }, "AUTH_JWKS_URL"],
    [
      { AUTH_MODE: "required", AUTH_JWKS_URL: "https://x/jwks", AUTH_JWKS_COOLDOWN_MS: "soon" },
      "AUTH_JWKS_COOLDOWN_MS",
    ],
    [{ MAX_ROOMS_PER_SOCKET: "0" }, "MAX_ROOMS_PER_SOCKET"],
  ])("refuses %o naming %s", (env, variable) => {
    expect(configError(env).variable).toBe(variable);
  });
});

describe("AUTH_MODE=required", () => {
  const env = { AUTH_MODE: "required", ...HS, AUTH_ISSUER: "https://idp.test", AUTH_AUDIENCE: "realtime" };
  const good = (sub: string, claims: Claims = {}, ttlS = 60) =>
    hs256(sub, { iss: "https://idp.test", aud: "realtime", ...claims }, ttlS);

  it("accepts a valid token", async () => {
    const { url } = await startServer(env);
    const socket = await as(url, await good("alice"));
    expect(socket.connected).toBe(true);
  });

  it("refuses a handshake without a token as missing", async () => {
    const { url } = await startServer(env);
    expect(await refused(url)).toMatchObject({ reason: "missing", message: expect.stringMatching(/missing/) });
  });

  it("refuses an expired token as expired", async () => {
    const { url } = await startServer(env);
    expect(await refused(url, { token: await good("alice", {}, -10) })).toMatchObject({ reason: "expired" });
  });

  it.each([
    ["a bad signature", () => hs256("alice", { iss: "https://idp.test", aud: "realtime" }, 60, testSecretKey.slice(1))],
    ["the wrong issuer", () => good("alice", { iss: "https://evil.test" })],
    ["the wrong audience", () => good("alice", { aud: "another-api" })],
    [
      "no sub",
      () =>
        new SignJWT({ iss: "https://idp.test", aud: "realtime" })
          .setProtectedHeader({ alg: "HS256" })
          .sign(testSecretKey),
    ],
    ["a rooms claim that is not a list", () => good("alice", { rooms: "lobby" as unknown as string[] })],
    ["garbage", () => Promise.resolve("not.a.jwt")],
  ])("refuses a token with %s as invalid", async (_what, make) => {
    const { url } = await startServer(env);
    expect(await refused(url, { token: await make() })).toMatchObject({ reason: "invalid" });
  });

  it("refuses an RS256 token when the key source is a secret (algorithm fixed per source)", async () => {
    const { url } = await startServer(env);
    const pair = await keyPair("RS256");
    const token = await signWith(pair, "alice", { iss: "https://idp.test", aud: "realtime" });
    expect(await refused(url, { token })).toMatchObject({ reason: "invalid" });
  });
});

describe("AUTH_MODE=optional", () => {
  const env = { AUTH_MODE: "optional", ...HS };

  it("lets a connection without a token in, anonymous: its messages come from its socket id", async () => {
    const { url } = await startServer(env);
    const socket = await connect(url);
    const got = next(socket, "broadcast-message");
    socket.emit("broadcast", "hi");
    expect(await got).toEqual({ from: socket.id, message: "hi" });
  });

  it("refuses an invalid or expired token rather than treating the connection as anonymous", async () => {
    const { url } = await startServer(env);
    expect(await refused(url, { token: "not.a.jwt" })).toMatchObject({ reason: "invalid" });
    expect(await refused(url, { token: await hs256("alice", {}, -5) })).toMatchObject({ reason: "expired" });
  });

  it("makes sub the `from` of broadcast, chat and room-message, keeping the client's message id", async () => {
    const { url } = await startServer(env);
    const alice = await as(url, await hs256("alice"));
    const broadcast = next(alice, "broadcast-message");
    alice.emit("broadcast", "b");
    expect(await broadcast).toEqual({ from: "alice", message: "b" });
    const chat = next(alice, "chat");
    alice.emit("chat", "c");
    expect(await chat).toEqual({ from: "alice", message: "c" });
    await alice.emitWithAck("join-room", "lobby");
    const received = next(alice, "room-message-received");
    await alice.emitWithAck("room-message", { room: "lobby", message: "m", id: "m-1" });
    expect(await received).toMatchObject({ from: "alice", room: "lobby", message: "m", id: "m-1" });
  });

  it("deduplicates room-message ids per user: the same id from two users is two messages, from one user one", async () => {
    const { url } = await startServer(env);
    const alice = await as(url, await hs256("alice"));
    const bob = await as(url, await hs256("bob"));
    const anonymous = await connect(url);
    for (const s of [alice, bob, anonymous]) await s.emitWithAck("join-room", "dedupe");
    const seen = record(anonymous, "room-message-received");
    const a = await alice.emitWithAck("room-message", { room: "dedupe", message: "from alice", id: "same" });
    const b = await bob.emitWithAck("room-message", { room: "dedupe", message: "from bob", id: "same" });
    // Ids that would collide if users were only prefixed: an anonymous id cannot stand for alice's "same".
    const c = await anonymous.emitWithAck("room-message", { room: "dedupe", message: "anon", id: "alice:same" });
    const again = await alice.emitWithAck("room-message", { room: "dedupe", message: "resent", id: "same" });
    expect([a, b, c].map((x) => x.ok && x.offset)).toEqual([1, 2, 3]);
    expect(again).toMatchObject({ ok: true, offset: 1 });
    await eventually(() => seen.length === 3);
    await sleep(100);
    expect(seen.map((m) => [m.from, m.id])).toEqual([
      ["alice", "same"],
      ["bob", "same"],
      [anonymous.id, "alice:same"],
    ]);
  });

  it("lists the members' user ids beside their socket ids in room-members", async () => {
    const { url } = await startServer(env);
    const token = await hs256("alice");
    const one = await as(url, token);
    const two = await as(url, token);
    const anonymous = await connect(url);
    for (const s of [one, two, anonymous]) await s.emitWithAck("join-room", "who");
    const reply = await anonymous.emitWithAck("room-members", "who");
    expect(reply.ok && [...reply.members].sort()).toEqual([one.id, two.id, anonymous.id].sort());
    expect(reply.ok && reply.users).toEqual(["alice"]);
  });
});

describe("room permissions", () => {
  const env = { AUTH_MODE: "optional", ...HS };

  async function expectForbidden(socket: ClientSocket, event: "join-room" | "room-members", room: string) {
    const error = next(socket, "error");
    const ack = await (socket.emitWithAck as (e: string, r: string) => Promise<unknown>)(event, room);
    expect(ack).toMatchObject({ ok: false, error: { code: "FORBIDDEN" } });
    expect(await error).toMatchObject({ event, code: "FORBIDDEN" });
  }

  it("lets a `rooms` claim of glob patterns decide which rooms may be joined", async () => {
    const { url } = await startServer(env);
    const socket = await as(url, await hs256("alice", { rooms: ["team-*", "lobby"] }));
    for (const room of ["team-a", "team-", "team-x.y", "lobby"]) {
      expect(await socket.emitWithAck("join-room", room)).toMatchObject({ ok: true, room });
    }
    for (const room of ["lobby2", "xteam-a", "other", "private:alice"])
      await expectForbidden(socket, "join-room", room);
  });

  it("lets a token without `rooms` join every room but private:*, which a pattern can grant", async () => {
    const { url } = await startServer(env);
    const plain = await as(url, await hs256("alice"));
    expect(await plain.emitWithAck("join-room", "anything")).toMatchObject({ ok: true });
    await expectForbidden(plain, "join-room", "private:alice");
    const granted = await as(url, await hs256("alice", { rooms: ["private:alice"] }));
    expect(await granted.emitWithAck("join-room", "private:alice")).toMatchObject({ ok: true });
  });

  it("refuses room-members and room-history of rooms outside the claim", async () => {
    const { url } = await startServer(env);
    const socket = await as(url, await hs256("alice", { rooms: ["lobby"] }));
    await expectForbidden(socket, "room-members", "elsewhere");
    const error = next(socket, "error");
    const ack = await socket.emitWithAck("room-history", { room: "elsewhere", since: { epoch: null, offset: 0 } });
    expect(ack).toMatchObject({ ok: false, error: { code: "FORBIDDEN" } });
    expect(await error).toMatchObject({ event: "room-history", code: "FORBIDDEN" });
  });

  it("refuses private:* rooms to anonymous connections, also when AUTH_MODE=off", async () => {
    for (const mode of [env, {}]) {
      const { url } = await startServer(mode);
      const anonymous = await connect(url);
      await expectForbidden(anonymous, "join-room", "private:x");
      expect(await anonymous.emitWithAck("join-room", "public")).toMatchObject({ ok: true });
    }
  });

  it("refuses a join beyond MAX_ROOMS_PER_SOCKET with TOO_MANY_ROOMS, rejoining a joined room still works", async () => {
    const { url } = await startServer({ MAX_ROOMS_PER_SOCKET: "2" });
    const socket = await connect(url);
    await socket.emitWithAck("join-room", "a");
    await socket.emitWithAck("join-room", "b");
    const error = next(socket, "error");
    expect(await socket.emitWithAck("join-room", "c")).toMatchObject({ ok: false, error: { code: "TOO_MANY_ROOMS" } });
    expect(await error).toMatchObject({ event: "join-room", code: "TOO_MANY_ROOMS" });
    expect(await socket.emitWithAck("join-room", "a")).toMatchObject({ ok: true });
    await socket.emitWithAck("leave-room", "b");
    expect(await socket.emitWithAck("join-room", "c")).toMatchObject({ ok: true });
  });
});

describe("POST /api/posts", () => {
  it("needs a token with the posts:write scope: 401 without a valid one, 403 without the scope, else 201", async () => {
    const { url } = await startServer({ AUTH_MODE: "optional", ...HS });
    const noToken = await post(url);
    expect(noToken.status).toBe(401);
    expect(await noToken.json()).toMatchObject({ error: { code: "UNAUTHORIZED" } });
    expect((await post(url, "not.a.jwt")).status).toBe(401);
    expect((await post(url, await hs256("alice", { scope: "posts:write" }, -5))).status).toBe(401);
    const noScope = await post(url, await hs256("alice", { scope: "posts:read admin" }));
    expect(noScope.status).toBe(403);
    expect(await noScope.json()).toMatchObject({ error: { code: "FORBIDDEN" } });
    expect((await post(url, await hs256("alice", { scope: "posts:read posts:write" }))).status).toBe(201);
  });

  it("stays open when AUTH_MODE=off", async () => {
    const { url } = await startServer({});
    expect((await post(url)).status).toBe(201);
  });
});

describe("token expiry while connected", () => {
  const env = { AUTH_MODE: "required", ...HS };

  it("emits TOKEN_EXPIRED and disconnects when the token expires", async () => {
    const { url } = await startServer(env);
    const socket = await as(url, await hs256("alice", {}, 2));
    const errors = record(socket, "error");
    const reason = await new Promise<string>((resolve) => socket.once("disconnect", resolve));
    expect(reason).toBe("io server disconnect");
    expect(errors).toEqual([{ event: "auth", code: "TOKEN_EXPIRED", message: expect.any(String) }]);
  });

  it("keeps the connection when auth-refresh brings a new token of the same user first", async () => {
    const { url } = await startServer(env);
    const socket = await as(url, await hs256("alice", {}, 2));
    const fresh = await hs256("alice", {}, 60);
    expect(await socket.emitWithAck("auth-refresh", { token: fresh })).toEqual({
      ok: true,
      exp: decodeTokenExpiry(fresh),
    });
    await sleep(3000);
    expect(socket.connected).toBe(true);
  });

  it("refuses auth-refresh with another user's token (FORBIDDEN) or an invalid one (UNAUTHORIZED)", async () => {
    const { url } = await startServer(env);
    const socket = await as(url, await hs256("alice"));
    expect(await socket.emitWithAck("auth-refresh", { token: await hs256("mallory") })).toMatchObject({
      ok: false,
      error: { code: "FORBIDDEN" },
    });
    expect(await socket.emitWithAck("auth-refresh", { token: await hs256("alice", {}, -5) })).toMatchObject({
      ok: false,
      error: { code: "UNAUTHORIZED", message: expect.stringMatching(/expired/) },
    });
  });

  it("applies the refreshed token's rooms claim: rooms no longer allowed are left", async () => {
    const { url } = await startServer(env);
    const socket = await as(url, await hs256("alice", { rooms: ["team-*", "lobby"] }));
    await socket.emitWithAck("join-room", "team-a");
    await socket.emitWithAck("join-room", "lobby");
    const left = next(socket, "room-left");
    await socket.emitWithAck("auth-refresh", { token: await hs256("alice", { rooms: ["lobby"] }) });
    expect(await left).toBe("team-a");
    const info = await socket.emitWithAck("server-info");
    expect(info.ok && info.rooms).toEqual(["lobby"]);
    expect(await socket.emitWithAck("join-room", "team-b")).toMatchObject({ ok: false, error: { code: "FORBIDDEN" } });
  });
});

describe("JWKS key sources", () => {
  it("verifies RS256 and ES256 tokens from AUTH_JWKS_FILE, and refuses an HS256 token signed with the public key", async () => {
    const rs = await keyPair("RS256");
    const es = await keyPair("ES256");
    const { url } = await startServer({ AUTH_MODE: "required", AUTH_JWKS_FILE: await jwksFile(rs, es) });
    expect((await as(url, await signWith(rs, "alice"))).connected).toBe(true);
    expect((await as(url, await signWith(es, "bob"))).connected).toBe(true);
    // The classic confusion: the public key (PEM, or its JWK's JSON) used as an HMAC secret.
    for (const secret of [await exportSPKI(rs.publicKey), JSON.stringify(rs.jwk)]) {
      const forged = await new SignJWT({})
        .setProtectedHeader({ alg: "HS256", kid: rs.kid })
        .setSubject("admin")
        .sign(new TextEncoder().encode(secret));
      expect(await refused(url, { token: forged })).toMatchObject({ reason: "invalid" });
    }
    const stranger = await keyPair("RS256");
    expect(await refused(url, { token: await signWith(stranger, "eve") })).toMatchObject({ reason: "invalid" });
  });

  it("follows key rotation at AUTH_JWKS_URL by kid", async () => {
    const first = await keyPair("ES256");
    const second = await keyPair("RS256");
    let served = [first];
    let fetches = 0;
    const jwks: Server = createServer((_req, res) => {
      fetches++;
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ keys: served.map((p) => p.jwk) }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, "127.0.0.1", resolve));
    onCleanup(() => new Promise<void>((resolve) => jwks.close(() => resolve())));
    const jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`;
    const { url } = await startServer({ AUTH_MODE: "required", AUTH_JWKS_URL: jwksUrl, AUTH_JWKS_COOLDOWN_MS: "0" });

    expect((await as(url, await signWith(first, "alice"))).connected).toBe(true);
    expect((await as(url, await signWith(first, "alice"))).connected).toBe(true);
    expect(fetches).toBe(1); // cached

    served = [second];
    expect((await as(url, await signWith(second, "alice"))).connected).toBe(true); // unknown kid: refetched
    expect(fetches).toBe(2);
    expect(await refused(url, { token: await signWith(first, "alice") })).toMatchObject({ reason: "invalid" });
  });
});

describe("with a real Redis", () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(() => redis.stop());

  it("disconnects every socket of a user on both replicas, with a token whose scope holds admin", async () => {
    const env = { AUTH_MODE: "required", ...HS, REDIS_URL: redis.url, REDIS_KEY_PREFIX: `t-${randomUUID()}:` };
    const one = await startServer({ ...env, REPLICA_ID: "one" });
    const two = await startServer({ ...env, REPLICA_ID: "two" });
    await eventually(() => one.app.isReady() && two.app.isReady(), 5000, "redis ready");
    const alice = await hs256("alice");
    const onOne = await as(one.url, alice);
    const onTwo = await as(two.url, alice);
    const bob = await as(two.url, await hs256("bob"));
    const reasons: string[] = [];
    for (const s of [onOne, onTwo]) s.on("disconnect", (reason) => reasons.push(reason));

    const kick = (token?: string) => postJson(`${one.url}/api/admin/disconnect`, { sub: "alice" }, token);
    expect((await kick()).status).toBe(401);
    expect((await kick(await hs256("ops", { scope: "posts:write" }))).status).toBe(403);
    expect(onOne.connected && onTwo.connected).toBe(true);

    const res = await kick(await hs256("ops", { scope: "admin" }));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ sub: "alice" });
    await eventually(() => reasons.length === 2, 3000, "both of alice's sockets disconnected");
    expect(reasons).toEqual(["io server disconnect", "io server disconnect"]);
    await sleep(100);
    expect(bob.connected).toBe(true);
  });

  it("deduplicates room-message ids per user in the Redis history too", async () => {
    const env = { AUTH_MODE: "optional", ...HS, REDIS_URL: redis.url, REDIS_KEY_PREFIX: `t-${randomUUID()}:` };
    const { app, url } = await startServer(env);
    await eventually(() => app.isReady(), 5000, "redis ready");
    const alice = await as(url, await hs256("alice"));
    const bob = await as(url, await hs256("bob"));
    const anonymous = await connect(url);
    for (const s of [alice, bob, anonymous]) await s.emitWithAck("join-room", "dedupe");
    const send = (s: ClientSocket, id: string) => s.emitWithAck("room-message", { room: "dedupe", message: "m", id });
    const offsets = [];
    for (const [s, id] of [
      [alice, "x"],
      [bob, "x"],
      [anonymous, "x"],
      [anonymous, "u:5:alice:x"],
      [alice, "x"],
    ] as const) {
      const ack = await send(s, id);
      offsets.push(ack.ok && ack.offset);
    }
    expect(offsets).toEqual([1, 2, 3, 4, 1]);
  });

  it("keeps the admin route closed when AUTH_MODE=off", async () => {
    const { url } = await startServer({});
    const res = await postJson(`${url}/api/admin/disconnect`, { sub: "alice" }, await hs256("ops", { scope: "admin" }));
    expect(res.status).toBe(401);
  });
});

describe("reliable client helper with getToken", () => {
  const env = { AUTH_MODE: "required", ...HS };

  function helper(url: string, getToken: () => Promise<string>, refreshBeforeExpiryMs: number) {
    const socket: ClientSocket = connectClient(url, {
      transports: ["websocket"],
      forceNew: true,
      reconnectionDelay: 20,
      reconnectionDelayMax: 50,
    });
    onCleanup(() => void socket.disconnect());
    const got: RoomMessageReceived[] = [];
    const errors: Error[] = [];
    const rooms = createReliableRooms(socket, {
      onMessage: (m) => got.push(m),
      onError: (e) => errors.push(e),
      getToken,
      refreshBeforeExpiryMs,
      ackTimeoutMs: 2000,
      retryDelayMs: 20,
    });
    onCleanup(() => rooms.close());
    return { socket, rooms, got, errors };
  }

  it("obtains a fresh token after expiry, reconnects and keeps delivering the room", async () => {
    const { url } = await startServer(env);
    let issued = 0;
    // The first token is already expired (handshake refused), the second expires while connected.
    const getToken = () => hs256("alice", {}, [-5, 2][issued++] ?? 60);
    const { socket, rooms, got, errors } = helper(url, getToken, 0);
    const notices = record(socket, "error");
    await rooms.join("lobby");
    await rooms.send("lobby", "before");
    await eventually(() => notices.some((n: ErrorPayload) => n.code === "TOKEN_EXPIRED"), 5000, "TOKEN_EXPIRED");
    await eventually(() => socket.connected && issued >= 3, 5000, "reconnected with a fresh token");
    await rooms.send("lobby", "after");
    await eventually(() => got.length === 2);
    expect(got.map((m) => [m.from, m.message])).toEqual([
      ["alice", "before"],
      ["alice", "after"],
    ]);
    expect(errors).toEqual([]);
  });

  it("sends auth-refresh ahead of expiry so the connection is never dropped", async () => {
    const { url } = await startServer(env);
    let issued = 0;
    const getToken = () => {
      issued++;
      return hs256("alice", {}, 3);
    };
    // Tokens carry whole seconds: refreshing 1.5 s ahead always yields a later exp than the one replaced.
    const { socket, rooms, errors } = helper(url, getToken, 1500);
    await rooms.join("lobby");
    const disconnects = record(socket, "error");
    let dropped = false;
    socket.on("disconnect", () => (dropped = true));
    await sleep(4500);
    expect(dropped).toBe(false);
    expect(disconnects).toEqual([]);
    expect(issued).toBeGreaterThanOrEqual(3);
    expect(errors).toEqual([]);
  });
});
