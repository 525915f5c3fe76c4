import { io, type Socket } from "socket.io-client";
import { createReliableRooms, type ReliableRooms, type RoomGap } from "../../src/client/index.js";
import type { JoinRoomAck, RoomMessage } from "../../src/contract.js";
import type { ProcessCluster } from "../../scripts/cluster/processes.js";
import { eventually, sleep } from "../support/server.js";

/**
 * The chaos workload: members of one room behind nginx, a few of them sending at a steady rate with the
 * reliable client helper, while a fault strikes. Everything is bounded in count and time.
 */
export interface LoadOptions {
  cluster: ProcessCluster;
  room?: string;
  members?: number;
  senders?: number;
  ratePerSender?: number;
  durationMs?: number;
  /** When the fault strikes, from the start of sending. */
  faultAtMs?: number;
  fault: (load: RunningLoad) => Promise<void>;
}

export interface Member {
  index: number;
  socket: Socket;
  rooms: ReliableRooms;
  replica: string;
  delivered: RoomMessage[];
  gaps: RoomGap[];
  /** Every join ack, with when it came. */
  joins: Array<{ at: number; ack: JoinRoomAck }>;
  storeUnavailable: number;
  /** What the helper reported without a caller to reject (a refused rejoin…). */
  errors: string[];
}

export interface RunningLoad {
  members: Member[];
  /** Replica id → members connected to it at the start. */
  byReplica: Map<string, Member[]>;
}

export interface LoadResult extends RunningLoad {
  /** id → the position its sender was acknowledged with. */
  acked: Map<string, { epoch: string; offset: number }>;
  sent: number;
  faultAt: number;
}

const CLIENT_OPTIONS = {
  transports: ["websocket"],
  forceNew: true,
  reconnectionDelay: 100,
  reconnectionDelayMax: 500,
  randomizationFactor: 0.2,
};

/** Why a handshake failed: Engine.IO's "websocket error" carries the transport's own error in `description`. */
export function causeOf(err: Error): string {
  const description = (err as { description?: { message?: unknown; error?: { message?: unknown } } }).description;
  const cause = description?.error?.message ?? description?.message;
  return typeof cause === "string" ? cause : "no detail";
}

async function replicaOf(socket: Socket): Promise<string> {
  const info = (await socket.timeout(5000).emitWithAck("server-info")) as { ok: boolean; replica: string };
  return info.replica;
}

async function connectMember(url: string, index: number, room: string): Promise<Member> {
  const socket = io(url, CLIENT_OPTIONS);
  const member: Member = {
    index,
    socket,
    replica: "",
    delivered: [],
    gaps: [],
    joins: [],
    storeUnavailable: 0,
    errors: [],
    rooms: createReliableRooms(socket, {
      onMessage: (m) => member.delivered.push(m),
      onGap: (gap) => member.gaps.push(gap),
      onJoin: (ack) => member.joins.push({ at: Date.now(), ack }),
      onError: (err) => member.errors.push(err.message),
      ackTimeoutMs: 3000,
      retryDelayMs: 100,
      maxRetryDelayMs: 1000,
    }),
  };
  socket.on("disconnect", (reason) => member.errors.push(`disconnect: ${reason}`));
  const t0 = Date.now();
  const note = (what: string) => member.errors.push(`${Date.now() - t0}ms ${what}`);
  socket.io.on("reconnect_attempt", (n) => note(`reconnect_attempt ${n}`));
  socket.io.on("open", () => note("open"));
  socket.io.on("close", (reason) => note(`manager close ${reason}`));
  socket.on("connect", () => note("connect"));
  // Engine.IO's "websocket error" alone does not say why: its `description` carries the transport's own error
  // (a refused connection, or nginx's answer: "Unexpected server response: 502").
  socket.io.on("reconnect_error", (err) => member.errors.push(`reconnect_error: ${err.message} (${causeOf(err)})`));
  socket.io.on("reconnect_failed", () => member.errors.push("reconnect_failed"));
  socket.on("connect_error", (err) =>
    member.errors.push(`connect_error: ${err.message} ${JSON.stringify((err as { data?: unknown }).data)}`),
  );
  socket.on("error", (err) => {
    if (err.code === "STORE_UNAVAILABLE") member.storeUnavailable++;
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    setTimeout(() => reject(new Error(`member ${index} could not connect`)), 10_000).unref();
  });
  member.replica = await replicaOf(socket);
  await member.rooms.join(room);
  return member;
}

/** Connects the members, sends for `durationMs`, strikes the fault, then waits for every send to be acked. */
export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const room = opts.room ?? "chaos";
  const count = opts.members ?? 30;
  const senders = opts.senders ?? 3;
  const rate = opts.ratePerSender ?? 10;
  const durationMs = opts.durationMs ?? 12_000;
  const members: Member[] = [];
  for (let i = 0; i < count; i++) members.push(await connectMember(opts.cluster.url, i, room));
  const byReplica = new Map<string, Member[]>();
  for (const m of members) byReplica.set(m.replica, [...(byReplica.get(m.replica) ?? []), m]);
  const running: RunningLoad = { members, byReplica };

  const acked = new Map<string, { epoch: string; offset: number }>();
  const sends: Array<Promise<void>> = [];
  const started = Date.now();
  let faultAt = 0;
  const fault = sleep(opts.faultAtMs ?? 4000).then(async () => {
    faultAt = Date.now();
    await opts.fault(running);
  });
  const perSender = Math.floor((durationMs / 1000) * rate);
  const sending = Array.from({ length: senders }, async (_, s) => {
    const sender = members[s] as Member;
    for (let n = 0; n < perSender; n++) {
      const due = started + (n * 1000) / rate;
      await sleep(Math.max(0, due - Date.now()));
      const text = `s${s}-${n}`;
      sends.push(
        sender.rooms.send(room, text).then((position) => {
          acked.set(text, position as { epoch: string; offset: number });
        }),
      );
    }
  });
  await Promise.all(sending);
  await fault;
  // Every send must end acknowledged (the helper retries with the same id until it is).
  await Promise.race([
    Promise.all(sends),
    sleep(30_000).then(() => {
      const errors: string[] = [];
      const state = members
        .filter((m) => !m.socket.connected)
        .map((m) => ({
          connected: m.socket.connected,
          joins: m.joins.length,
          errors: m.errors.slice(-12),
        }));
      errors.push(JSON.stringify(state));
      throw new Error(`only ${acked.size} of ${sends.length} sends acknowledged after 30 s; ${JSON.stringify(errors)}`);
    }),
  ]);
  return { ...running, acked, sent: sends.length, faultAt };
}

/** Waits until `done` holds for every member, or the deadline passes (the assertions then say what is missing). */
export async function settle(members: Member[], done: (m: Member) => boolean, ms = 20_000): Promise<void> {
  await eventually(() => members.every(done), ms, "every member caught up").catch(() => undefined);
}

export function closeAll(members: Member[]): void {
  for (const m of members) {
    m.rooms.close();
    m.socket.disconnect();
  }
}

/** Recovery time: from the fault until the last of `members` had a join ack saying recovered. */
export function recoveryMs(members: Member[], faultAt: number): number {
  let last = 0;
  for (const m of members) {
    const rejoin = m.joins.find((j) => j.at >= faultAt && j.ack.recovered);
    if (!rejoin) return Number.POSITIVE_INFINITY;
    last = Math.max(last, rejoin.at - faultAt);
  }
  return last;
}
