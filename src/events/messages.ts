import { z } from "zod";
import { list, messageText } from "../schemas.js";
import { defineEvent, type AppContext, type EventListeners } from "./handler.js";
import { joinedRooms } from "./rooms.js";

const anyPayload = z.unknown();

export function messageEvents(app: AppContext): EventListeners {
  const { io, log, replicaId } = app;
  return [
    // Socket.IO already bounds the frame (maxHttpBufferSize); any payload, binary included, goes back as is.
    defineEvent(app, "echo", anyPayload, (socket, payload) => {
      socket.emit("echo-response", payload);
      return undefined;
    }),

    defineEvent(app, "broadcast", messageText, (socket, message) => {
      io.emit("broadcast-message", { from: socket.id, message });
      return undefined;
    }),

    defineEvent(app, "chat", messageText, (socket, message) => {
      io.emit("chat", { from: socket.id, message });
      return undefined;
    }),

    defineEvent(app, "get-time", null, (socket) => {
      const time = new Date().toISOString();
      socket.emit("current-time", time);
      return { time };
    }),

    defineEvent(app, "update-list", list, (socket, items) => {
      socket.data.list = items;
      socket.emit("user-list", items);
      log.debug({ socket: socket.id, count: items.length }, "list updated");
      return { count: items.length };
    }),

    defineEvent(
      app,
      "server-info",
      null,
      (socket) => ({ replica: replicaId, socketId: socket.id, rooms: joinedRooms(socket.rooms) }),
      { ackRequired: true },
    ),
  ];
}
