/**
 * The physical-limit proxy: a minimal `ws` server that writes every frame it receives to every client,
 * once each. No protocol, no validation, no logging.
 */
import { WebSocketServer, type RawData } from "ws";

const port = Number(process.env.PORT ?? 0);
const wss = new WebSocketServer({ port, host: "127.0.0.1", perMessageDeflate: false, clientTracking: true });

wss.on("connection", (socket) => {
  socket.on("message", (data: RawData, isBinary: boolean) => {
    for (const client of wss.clients) client.send(data, { binary: isBinary });
  });
});
wss.on("listening", () => process.send?.({ ev: "listening", port: (wss.address() as { port: number }).port }));
process.on("SIGTERM", () => wss.close(() => process.exit(0)));
