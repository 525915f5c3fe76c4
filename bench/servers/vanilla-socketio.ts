/**
 * Baseline: Socket.IO 4 as its documentation shows it. In-memory adapter, the same event names as our
 * server, and nothing else: no validation, no membership checks, no logging, no metrics, no write
 * batching. Not in the default set of setups; `--setups=vanilla,...` adds it, and `npm run bench:hops`
 * uses it for the latency floor. With REDIS_URL it is one replica of a vanilla cluster
 * (`vanilla-cluster-N`): @socket.io/redis-adapter over two ioredis connections, with their defaults.
 * VANILLA_ROUND_TRIP_FIRST=1 (an experiment, docs/benchmarks.md): each room message waits for one Redis round trip
 * (PING) before its broadcast, as a server that stores a message before delivering it must.
 * VANILLA_ROUND_TRIP_FIRST=local (the bench's `vanilla-rtt-cluster-3`): the shape of ours, with vanilla's commands.
 * The publish leaves at once (the other replicas deliver from it, as ours do from the append's publish), and this
 * replica's members get the message after one Redis round trip (a PING written with the publish), as ours get it
 * from the append's reply.
 */
import { createServer } from "node:http";
import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import { Server } from "socket.io";

const redisUrl = process.env.REDIS_URL;
const roundTripFirst = process.env.VANILLA_ROUND_TRIP_FIRST === "1";
const localAfterRoundTrip = process.env.VANILLA_ROUND_TRIP_FIRST === "local";
const pub = redisUrl ? new Redis(redisUrl) : undefined;
const sub = pub?.duplicate();
for (const client of [pub, sub]) client?.on("error", () => undefined);

const http = createServer();
const io = new Server(http, { serveClient: false, adapter: pub && sub ? createAdapter(pub, sub) : undefined });

io.on("connection", (socket) => {
  socket.on("broadcast", (message: string) => {
    io.emit("broadcast-message", { from: socket.id, message });
  });
  socket.on("join-room", (room: string, ack?: (result: object) => void) => {
    void socket.join(room);
    socket.emit("room-joined", room);
    ack?.({ ok: true, room });
  });
  socket.on("room-message", ({ room, message }: { room: string; message: string }, ack?: (result: object) => void) => {
    if (localAfterRoundTrip && pub) {
      const payload = { from: socket.id, room, message };
      // Every local member left out of the broadcast (a socket id is a room of its own): only the publish remains.
      const local = io.of("/").adapter.rooms.get(room);
      io.to(room)
        .except(local ? [...local] : [])
        .emit("room-message-received", payload);
      void pub.ping().then(() => {
        io.local.to(room).emit("room-message-received", payload);
        ack?.({ ok: true });
      });
      return;
    }
    if (roundTripFirst && pub) {
      // One Redis round trip before the broadcast, as a store-then-deliver server makes (bench experiment).
      void pub.ping().then(() => {
        io.to(room).emit("room-message-received", { from: socket.id, room, message });
        ack?.({ ok: true });
      });
      return;
    }
    io.to(room).emit("room-message-received", { from: socket.id, room, message });
    ack?.({ ok: true });
  });
});

// The adapter subscribed when the namespace was created; a ping on the subscriber connection is answered
// after that subscription, so once it returns no broadcast from another replica can be missed.
if (sub) await sub.ping();
http.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => process.send?.("ready"));
// Exit cleanly on SIGTERM, so that a V8 CPU profile (BENCH_CPU_PROF) is written like our server's.
process.on("SIGTERM", () => process.exit(0));
