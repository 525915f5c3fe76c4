import { SignJWT, type JWTPayload } from "jose";

/** The HS256 secret of the tests' servers (`AUTH_JWT_SECRET`). */
export const TEST_JWT_SECRET = "a-test-secret-that-is-long-enough-for-hs256";
export const testSecretKey = new TextEncoder().encode(TEST_JWT_SECRET);

export interface Claims extends JWTPayload {
  rooms?: string[];
  scope?: string;
}

/** A token for `sub`, valid for `ttlS` seconds (negative: already expired). */
export function hs256(sub: string, claims: Claims = {}, ttlS = 60, key: Uint8Array = testSecretKey): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setIssuedAt(now - 120)
    .setExpirationTime(now + ttlS)
    .sign(key);
}
