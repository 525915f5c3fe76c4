import { createRequire } from "node:module";
import type { Socket as NetSocket } from "node:net";
import type { Logger } from "../logger.js";
import { AFTER_FLUSH } from "./coalesce.js";
import { socketIoEngine, type EngineIoResolution } from "./engine-io.js";

/** A WebSocket frame, as `ws` sends a list: here its header and payload in one buffer (one plain write). */
export type Frame = Buffer[];

interface WsSender {
  sendFrame(list: Frame, cb?: (err?: Error) => void): void;
}

/** What is read of an Engine.IO socket (private fields, each checked before use). */
interface EngineConnection {
  readyState?: string;
  writeBuffer?: unknown[];
  transport?: {
    name?: string;
    writable?: boolean;
    perMessageDeflate?: unknown;
    socket?: { _sender?: WsSender; _socket?: Partial<Pick<NetSocket, "cork" | "uncork" | "writableCorked">> };
  };
  listenerCount?(event: string): number;
  [AFTER_FLUSH]?: (socket: never) => void;
}

type FrameBuilder = (data: Buffer, options: object) => Frame;

export interface DirectFrames {
  /** The frame of one Engine.IO message carrying `packet` (an encoded Socket.IO packet), built once per broadcast. */
  frame(packet: string): Frame;
  /**
   * Writes `frame` to the connection's websocket now, when nothing of that connection is queued ahead of it
   * (so the order of its packets stays Engine.IO's). False: send it the usual way.
   */
  write(connection: unknown, frame: Frame): boolean;
}

const EFFECT = "room messages reach each member through Engine.IO's per-packet queue, as other events do";

/**
 * A room message at chat rates goes to each member alone, so Engine.IO's per-packet work (a packet object, its
 * queue, the deferred flush and its microtask, the transport's send) is paid once per member and message.
 * Socket.IO already builds the websocket frame once per broadcast (`wsPreEncodedFrame`); this writes that
 * same frame to each idle member's `ws` sender directly, as Engine.IO itself would, and leaves everyone else
 * (long-polling, an upgrade in progress, packets already queued, compression, a listener counting packets)
 * on the usual path. Measured with `npm run bench -- --workload=chat --chat-together`: see docs/benchmarks.md.
 *
 * `ws.Sender.frame` and `transport.socket._sender` are private: when either is missing, a warning names what
 * is off and everything goes the usual way (test/engine-patches.test.ts fails on such an upgrade).
 */
export function directFrames(
  log: Pick<Logger, "warn">,
  engine: EngineIoResolution = socketIoEngine(),
): DirectFrames | undefined {
  const skipped = (reason: string) => {
    log.warn(
      { patch: "direct-frames", reason },
      `ENGINE_PATCH_SKIPPED: direct-frames not applied (${reason}); ${EFFECT}`,
    );
    return undefined;
  };
  if (!engine.ok) return skipped(engine.reason);
  let build: FrameBuilder | undefined;
  try {
    // The ws that this engine.io requires (it may have its own copy).
    const ws = createRequire(engine.path)("ws") as { Sender?: { frame?: unknown } };
    if (typeof ws.Sender?.frame === "function") build = ws.Sender.frame.bind(ws.Sender) as FrameBuilder;
  } catch (err) {
    return skipped(`ws not resolvable through engine.io: ${(err as Error).message}`);
  }
  if (!build) return skipped("ws.Sender.frame is not a function");
  const frameOf = build;
  let warned = false;
  // Only a member's first frame of a tick is written here; a burst (saturation) takes Engine.IO's queue after it,
  // whose batching is cheaper per packet. The TCP socket stays corked until Engine.IO's deferred flush of that
  // tick has run (one microtask later than it, src/engine/coalesce.ts), so the first frame and the rest leave
  // in one write.
  // The sockets corked this tick, in slots reused from tick to tick: a long-lived Set that is cleared every tick
  // allocates its new table in the old generation (V8 does so for a table that is old already), garbage only a
  // major GC collects (2.7–3.6 MB per 30 s at chat rates, one replica).
  const corked: Array<Pick<NetSocket, "uncork"> | undefined> = [];
  let count = 0;
  const uncorkAll = () => {
    // `count` is read each pass: nothing is corked meanwhile (the uncorks write; they add no frame).
    for (let i = 0; i < count; i++) {
      (corked[i] as Pick<NetSocket, "uncork">).uncork();
      corked[i] = undefined;
    }
    count = 0;
  };
  const afterDeferredFlush = () => queueMicrotask(uncorkAll);
  return {
    frame: (packet) => {
      // "4": the message packet type of Engine.IO. A server frame: unmasked, final, text.
      const parts = frameOf(Buffer.from("4" + packet), {
        readOnly: false,
        mask: false,
        rsv1: false,
        opcode: 1,
        fin: true,
      });
      // Joined once per broadcast: `ws` sends a two-part frame with a cork, two stream writes and a writev per
      // member, a one-part frame with one write (0.4 µs less per member, bench/analysis.md "Fifth round").
      return parts.length === 1 ? parts : [Buffer.concat(parts)];
    },

    write(raw, frame) {
      const connection = raw as EngineConnection;
      const transport = connection.transport;
      if (connection.readyState !== "open" || transport?.name !== "websocket") return false;
      // A write in flight (Engine.IO flushes the rest when it completes), or packets queued for this tick's flush.
      if (transport.writable !== true || connection.writeBuffer?.length !== 0) return false;
      if (transport.perMessageDeflate) return false;
      // The admin UI counts the bytes of every packet Engine.IO creates.
      if ((connection.listenerCount?.("packetCreate") ?? 1) > 0) return false;
      const sender = transport.socket?._sender;
      if (typeof sender?.sendFrame !== "function") {
        if (!warned) skipped("the websocket transport has no ws sender at socket._sender");
        warned = true;
        return false;
      }
      const tcp = transport.socket?._socket;
      if (typeof tcp?.cork === "function" && typeof tcp.uncork === "function") {
        // Corked: by this tick's first frame (ws corks only inside a send).
        if ((tcp.writableCorked ?? 0) > 0) return false;
        tcp.cork();
        if (count === 0) queueMicrotask(afterDeferredFlush);
        corked[count++] = tcp as Pick<NetSocket, "uncork">;
      }
      sender.sendFrame(frame);
      // The slow-consumer bound (src/limits/slow-consumer.ts) is checked after every write, this one too.
      connection[AFTER_FLUSH]?.(connection as never);
      return true;
    },
  };
}
