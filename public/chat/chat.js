/* global document, window, fetch, sessionStorage, setInterval, location */
// The chat page: rooms through the project's client helper (gap-free, in order, resent until acknowledged),
// members with room-members, posts with /api/posts and post-created. Same origin as the server: the
// Socket.IO client is the one the server serves, the helper is src/client/ bundled (src/http/chat.ts).
import { io } from "/socket.io/socket.io.esm.min.js";
import { createReliableRooms } from "./reliable-rooms.js";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "realtime-chat-token";
const token = sessionStorage.getItem(TOKEN_KEY) ?? "";

/** What the page knows; also read by the browser tests (window.chat). */
const state = {
  connected: false,
  replica: null,
  socketId: null,
  /** room → its entries: { kind: "message", from, message, offset } or { kind: "gap", text } */
  rooms: new Map(),
  active: null,
  members: [],
  posts: [],
};
window.chat = state;

const socket = io({ autoConnect: false });
const rooms = createReliableRooms(socket, {
  onMessage: (m) => addEntry(m.room, { kind: "message", from: m.from, message: m.message, offset: m.offset }),
  onGap: (gap) => addEntry(gap.room, { kind: "gap", text: `missed messages (${gap.reason})` }),
  onError: (err) => notice(err.message),
  // Only with a token (AUTH_MODE optional or required); anonymous otherwise.
  ...(token ? { getToken: async () => token } : {}),
});

function notice(text) {
  $("notice").textContent = text;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  node.append(...children);
  return node;
}

// ---- connection ----

socket.on("connect", async () => {
  state.connected = true;
  $("status").textContent = "connected";
  $("status").className = "online";
  notice("");
  const info = await socket.timeout(5000).emitWithAck("server-info");
  if (info.ok) {
    state.replica = info.replica;
    state.socketId = info.socketId;
    $("replica").textContent = info.replica;
    $("socket-id").textContent = info.socketId;
  }
  void refreshMembers();
});
socket.on("disconnect", (reason) => {
  state.connected = false;
  $("status").textContent = `disconnected (${reason})`;
  $("status").className = "offline";
});
socket.on("connect_error", (err) => notice(`cannot connect: ${err.message}`));
socket.on("error", (err) => notice(`${err.event}: ${err.code} ${err.message}`));
socket.on("post-created", (post) => addPost(post));

$("token-input").value = token;
$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
  location.reload();
});

// ---- rooms and messages ----

function addEntry(room, entry) {
  const entries = state.rooms.get(room);
  if (!entries) return;
  entries.push(entry);
  if (room === state.active) renderMessages();
  if (entry.kind === "message" && room === state.active && !state.members.includes(entry.from)) void refreshMembers();
}

function renderRooms() {
  $("rooms").replaceChildren(
    ...[...state.rooms.keys()].map((room) => {
      const leave = el("button", { type: "button", textContent: "leave", title: `Leave ${room}` });
      leave.dataset.leave = room;
      const item = el(
        "li",
        { className: room === state.active ? "active" : "" },
        el("span", { textContent: room }),
        leave,
      );
      item.dataset.room = room;
      return item;
    }),
  );
}

function renderMessages() {
  const entries = state.rooms.get(state.active) ?? [];
  $("room-title").textContent = state.active ? `# ${state.active}` : "No room selected";
  $("messages").replaceChildren(
    ...entries.map((entry) => {
      if (entry.kind === "gap") return el("li", { className: "gap", textContent: entry.text });
      const mine = entry.from === state.socketId;
      const item = el(
        "li",
        { className: mine ? "mine" : "" },
        el("span", { className: "offset", textContent: `#${entry.offset}` }),
        el("span", { className: "from", textContent: mine ? "you" : entry.from }),
        el("span", { className: "text", textContent: entry.message }),
      );
      item.dataset.offset = String(entry.offset);
      return item;
    }),
  );
  $("messages").scrollTop = $("messages").scrollHeight;
  const disabled = !state.active;
  $("message-input").disabled = disabled;
  $("send-form").querySelector("button").disabled = disabled;
}

