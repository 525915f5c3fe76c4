/** The browser-safe client side of the room-history protocol. */
export {
  createReliableRooms,
  ReliableRoomsError,
  type GapReason,
  type ReliableRooms,
  type ReliableRoomsOptions,
  type RoomGap,
  type SentPosition,
} from "./reliable.js";
export {
  HISTORY_PAGE_LIMIT,
  MAX_MESSAGE_ID_LENGTH,
  type JoinRoomAck,
  type JoinRoomRequest,
  type RoomHistoryAck,
  type RoomHistoryRequest,
  type RoomMessageAck,
  type RoomMessageReceived,
  type RoomMessageRequest,
  type RoomPosition,
} from "./protocol.js";
