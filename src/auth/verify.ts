import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JWTVerifyGetKey } from "jose";
import { z } from "zod";
import { describeIssue } from "../schemas.js";
import type { AuthConfig, KeySource } from "./config.js";

/** Who a verified token names, and what it allows. */
export interface Identity {
  /** The user id: `from` of the user's messages, and its private room `user:<sub>`. */
  sub: string;
  /** Glob patterns (`*` = any characters) of the rooms the user may use; undefined: every room but `private:*`. */
  rooms: readonly string[] | undefined;
  /** The space-separated `scope` claim. */
  scopes: ReadonlySet<string>;
  /** Expiry in seconds since the epoch; undefined for a token without `exp`. */
  exp: number | undefined;
}

export type AuthFailureReason = "missing" | "invalid" | "expired";

/** A token refused: the reason becomes the handshake's `connect_error` data or the HTTP 401. */
export class AuthFailure extends Error {
  constructor(
    readonly reason: AuthFailureReason,
    message: string,
  ) {
    super(message);
    this.name = "AuthFailure";
  }
}

export type VerifyToken = (token: string) => Promise<Identity>;

const claims = z.object({
  sub: z.string({ error: "sub must be a string" }).min(1, "sub must not be empty").max(256, "sub is too long"),
  rooms: z
    .array(z.string({ error: "rooms must hold strings" }).min(1).max(128), { error: "rooms must be an array" })
    .max(256, "rooms has too many patterns")
    .optional(),
  scope: z.string({ error: "scope must be a string" }).max(4096).optional(),
  exp: z.number().optional(),
});

// Fixed per key source, never taken from the token: a shared secret signs HS256 only, and a key set
// verifies asymmetric signatures only (so a public key can never be abused as an HMAC secret).
const ASYMMETRIC = ["RS256", "ES256"];

function keyOf(source: KeySource): { key: Uint8Array | JWTVerifyGetKey; algorithms: string[] } {
  switch (source.kind) {
    case "secret":
      return { key: source.secret, algorithms: ["HS256"] };
    case "jwks-file":
      return { key: createLocalJWKSet(source.jwks as Parameters<typeof createLocalJWKSet>[0]), algorithms: ASYMMETRIC };
    case "jwks-url":
      // An unknown `kid` refetches the set (key rotation), at most once per cooldown.
      return {
        key: createRemoteJWKSet(source.url, { cooldownDuration: source.cooldownMs, timeoutDuration: 5000 }),
        algorithms: ASYMMETRIC,
      };
  }
}

function failure(err: unknown): AuthFailure {
  if (err instanceof AuthFailure) return err;
  if (err instanceof errors.JWTExpired) return new AuthFailure("expired", "token expired");
  if (err instanceof errors.JWKSTimeout || !(err instanceof errors.JOSEError)) {
    return new AuthFailure("invalid", "token cannot be verified now: the key set is unavailable");
  }
  return new AuthFailure("invalid", `invalid token: ${err.message}`);
}

/** Verifies signature, algorithm, expiry, issuer and audience; undefined when authentication is off. */
export function createTokenVerifier(config: AuthConfig): VerifyToken | undefined {
  if (config.mode === "off" || !config.key) return undefined;
  const { key, algorithms } = keyOf(config.key);
  const options = { algorithms, issuer: config.issuer, audience: config.audience };
  return async (token) => {
    let payload: unknown;
    try {
      // The overloads split on the key's type; both forms take the same options.
      ({ payload } = await (typeof key === "function"
        ? jwtVerify(token, key, options)
        : jwtVerify(token, key, options)));
    } catch (err) {
      throw failure(err);
    }
    const parsed = claims.safeParse(payload);
    if (!parsed.success) throw new AuthFailure("invalid", `invalid token: ${describeIssue(parsed.error).message}`);
    const { sub, rooms, scope, exp } = parsed.data;
    return { sub, rooms, scopes: new Set(scope?.split(" ").filter((s) => s !== "")), exp };
  };
}
