import { z } from "zod";
import { list, messageText } from "../schemas.js";
import { defineEvent, type AppContext, type EventRegistry } from "./handler.js";
import { joinedRooms } from "./rooms.js";
import { senderOf } from "../auth/identity.js";

const anyPayload = z.unknown();

export function messageEvents(
  app: AppContext,
): Pick<EventRegistry, "echo" | "broadcast" | "chat" | "get-time" | "update-list" | "server-info"> {
  const { log, replicaId } = app;
  return {
    // Socket.IO already bounds the frame (maxHttpBufferSize); any payload, binary included, goes back as is.
    echo: defineEvent(app, "echo", anyPayload, (socket, payload) => {
      socket.emit("echo-response", payload);
      return undefined;
    }),

    // Acked with how far it went: `delivered: "local"` when Redis could not relay it to the other replicas.
    broadcast: defineEvent(app, "broadcast", messageText, async (socket, message) => ({
      delivered: await app.relay.toEveryone((all) =>
        all.emit("broadcast-message", { from: senderOf(socket), message }),
      ),
    })),

    chat: defineEvent(app, "chat", messageText, async (socket, message) => ({
      delivered: await app.relay.toEveryone((all) => all.emit("chat", { from: senderOf(socket), message })),
    })),

    "get-time": defineEvent(app, "get-time", null, (socket) => {
      const time = new Date().toISOString();
      socket.emit("current-time", time);
      return { time };
    }),

    "update-list": defineEvent(app, "update-list", list, (socket, items) => {
      socket.emit("user-list", items);
      log.debug({ socket: socket.id, count: items.length }, "list updated");
      return { count: items.length };
    }),

    "server-info": defineEvent(
      app,
      "server-info",
      null,
      (socket) => ({ replica: replicaId, socketId: socket.id, rooms: joinedRooms(socket.rooms) }),
      { ackRequired: true },
    ),
  };
}
