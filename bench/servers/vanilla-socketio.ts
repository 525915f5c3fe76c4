/**
 * Baseline: Socket.IO 4 as its documentation shows it. In-memory adapter, the same event names as our
 * server, and nothing else: no validation, no membership checks, no logging, no metrics, no write
 * batching. Not in the default set of setups; `--setups=vanilla,...` adds it, and `npm run bench:hops`
 * uses it for the latency floor.
 */
import { createServer } from "node:http";
import { Server } from "socket.io";

const http = createServer();
const io = new Server(http, { serveClient: false });

io.on("connection", (socket) => {
  socket.on("broadcast", (message: string) => {
    io.emit("broadcast-message", { from: socket.id, message });
  });
  socket.on("join-room", (room: string, ack?: (result: object) => void) => {
    void socket.join(room);
    socket.emit("room-joined", room);
    ack?.({ ok: true, room });
  });
  socket.on("room-message", ({ room, message }: { room: string; message: string }) => {
    io.to(room).emit("room-message-received", { from: socket.id, room, message });
  });
});

http.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => process.send?.("ready"));
