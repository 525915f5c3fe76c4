/** Rooms under this prefix need an authenticated connection, whatever AUTH_MODE says. */
export const PRIVATE_ROOM_PREFIX = "private:";

/** Whether a room is allowed to a connection: anonymous ones have no identity at all. */
export type RoomRule = (room: string) => boolean;

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** `*` matches any characters (none included); everything else is literal. */
export function globToRegExp(pattern: string): RegExp {
  return new RegExp(`^${pattern.split("*").map(escape).join(".*")}$`);
}

const isPrivate = (room: string) => room.startsWith(PRIVATE_ROOM_PREFIX);

/** Anonymous connections (and tokens without a `rooms` claim) may use every room but `private:*`. */
export const anyButPrivate: RoomRule = (room) => !isPrivate(room);

/**
 * The rule of an authenticated connection: its `rooms` claim when present (a pattern may grant `private:*`
 * rooms), else every room but `private:*`.
 */
export function roomRule(patterns: readonly string[] | undefined): RoomRule {
  if (patterns === undefined) return anyButPrivate;
  const compiled = patterns.map(globToRegExp);
  return (room) => compiled.some((re) => re.test(room));
}
