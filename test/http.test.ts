import { afterEach, describe, expect, it } from "vitest";
import type { Post } from "../src/contract.js";
import { cleanupAll, connect, next, postJson, startServer } from "./support/server.js";

afterEach(cleanupAll);

describe("REST", () => {
  it("answers GET / with the greeting and the replica header", async () => {
    const { url } = await startServer({ REPLICA_ID: "r-7" });
    const res = await fetch(`${url}/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("Hello server is working");
    expect(res.headers.get("x-replica-id")).toBe("r-7");
  });

  it("creates posts with 201, lists them newest first and pushes post-created to every client", async () => {
    const { url } = await startServer();
    const [a, b] = await Promise.all([connect(url), connect(url, { transports: ["polling"] })]);
    expect(await (await fetch(`${url}/api/posts`)).json()).toEqual([]);

    const pushed = [next(a, "post-created"), next(b, "post-created")];
    const res = await postJson(`${url}/api/posts`, JSON.stringify({ title: "First", body: "Hello" }));
    expect(res.status).toBe(201);
    const first = (await res.json()) as Post;
    expect(first).toEqual({ id: expect.any(String), title: "First", body: "Hello", createdAt: expect.any(String) });
    expect(new Date(first.createdAt).toISOString()).toBe(first.createdAt);
    for (const post of await Promise.all(pushed)) expect(post).toEqual(first);

    const second = (await (
      await postJson(`${url}/api/posts`, JSON.stringify({ title: "Second", body: "Again" }))
    ).json()) as Post;
    expect(await (await fetch(`${url}/api/posts`)).json()).toEqual([second, first]);
  });

  it.each([
    ["a missing title", { body: "b" }, "title", /title must be a string/],
    ["an empty title", { title: "  ", body: "b" }, "title", /title must not be empty/],
    ["a numeric body", { title: "t", body: 5 }, "body", /body must be a string/],
    ["a body over 16 KiB", { title: "t", body: "x".repeat(16 * 1024 + 1) }, "body", /16384 bytes/],
  ])("rejects a post with %s with 400 naming the field", async (_name, body, field, text) => {
    const { url } = await startServer();
    const res = await postJson(`${url}/api/posts`, JSON.stringify(body));
    expect(res.status).toBe(400);
    const json = (await res.json()) as { error: { code: string; field: string; message: string } };
    expect(json.error.code).toBe("INVALID_BODY");
    expect(json.error.field).toBe(field);
    expect(json.error.message).toMatch(text);
  });

  it("rejects malformed JSON and non-object bodies with 400", async () => {
    const { url } = await startServer();
    const bad = await postJson(`${url}/api/posts`, "{nope");
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe("INVALID_JSON");
    const array = await postJson(`${url}/api/posts`, "[1,2]");
    expect(array.status).toBe(400);
    expect(((await array.json()) as { error: { message: string } }).error.message).toMatch(/title, body/);
  });

  it("answers unknown routes with a JSON 404", async () => {
    const { url } = await startServer();
    const res = await fetch(`${url}/nope`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: "NOT_FOUND", message: "no such route" } });
  });

  it("serves /healthz, /readyz and /api/info with the live connection count", async () => {
    const { url } = await startServer({ REPLICA_ID: "info-1" });
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    await Promise.all([connect(url), connect(url)]);
    const info = await fetch(`${url}/api/info`);
    expect(info.headers.get("x-replica-id")).toBe("info-1");
    expect(await info.json()).toEqual({ replica: "info-1", version: "0.0.0", connections: 2 });
  });

  it("puts X-Replica-Id on Socket.IO's own HTTP responses", async () => {
    const { url } = await startServer({ REPLICA_ID: "eio-1" });
    const res = await fetch(`${url}/socket.io/?EIO=4&transport=polling`);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-replica-id")).toBe("eio-1");
  });

  it("allows only the configured CORS origins", async () => {
    const { url } = await startServer({ CORS_ORIGIN: "https://app.example.com,https://admin.example.com" });
    const allowed = await fetch(`${url}/api/posts`, { headers: { origin: "https://admin.example.com" } });
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://admin.example.com");
    const denied = await fetch(`${url}/api/posts`, { headers: { origin: "https://evil.example.com" } });
    expect(denied.headers.get("access-control-allow-origin")).toBeNull();
    const star = await startServer();
    const any = await fetch(`${star.url}/`, { headers: { origin: "https://x.example.com" } });
    expect(any.headers.get("access-control-allow-origin")).toBe("*");
  });
});
