import { z } from "zod";
import { list, messageText } from "../schemas.js";
import { on, type EventContext } from "./handler.js";
import { joinedRooms } from "./rooms.js";

const anyPayload = z.unknown();

export function registerMessageEvents(ctx: EventContext): void {
  const { io, socket } = ctx;

  // Socket.IO already bounds the frame (maxHttpBufferSize); any payload, binary included, goes back as is.
  on(ctx, "echo", anyPayload, (payload) => {
    socket.emit("echo-response", payload);
    return undefined;
  });

  on(ctx, "broadcast", messageText, (message) => {
    io.emit("broadcast-message", { from: socket.id, message });
    return undefined;
  });

  on(ctx, "chat", messageText, (message) => {
    io.emit("chat", { from: socket.id, message });
    return undefined;
  });

  on(ctx, "get-time", null, () => {
    const time = new Date().toISOString();
    socket.emit("current-time", time);
    return { time };
  });

  on(ctx, "update-list", list, (items) => {
    socket.data.list = items;
    socket.emit("user-list", items);
    ctx.log.debug({ socket: socket.id, count: items.length }, "list updated");
    return { count: items.length };
  });

  on(
    ctx,
    "server-info",
    null,
    () => ({ replica: ctx.replicaId, socketId: socket.id, rooms: joinedRooms(socket.rooms) }),
    {
      ackRequired: true,
    },
  );
}
