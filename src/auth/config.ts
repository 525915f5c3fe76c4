import { readFileSync } from "node:fs";
import { ConfigError } from "../config.js";

export type AuthMode = "off" | "optional" | "required";

/** Where verification keys come from; each source fixes the algorithms it accepts (see src/auth/verify.ts). */
export type KeySource =
  | { kind: "secret"; secret: Uint8Array }
  | { kind: "jwks-file"; path: string; jwks: { keys: object[] } }
  | { kind: "jwks-url"; url: URL; cooldownMs: number };

export interface AuthConfig {
  mode: AuthMode;
  /** Exactly one when `mode` is not `off`; ignored when it is. */
  key: KeySource | undefined;
  issuer: string | undefined;
  audience: string | undefined;
}

type Env = Record<string, string | undefined>;

const MODES: readonly AuthMode[] = ["off", "optional", "required"];
// RFC 7518 §3.2: an HS256 key at least as long as the hash output.
const MIN_SECRET_BYTES = 32;

const set = (env: Env, name: string): string | undefined => {
  const raw = env[name]?.trim();
  return raw === undefined || raw === "" ? undefined : raw;
};

function jwksFile(path: string): KeySource {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new ConfigError("AUTH_JWKS_FILE", `cannot read a JSON key set from "${path}": ${(err as Error).message}`);
  }
  const keys = (parsed as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => typeof k === "object" && k !== null)) {
    throw new ConfigError(
      "AUTH_JWKS_FILE",
      `"${path}" is not a JWKS: expected { "keys": [ … ] } with at least one key`,
    );
  }
  return { kind: "jwks-file", path, jwks: { keys } };
}

function jwksUrl(raw: string, env: Env): KeySource {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError("AUTH_JWKS_URL", `not a URL: "${raw}"`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new ConfigError("AUTH_JWKS_URL", `expected https:// (or http://), got "${url.protocol}"`);
  }
  const cooldown = set(env, "AUTH_JWKS_COOLDOWN_MS") ?? "30000";
  if (!/^\d+$/.test(cooldown) || Number(cooldown) > 3_600_000) {
    throw new ConfigError("AUTH_JWKS_COOLDOWN_MS", `expected an integer 0..3600000, got "${cooldown}"`);
  }
  return { kind: "jwks-url", url, cooldownMs: Number(cooldown) };
}

/** The AUTH_* variables; called by parseConfig, throws ConfigError naming the bad variable. */
export function parseAuthConfig(env: Env): AuthConfig {
  const rawMode = set(env, "AUTH_MODE") ?? "off";
  const mode = MODES.find((m) => m === rawMode);
  if (!mode) throw new ConfigError("AUTH_MODE", `expected one of ${MODES.join(", ")}, got "${rawMode}"`);

  const sources = ["AUTH_JWT_SECRET", "AUTH_JWKS_FILE", "AUTH_JWKS_URL"].filter((name) => set(env, name));
  let key: KeySource | undefined;
  if (mode !== "off") {
    if (sources.length === 0) {
      throw new ConfigError(
        "AUTH_MODE",
        `${mode} needs a key: set one of AUTH_JWT_SECRET, AUTH_JWKS_FILE, AUTH_JWKS_URL`,
      );
    }
    if (sources.length > 1) {
      throw new ConfigError(sources[1] as string, `set only one key source, ${sources.join(" and ")} are both set`);
    }
    const secret = set(env, "AUTH_JWT_SECRET");
    const file = set(env, "AUTH_JWKS_FILE");
    const url = set(env, "AUTH_JWKS_URL");
    if (secret !== undefined) {
      const bytes = new TextEncoder().encode(secret);
      if (bytes.length < MIN_SECRET_BYTES) {
        throw new ConfigError("AUTH_JWT_SECRET", `expected at least ${MIN_SECRET_BYTES} bytes, got ${bytes.length}`);
      }
      key = { kind: "secret", secret: bytes };
    } else if (file !== undefined) {
      key = jwksFile(file);
    } else if (url !== undefined) {
      key = jwksUrl(url, env);
    }
  }
  return { mode, key, issuer: set(env, "AUTH_ISSUER"), audience: set(env, "AUTH_AUDIENCE") };
}
