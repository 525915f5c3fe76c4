import { CLIENT_EVENTS } from "../contract.js";
import { reject, type EventContext } from "./handler.js";
import { registerMessageEvents } from "./messages.js";
import { registerRoomEvents } from "./rooms.js";

const KNOWN = new Set<string>(CLIENT_EVENTS);

export function registerEvents(ctx: EventContext): void {
  registerMessageEvents(ctx);
  registerRoomEvents(ctx);
  ctx.socket.onAny((event: string, ...args: unknown[]) => {
    if (KNOWN.has(event)) return;
    const last = args[args.length - 1];
    const ack = typeof last === "function" ? (last as Parameters<typeof reject>[4]) : undefined;
    reject(ctx, String(event), "UNKNOWN_EVENT", `unknown event "${String(event)}"`, ack);
  });
}