function select(room) {
  state.active = room;
  renderRooms();
  renderMessages();
  void refreshMembers();
}

$("join-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const room = $("room-input").value.trim();
  if (!room) return;
  try {
    if (!state.rooms.has(room)) state.rooms.set(room, []);
    await rooms.join(room);
    $("room-input").value = "";
    select(room);
  } catch (err) {
    state.rooms.delete(room);
    renderRooms();
    notice(`join ${room}: ${err.message}`);
  }
});

$("rooms").addEventListener("click", async (event) => {
  const leave = event.target.closest("[data-leave]")?.dataset.leave;
  if (leave) {
    try {
      await rooms.leave(leave);
    } catch (err) {
      notice(`leave ${leave}: ${err.message}`);
    }
    state.rooms.delete(leave);
    select(state.active === leave ? ([...state.rooms.keys()][0] ?? null) : state.active);
    return;
  }
  const room = event.target.closest("[data-room]")?.dataset.room;
  if (room) select(room);
});

$("send-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("message-input");
  const text = input.value;
  if (!state.active || !text) return;
  input.value = "";
  try {
    await rooms.send(state.active, text);
  } catch (err) {
    input.value = text;
    notice(`send: ${err.message}`);
  }
});

// ---- members ----

async function refreshMembers() {
  const room = state.active;
  if (!room || !socket.connected) {
    state.members = [];
    $("members").replaceChildren();
    return;
  }
  try {
    const reply = await socket.timeout(5000).emitWithAck("room-members", room);
    if (room !== state.active) return;
    if (!reply.ok) return notice(`room-members: ${reply.error.message}`);
    state.members = reply.members;
    const users = new Set(reply.users);
    $("members").replaceChildren(
      ...[...reply.members.sort(), ...[...users].filter((u) => !reply.members.includes(u))].map((id) =>
        el("li", { className: id === state.socketId ? "me" : "", textContent: id }),
      ),
    );
  } catch (err) {
    notice(`room-members: ${err.message}`);
  }
}
$("members-refresh").addEventListener("click", () => void refreshMembers());
// Nobody announces joins and leaves: look again every few seconds.
setInterval(() => void refreshMembers(), 5000);

// ---- posts ----

function addPost(post) {
  if (state.posts.some((p) => p.id === post.id)) return;
  state.posts.unshift(post);
  renderPosts();
}

function renderPosts() {
  $("posts").replaceChildren(
    ...state.posts.map((post) => {
      const item = el(
        "li",
        {},
        el("span", { className: "title", textContent: post.title }),
        el("time", { dateTime: post.createdAt, textContent: new Date(post.createdAt).toLocaleTimeString() }),
        el("span", { textContent: post.body }),
      );
      item.dataset.post = post.id;
      return item;
    }),
  );
}

const authHeaders = () => (token ? { authorization: `Bearer ${token}` } : {});

async function loadPosts() {
  const res = await fetch("/api/posts?limit=20", { headers: authHeaders() });
  if (!res.ok) return notice(`posts: HTTP ${res.status}`);
  const posts = await res.json();
  // Newest first; anything pushed meanwhile stays.
  state.posts = [...state.posts, ...posts.filter((p) => !state.posts.some((q) => q.id === p.id))];
  renderPosts();
}

$("post-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const res = await fetch("/api/posts", {
    method: "POST",
    headers: { "content-type": "application/json", ...authHeaders() },
    body: JSON.stringify({ title: $("post-title").value, body: $("post-body").value }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) return notice(`post: ${body.error?.message ?? `HTTP ${res.status}`}`);
  $("post-title").value = "";
  $("post-body").value = "";
  addPost(body);
});

socket.connect();
void loadPosts();
