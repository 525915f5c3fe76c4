import { z } from "zod";
import { HISTORY_PAGE_LIMIT, MAX_MESSAGE_ID_LENGTH } from "./client/protocol.js";

export const MAX_MESSAGE_BYTES = 16 * 1024;
export const MAX_LIST_ITEMS = 1000;
/**
 * Deepest nesting of arrays and objects in an `update-list`. The list is sent back (`user-list`), and encoding a
 * payload some thousands of levels deep overflows the stack: it was answered INTERNAL, now INVALID_PAYLOAD.
 */
export const MAX_LIST_DEPTH = 64;

const ROOM_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

export const roomName = z
  .string({ error: "room must be a string" })
  .regex(ROOM_NAME, "room must be 1-64 characters of A-Z a-z 0-9 _ . : -");

// A UTF-16 string of n code units takes at most 3n bytes in UTF-8: short ones need no count.
const withinMessageBytes = (s: string) =>
  s.length * 3 <= MAX_MESSAGE_BYTES || Buffer.byteLength(s) <= MAX_MESSAGE_BYTES;

export const messageText = z
  .string({ error: "message must be a string" })
  .refine(withinMessageBytes, `message must be at most ${MAX_MESSAGE_BYTES} bytes`);

const messageId = z
  .string({ error: "id must be a string" })
  .min(1, "id must not be empty")
  .max(MAX_MESSAGE_ID_LENGTH, `id must be at most ${MAX_MESSAGE_ID_LENGTH} characters`);

export const roomMessage = z.object(
  { room: roomName, message: messageText, id: messageId.optional() },
  { error: "expected { room, message, id? }" },
);

/**
 * The common case of `roomMessage`, checked by hand: a room message arrives alone in its tick at chat rates,
 * with the validator's code cold, and this costs a fraction of the schema's walk. It accepts only what
 * `roomMessage` accepts (a property test holds them together) and returns the same value; anything else
 * (unknown keys included) goes through the schema, which also words the rejection.
 */
export function roomMessageFast(data: unknown): z.infer<typeof roomMessage> | undefined {
  if (typeof data !== "object" || data === null || Array.isArray(data)) return undefined;
  const { room, message, id } = data as Record<string, unknown>;
  let keys = 2;
  if (typeof room !== "string" || !ROOM_NAME.test(room)) return undefined;
  if (typeof message !== "string" || !withinMessageBytes(message)) return undefined;
  if (id !== undefined) {
    if (typeof id !== "string" || id.length < 1 || id.length > MAX_MESSAGE_ID_LENGTH) return undefined;
    keys++;
  }
  for (const key in data) if (--keys < 0 || (key !== "room" && key !== "message" && key !== "id")) return undefined;
  return id === undefined ? { room, message } : { room, message, id };
}

const position = z.object(
  {
    epoch: z.string({ error: "since.epoch must be a string or null" }).max(64, "since.epoch is too long").nullable(),
    offset: z
      .number({ error: "since.offset must be a number" })
      .int("since.offset must be an integer")
      .min(0, "since.offset must be >= 0")
      .max(Number.MAX_SAFE_INTEGER, "since.offset is too large"),
  },
  { error: "since must be { epoch, offset }" },
);

/** The seed's plain room name, or `{ room, since? }` to replay what was missed. */
/** The seed's plain room name, or `{ room, since? }` to replay what was missed. */
export const joinRoom = z.preprocess(
  (value) => (typeof value === "string" ? { room: value } : value),
  z.object({ room: roomName, since: position.optional() }, { error: "expected a room name or { room, since? }" }),
);

export const roomHistory = z.object(
  {
    room: roomName,
    since: position,
    limit: z
      .number({ error: "limit must be a number" })
      .int("limit must be an integer")
      .min(1, "limit must be >= 1")
      .max(HISTORY_PAGE_LIMIT, `limit must be at most ${HISTORY_PAGE_LIMIT}`)
      .optional(),
  },
  { error: "expected { room, since: { epoch, offset }, limit? }" },
);

/** Whether `value` nests at most `max` levels of arrays and objects below it. Iterative: the check must not recurse. */
export function nestsWithin(value: unknown, max: number): boolean {
  const pending: Array<[unknown, number]> = [[value, 0]];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const [item, depth] = next;
    // Binary is a leaf (its bytes are not nesting).
    if (item === null || typeof item !== "object" || ArrayBuffer.isView(item) || item instanceof ArrayBuffer) continue;
    if (depth > max) return false;
    for (const child of Object.values(item)) pending.push([child, depth + 1]);
  }
  return true;
}

export const list = z
  .array(z.unknown(), { error: "expected an array" })
  .max(MAX_LIST_ITEMS, `at most ${MAX_LIST_ITEMS} items`)
  .refine((items) => nestsWithin(items, MAX_LIST_DEPTH), `at most ${MAX_LIST_DEPTH} levels of nesting`);

export const newPost = z.object(
  {
    title: z
      .string({ error: "title must be a string" })
      .trim()
      .min(1, "title must not be empty")
      .max(200, "title must be at most 200 characters"),
    body: z
      .string({ error: "body must be a string" })
      .min(1, "body must not be empty")
      .refine((s) => Buffer.byteLength(s) <= MAX_MESSAGE_BYTES, `body must be at most ${MAX_MESSAGE_BYTES} bytes`),
  },
  { error: "expected a JSON object { title, body }" },
);

export type NewPost = z.infer<typeof newPost>;

/** The first issue as one line, naming the field when there is one. */
export function describeIssue(error: z.ZodError): { field: string | undefined; message: string } {
  const issue = error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.join(".") : undefined;
  const message = issue ? (field ? `${field}: ${issue.message}` : issue.message) : "invalid payload";
  return { field, message };
}
