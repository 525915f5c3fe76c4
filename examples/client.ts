/**
 * The design documents' Node client, in TypeScript: connects, emits the seed events, prints every answer,
 * disconnects after 3 s. Usage: npm run client -- [url]   (default http://localhost:5000)
 */
import { io, type Socket } from "socket.io-client";
import type { ClientToServerEvents, ServerToClientEvents } from "../src/contract.js";

const url = process.argv[2] ?? process.env.SERVER_URL ?? "http://localhost:5000";
const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io(url);

console.log("Connecting to Socket.IO server...\n");

socket.on("connect", () => {
  console.log("✓ Connected to server");
  console.log(`✓ Socket ID: ${socket.id}\n`);

  socket.emit("echo", "Hello, server!");
  socket.emit("broadcast", "Hi everyone!");
  socket.emit("join-room", "test-room");
  socket.emit("room-message", { room: "test-room", message: "Hello room!" });
  socket.emit("get-time");

  console.log("✓ All test events emitted\n");
});

socket.on("echo-response", (message) => console.log(`[Echo Response] ${String(message)}`));
socket.on("broadcast-message", (data) => console.log(`[Broadcast] From ${data.from}: ${data.message}`));
socket.on("room-joined", (roomName) => console.log(`[Room] Joined: ${roomName}`));
socket.on("room-message-received", (data) => console.log(`[Room Message] From ${data.from}: ${data.message}`));
socket.on("current-time", (time) => console.log(`[Server Time] ${time}\n`));
socket.on("error", (err) => console.log(`[Error] ${err.event}: ${err.code} ${err.message}`));
socket.on("connect_error", (err) => console.log(`x Connection failed: ${err.message}`));
socket.on("disconnect", () => console.log("x Disconnected from server"));

setTimeout(() => {
  console.log("Disconnecting...");
  socket.disconnect();
  process.exit(0);
}, 3000);
