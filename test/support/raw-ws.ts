import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";

/**
 * A Socket.IO client over a bare TCP socket: enough of the websocket handshake and framing to join the
 * default namespace, and then to stop reading (pause()), which no real client library lets one do.
 */
export interface RawWebSocket {
  tcp: Socket;
  /** Resolves when the server closes or resets the TCP connection. */
  closed: Promise<void>;
  send(text: string): void;
  /** Stops reading: the kernel's receive buffer fills, then the server's send buffer. */
  stopReading(): void;
}

function frame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = randomBytes(4);
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x81, 0x80 | len]) : Buffer.from([0x81, 0x80 | 126, len >> 8, len & 0xff]);
  const masked = Buffer.alloc(len);
  for (let i = 0; i < len; i++) masked[i] = (payload[i] as number) ^ (mask[i % 4] as number);
  return Buffer.concat([head, mask, masked]);
}

export function openRawWebSocket(url: string): Promise<RawWebSocket> {
  const { hostname, port } = new URL(url);
  const tcp = connect(Number(port), hostname);
  const closed = new Promise<void>((resolve) => tcp.once("close", () => resolve()));
  tcp.on("error", () => undefined);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("raw websocket: no open packet within 5 s")), 5000);
    let received = "";
    tcp.once("connect", () => {
      tcp.write(
        `GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\n` +
          `Sec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    const onData = (chunk: Buffer) => {
      received += chunk.toString("latin1");
      // The 101 answer, then the Engine.IO open packet `0{"sid":…}` in the first frame.
      if (!received.includes("\r\n\r\n") || !received.includes('0{"sid"')) return;
      tcp.off("data", onData);
      clearTimeout(timer);
      if (!received.startsWith("HTTP/1.1 101")) return reject(new Error(`raw websocket: ${received.split("\r\n")[0]}`));
      const send = (text: string) => void tcp.write(frame(text));
      send("40"); // join the default namespace
      // Keep the TCP socket flowing (and answer nothing) until the test stops reading.
      tcp.on("data", () => undefined);
      resolve({ tcp, closed, send, stopReading: () => tcp.pause() });
    };
    tcp.on("data", onData);
  });
}
