/**
 * The physical-limit proxy: a minimal `ws` server, one write per frame, no validation, no logging.
 * Text protocol: `j:<room>` joins a room; `r:<room>|<payload>` goes to the room's members; anything
 * else goes to every client.
 */
import { WebSocketServer, type WebSocket } from "ws";

const port = Number(process.env.PORT ?? 0);
const wss = new WebSocketServer({ port, host: "127.0.0.1", perMessageDeflate: false, clientTracking: true });
const rooms = new Map<string, Set<WebSocket>>();

wss.on("connection", (socket) => {
  const joined: Array<Set<WebSocket>> = [];
  socket.once("close", () => joined.forEach((members) => members.delete(socket)));
  socket.on("message", (data, isBinary) => {
    const text = isBinary ? "" : data.toString();
    if (text.startsWith("j:")) {
      const room = text.slice(2);
      let members = rooms.get(room);
      if (!members) rooms.set(room, (members = new Set()));
      members.add(socket);
      joined.push(members);
      return;
    }
    if (text.startsWith("r:")) {
      for (const member of rooms.get(text.slice(2, text.indexOf("|"))) ?? []) member.send(text);
      return;
    }
    for (const client of wss.clients) client.send(data, { binary: isBinary });
  });
});
wss.on("listening", () => process.send?.({ ev: "listening", port: (wss.address() as { port: number }).port }));
process.on("SIGTERM", () => wss.close(() => process.exit(0)));
