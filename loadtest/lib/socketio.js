// @ts-check
/**
 * Engine.IO v4 / Socket.IO v5 over WebSocket, as plain functions with no Node or k6 APIs, so that k6
 * scenarios, the benchmark load generator and the tests share one implementation.
 * Text frames only: binary attachments (`45…`) are decoded as "unsupported".
 *
 * @typedef {import("../../src/contract.js").ClientToServerEvents} ClientToServerEvents
 * @typedef {import("../../src/contract.js").ServerToClientEvents} ServerToClientEvents
 * @typedef {keyof ClientToServerEvents} ClientEvent
 * @typedef {keyof ServerToClientEvents} ServerEvent
 *
 * @typedef {{ type: "open", sid: string, pingInterval: number, pingTimeout: number }
 *   | { type: "ping" }
 *   | { type: "pong" }
 *   | { type: "close" }
 *   | { type: "connect", sid: string }
 *   | { type: "disconnect" }
 *   | { type: "connect_error", message: string }
 *   | { type: "event", event: string, args: unknown[], ackId: number | undefined }
 *   | { type: "ack", id: number, args: unknown[] }
 *   | { type: "unsupported", raw: string }} Packet
 */

export const PING = "2";
export const PONG = "3";

/** ws(s)://host/socket.io/?EIO=4&transport=websocket for an http(s):// base URL. */
export function socketIoUrl(/** @type {string} */ baseUrl) {
  const trimmed = baseUrl.replace(/\/+$/, "");
  const ws = trimmed.replace(/^http(s?):\/\//, "ws$1://");
  return `${ws}/socket.io/?EIO=4&transport=websocket`;
}

/** Namespace connect: `40` plus the optional auth object. */
export function encodeConnect(/** @type {object | undefined} */ auth) {
  return auth ? `40${JSON.stringify(auth)}` : "40";
}

/**
 * An event frame: `42[event, ...args]`, or `42<ackId>[…]` when the sender wants an acknowledgement.
 * @param {ClientEvent} event
 * @param {unknown[]} args
 * @param {number} [ackId]
 */
export function encodeEvent(event, args, ackId) {
  return `42${ackId === undefined ? "" : ackId}${JSON.stringify([event, ...args])}`;
}

/** @returns {Packet} */
export function decode(/** @type {string} */ frame) {
  switch (frame[0]) {
    case "0": {
      const open = JSON.parse(frame.slice(1));
      return { type: "open", sid: open.sid, pingInterval: open.pingInterval, pingTimeout: open.pingTimeout };
    }
    case "1":
      return { type: "close" };
    case "2":
      return { type: "ping" };
    case "3":
      return { type: "pong" };
    case "4":
      return decodeSocketIo(frame);
    default:
      return { type: "unsupported", raw: frame };
  }
}

/** @returns {Packet} */
function decodeSocketIo(/** @type {string} */ frame) {
  const kind = frame[1];
  // Default namespace only: a namespace ("/chat,") would follow the type digit.
  let i = 2;
  while (i < frame.length && frame.charCodeAt(i) >= 48 && frame.charCodeAt(i) <= 57) i++;
  const id = i > 2 ? Number(frame.slice(2, i)) : undefined;
  const body = frame.slice(i);
  switch (kind) {
    case "0":
      return { type: "connect", sid: body ? JSON.parse(body).sid : "" };
    case "1":
      return { type: "disconnect" };
    case "2": {
      const [event, ...args] = JSON.parse(body);
      return { type: "event", event, args, ackId: id };
    }
    case "3":
      return { type: "ack", id: id ?? -1, args: JSON.parse(body) };
    case "4":
      return { type: "connect_error", message: body ? JSON.parse(body).message : "" };
    default:
      return { type: "unsupported", raw: frame };
  }
}

/**
 * One Socket.IO client session over any transport that sends text frames. Feed it every received
 * frame with `receive`; it answers pings, connects the namespace after the open packet, and routes
 * events and acknowledgements to the handlers.
 */
export class SocketIoSession {
  /**
   * @param {(frame: string) => void} send
   * @param {{
   *   onConnect?: (sid: string) => void,
   *   onEvent?: (event: string, args: unknown[]) => void,
   *   onError?: (message: string) => void,
   *   auth?: object,
   * }} [handlers]
   */
  constructor(send, handlers = {}) {
    this.send = send;
    this.handlers = handlers;
    this.connected = false;
    /** @type {string | undefined} */
    this.sid = undefined;
    this.nextAckId = 0;
    /** @type {Map<number, (args: unknown[]) => void>} */
    this.pendingAcks = new Map();
  }

  /** Handles one received frame and returns what it was. */
  receive(/** @type {string} */ frame) {
    const packet = decode(frame);
    switch (packet.type) {
      case "open":
        this.send(encodeConnect(this.handlers.auth));
        break;
      case "ping":
        this.send(PONG);
        break;
      case "connect":
        this.connected = true;
        this.sid = packet.sid;
        this.handlers.onConnect?.(packet.sid);
        break;
      case "event":
        this.handlers.onEvent?.(packet.event, packet.args);
        break;
      case "ack": {
        const callback = this.pendingAcks.get(packet.id);
        this.pendingAcks.delete(packet.id);
        callback?.(packet.args);
        break;
      }
      case "connect_error":
        this.handlers.onError?.(packet.message);
        break;
      case "disconnect":
      case "close":
        this.connected = false;
        break;
    }
    return packet;
  }

  /**
   * @param {ClientEvent} event
   * @param {unknown[]} [args]
   * @param {(args: unknown[]) => void} [onAck]
   */
  emit(event, args = [], onAck) {
    if (!onAck) return this.send(encodeEvent(event, args));
    const id = this.nextAckId++;
    this.pendingAcks.set(id, onAck);
    this.send(encodeEvent(event, args, id));
  }

  /** Leaves the namespace; the caller then closes the websocket (Engine.IO has no client close packet). */
  close() {
    this.send("41");
    this.connected = false;
  }
}
