import type { Redis } from "ioredis";
import type { RedisClient } from "../redis.js";

/** The error a command without an answer in time fails with: ioredis's own wording (src/main.ts matches it). */
export const COMMAND_TIMED_OUT = "Command timed out";

/** How many checks per timeout period: a command fails between `timeoutMs` and 1.25 × `timeoutMs` after it left. */
const CHECKS_PER_TIMEOUT = 4;

interface Pending {
  isSettled: boolean;
  reject(err: Error): void;
}

/** A check's moment and the newest command queued on a connection then: everything up to it is at least that old. */
interface Mark {
  at: number;
  newest: Pending;
}

export interface CommandDeadlines {
  stop(): void;
}

/**
 * Fails the commands Redis has not answered within `timeoutMs`, as ioredis's `commandTimeout` does, but without a
 * timer per command. ioredis arms a `setTimeout` for every command and, on its reply, clears it and deletes the
 * property that held it, which also turns each command object into a slow dictionary; at chat rates (one append
 * per message) that was a timer, a dictionary and more promoted garbage per message. Here one timer looks at the
 * queues of commands awaiting a reply (`commandQueue`, public in ioredis's types) a few times per timeout period:
 * a connection answers in order, so a command still unanswered and queued before a check made `timeoutMs` ago
 * has waited at least that long.
 */
export function enforceCommandDeadlines(client: RedisClient, timeoutMs: number): CommandDeadlines {
  const marks = new Map<Redis, Mark[]>();
  const connections = (): Redis[] => ("nodes" in client ? client.nodes() : [client]);

  const checkConnection = (connection: Redis, now: number): void => {
    const queue = connection.commandQueue;
    let list = marks.get(connection);
    // The oldest check at least `timeoutMs` ago: every unanswered command up to its newest one is late.
    let due: Mark | undefined;
    while (list && list.length > 0 && (list[0] as Mark).at <= now - timeoutMs) due = list.shift();
    // Answered (or failed) already: so is everything queued before it. Otherwise it is still in this queue, unless
    // a cluster moved it to another node's: then nothing here is known to be that old.
    if (due && !due.newest.isSettled) {
      let last = -1;
      for (let i = 0; i < queue.length; i++) if ((queue.peekAt(i)?.command as unknown) === due.newest) last = i;
      for (let i = 0; i <= last; i++) {
        const pending = queue.peekAt(i)?.command as Pending | undefined;
        if (pending && !pending.isSettled) pending.reject(new Error(COMMAND_TIMED_OUT));
      }
    }
    const newest = queue.peekBack()?.command as Pending | undefined;
    if (!newest) {
      marks.delete(connection);
      return;
    }
    if (!list) marks.set(connection, (list = []));
    // One mark per check that found something queued; a mark whose command is already answered changes nothing.
    if (list.at(-1)?.newest !== newest) list.push({ at: now, newest });
  };

  // Fails every command of the client still unanswered `timeoutMs` after it was queued.
  const check = (now = Date.now()): void => {
    const live = connections();
    for (const connection of live) checkConnection(connection, now);
    // Cluster nodes come and go: forget the ones no longer there.
    if (marks.size > live.length)
      for (const connection of marks.keys()) if (!live.includes(connection)) marks.delete(connection);
  };

  const timer = setInterval(check, Math.max(10, Math.floor(timeoutMs / CHECKS_PER_TIMEOUT)));
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
