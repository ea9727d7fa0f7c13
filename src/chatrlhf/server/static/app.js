// The chat UI: login, conversation list, message tree with sibling flipping, streaming replies,
// feedback, reports and per-conversation settings, and arena turns (two replies side by side to
// pick from: arena.js). Talks to the JSON endpoints of server/web.py and server/arena.py.
//
// Safety: text from users and models reaches the page only through textContent or through
// renderMarkdown (which escapes before formatting). Nothing else is assigned to innerHTML.

import { api, stream, ApiError } from "./api.js";
import { el, icon } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { feedbackPanel, reportPanel } from "./panels.js";
import { arenaNote, arenaSides, arenaView, isPending } from "./arena.js";

const $ = (id) => document.getElementById(id);

const DEFAULT_SETTINGS = { temperature: 0.7, top_p: 1.0, max_tokens: 256, seed: null };
const ROLE_LABELS = { user: "You", assistant: "Assistant", system: "System" };
const state = {
  user: null,
  conversations: [],
  conv: null,                // the open conversation; null for a new, unsaved chat
  messages: new Map(),       // id -> message
  children: new Map(),       // parent id ("root" for none) -> child ids, oldest first
  selected: {},              // parent id -> the child shown (the server keeps the leaf: current_id)
  draft: { system_prompt: "", settings: { ...DEFAULT_SETTINGS } },
  stream: null,              // { controller, messageId, arena: ids streaming side by side } while a reply streams
  panel: null,               // { id, kind: "up" | "down" | "report" } the open feedback panel
  editing: null,             // id of the user message being edited
};

// ---------- tree helpers ----------

const keyOf = (parentId) => parentId ?? "root";

// safeNext: the ?next= target after login, as an absolute URL on this origin, or null.
// Checked the way the browser will read it, not as typed: the URL parser drops tabs and newlines
// anywhere ("/\t/evil.com" is "//evil.com", another host), trims controls and spaces at the ends,
// and reads "\" as "/". So: only a path with one leading "/", no backslash, and after resolving
// (dot segments too: "/.//evil.com") still this origin with a path that does not start "//".
function safeNext(raw, origin) {
  if (!raw) return null;
  const next = raw.replace(/[\t\n\r]/g, "").replace(/^[\x00-\x20]+|[\x00-\x20]+$/g, "");
  if (next.includes("\\") || !/^\/(?!\/)/.test(next)) return null;
  let url;
  try { url = new URL(next, origin); } catch { return null; }
  if (url.origin !== origin || url.pathname.startsWith("//")) return null;
  return url.href;
}
// end safeNext

function addMessage(m) {
  const known = state.messages.has(m.id);
  state.messages.set(m.id, { ...state.messages.get(m.id), ...m });
  if (!known) {
    const kids = state.children.get(keyOf(m.parent_id)) ?? [];
    kids.push(m.id);
    state.children.set(keyOf(m.parent_id), kids);
  }
}

function select(m) {
  state.selected[keyOf(m.parent_id)] = m.id;
}

// Select the ancestors of message `id`, so the branch that ends in it is the one on screen.
function selectBranchOf(id) {
  for (let m = state.messages.get(id); m; m = state.messages.get(m.parent_id)) select(m);
}

// The branch on screen: from the root, follow the selected (default: newest) child at each level.
function currentPath() {
  const path = [];
  let key = "root";
  for (;;) {
    const kids = state.children.get(key);
    if (!kids?.length) return path;
    const chosen = kids.includes(state.selected[key]) ? state.selected[key] : kids[kids.length - 1];
    path.push(state.messages.get(chosen));
    key = chosen;
  }
}

// The arena turn waiting for a pick at the end of the visible branch: {turn, sides} or null.
function pendingArena(path = currentPath()) {
  const last = path[path.length - 1];
  if (!last || last.role !== "assistant" || !last.arena) return null;
  const kids = (state.children.get(keyOf(last.parent_id)) ?? []).map((id) => state.messages.get(id));
  const sides = arenaSides(kids, last.parent_id);
  return isPending(sides) ? { turn: last.parent_id, sides } : null;
}

function loadTree(detail) {
  state.conv = detail.conversation;
  state.messages = new Map();
  state.children = new Map();
  for (const m of detail.messages) addMessage(m);
  state.selected = {};
  if (state.conv.current_id != null) selectBranchOf(state.conv.current_id);
}

// Remember the visible branch on the server (its leaf), so a reload shows the same versions.
function saveBranch() {
  const path = currentPath();
  if (!state.conv || !path.length) return;
  const leaf = path[path.length - 1].id;
  state.conv.current_id = leaf;
  api("PATCH", `/api/conversations/${state.conv.id}`, { current_id: leaf }).catch(showError);
}

function showError(err) {
  $("chat-error").textContent = err ? (err.message ?? String(err)) : "";
}

// ---------- sidebar ----------

async function refreshConversations() {
  const data = await api("GET", "/api/conversations");
  state.conversations = data.conversations;
  renderSidebar();
}

function renderSidebar() {
  const list = $("conversation-list");
  list.replaceChildren();
  for (const c of state.conversations) {
    const item = el("div", { class: "conv-item" + (state.conv?.id === c.id ? " active" : ""),
      "data-id": c.id, onclick: () => openConversation(c.id) });
    const title = el("span", { class: "conv-title", text: c.title || "New chat", title: c.title || "" });
    const actions = el("span", { class: "conv-actions" },
      el("button", { type: "button", class: "conv-rename-btn", title: "Rename", "aria-label": "Rename",
        onclick: (e) => { e.stopPropagation(); startRename(item, title, c); } }, icon("edit")),
      el("button", { type: "button", class: "conv-delete-btn", title: "Delete", "aria-label": "Delete",
        onclick: (e) => { e.stopPropagation(); deleteConversation(c); } }, icon("trash")));
    item.append(title, actions);
    list.append(item);
  }
}

function startRename(item, titleNode, conv) {
  const input = el("input", { class: "conv-rename", value: conv.title || "" });
  input.addEventListener("click", (e) => e.stopPropagation());
  const finish = async (save) => {
    if (!input.isConnected) return;
    if (save && input.value.trim() && input.value.trim() !== conv.title) {
      try {
        await api("PATCH", `/api/conversations/${conv.id}`, { title: input.value.trim() });
        if (state.conv?.id === conv.id) state.conv.title = input.value.trim();
        renderHeader();
      } catch (err) { showError(err); }
    }
    await refreshConversations();
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") finish(true);
    if (e.key === "Escape") finish(false);
  });
  input.addEventListener("blur", () => finish(true));
  titleNode.replaceWith(input);
  input.focus();
  input.select();
}

async function deleteConversation(conv) {
  if (!confirm(`Delete "${conv.title || "New chat"}"?`)) return;
  try {
    await api("DELETE", `/api/conversations/${conv.id}`);
    if (state.conv?.id === conv.id) newChat();
    await refreshConversations();
  } catch (err) { showError(err); }
}

// ---------- conversation ----------

function newChat() {
  state.conv = null;
  state.messages = new Map();
  state.children = new Map();
  state.selected = {};
  state.draft = { system_prompt: "", settings: { ...DEFAULT_SETTINGS } };
  state.panel = state.editing = null;
  history.replaceState(null, "", "#");
  renderAll();
  $("composer-input").focus();
}

async function openConversation(id) {
  if (state.stream) return; // finish or stop the current reply first
  try {
    loadTree(await api("GET", `/api/conversations/${id}`));
    state.panel = state.editing = null;
    history.replaceState(null, "", `#/c/${id}`);
    renderAll();
  } catch (err) {
    if (err.status === 404) newChat();
    showError(err);
  }
}

function currentSettings() {
  return state.conv
    ? { system_prompt: state.conv.system_prompt ?? "", settings: { ...DEFAULT_SETTINGS, ...state.conv.settings } }
    : state.draft;
}

function renderHeader() {
  $("chat-title").textContent = state.conv?.title || "New chat";
}

function renderAll() {
  document.querySelector(".sidebar").classList.remove("open"); // the narrow-screen drawer
  renderHeader();
  renderSidebar();
  renderMessages({ toBottom: true });
  renderSettings();
  renderComposer();
}

function renderComposer() {
  const busy = Boolean(state.stream);
  const picking = !busy && Boolean(pendingArena());
  $("send").hidden = busy;
  $("send").disabled = picking;
  $("stop").hidden = !busy;
  $("composer-input").disabled = busy || picking;
  $("composer-input").placeholder = picking ? "Pick a reply above to go on" : "Send a message";
}

const nearBottom = (box) => box.scrollHeight - box.scrollTop - box.clientHeight < 80;

// Re-renders the visible branch. The view follows the end of the chat only when asked to or when
// the reader was already there, so opening a panel on an earlier reply doesn't jump away from it.
function renderMessages({ toBottom = false } = {}) {
  const box = $("messages");
  const follow = toBottom || nearBottom(box);
  const top = box.scrollTop;
  box.replaceChildren();
  const path = currentPath();
  if (!path.length) {
    box.append(el("div", { class: "empty", text: "How can I help you today?" }));
    return;
  }
  const arena = pendingArena(path);
  for (const m of arena ? path.slice(0, -1) : path) box.append(renderMessage(m));
  if (arena) box.append(renderArena(arena));
  box.scrollTop = follow ? box.scrollHeight : top;
}

function renderBody(m, body) {
  if (m.role === "assistant") body.innerHTML = renderMarkdown(m.content); // escaped before formatting
  else body.textContent = m.content;
}

const isBlocked = (m) => m.finish_reason === "content_filter";

function statusNote(m) {
  if (isBlocked(m)) {
    return el("div", { class: "msg-note blocked", text: "This reply was withheld by moderation." });
  }
  if (m.finish_reason === "cancelled") return el("div", { class: "msg-note", text: "Stopped" });
  if (m.status === "error") return el("div", { class: "msg-note blocked", text: "The reply failed." });
  if (m.status === "streaming" && state.stream?.messageId !== m.id) {
    return el("div", { class: "msg-note", text: "Interrupted" });
  }
  return null;
}

function siblingNav(m) {
  const kids = state.children.get(keyOf(m.parent_id)) ?? [];
  if (kids.length < 2) return null;
  const i = kids.indexOf(m.id);
  const flip = (d) => {
    select(state.messages.get(kids[i + d]));
    state.panel = state.editing = null;
    renderMessages();
    saveBranch();
  };
  const busy = Boolean(state.stream);
  return el("span", { class: "sibling-nav" },
    el("button", { type: "button", class: "sib-prev", "aria-label": "Previous version", text: "‹",
      disabled: busy || i === 0, onclick: () => flip(-1) }),
    el("span", { class: "sib-count", text: `${i + 1} / ${kids.length}` }),
    el("button", { type: "button", class: "sib-next", "aria-label": "Next version", text: "›",
      disabled: busy || i === kids.length - 1, onclick: () => flip(1) }));
}

function actionButton(label, glyph, text, cls, onclick, busy) {
  return el("button", { type: "button", class: cls, title: label, "aria-label": label, onclick, disabled: busy },
    glyph, text ? el("span", { text }) : null);
}

function messageActions(m) {
  const busy = Boolean(state.stream);
  const bar = el("div", { class: "msg-actions" }, siblingNav(m));
  if (m.role === "user") {
    bar.append(actionButton("Edit", icon("edit"), "Edit", "act-edit", () => { state.editing = m.id; renderMessages(); }, busy));
    if (!state.children.get(m.id)?.length) {
      bar.append(actionButton("Retry", icon("regen"), "Retry", "act-retry", () => regenerate(m), busy));
    }
    return bar;
  }
  const rating = m.feedback?.rating ?? 0;
  bar.append(
    actionButton("Good response", icon("up"), "", "act-up" + (rating > 0 ? " on" : ""), () => rate(m, 1), busy),
    actionButton("Bad response", icon("up", true), "", "act-down" + (rating < 0 ? " on down" : ""), () => rate(m, -1), busy),
    actionButton("Regenerate", icon("regen"), "Regenerate", "act-regen", () => regenerate(m), busy),
    actionButton("Report", icon("flag"), "Report", "act-report",
      () => { state.panel = { id: m.id, kind: "report" }; renderMessages(); }, busy),
    actionButton("Copy", icon("copy"), "", "act-copy", (e) => copyText(e.currentTarget, m.content), false));
  if (m.reports?.length) bar.append(el("span", { class: "thanks", text: "Reported" }));
  return bar;
}

function renderMessage(m) {
  const node = el("div", { class: `msg ${m.role}` + (state.stream?.messageId === m.id ? " streaming" : ""),
    "data-id": m.id, "data-role": m.role });
  node.append(el("div", { class: "msg-role", text: ROLE_LABELS[m.role] ?? m.role }));
  if (state.editing === m.id) {
    node.append(editBox(m));
    return node;
  }
  const body = el("div", { class: "msg-body" });
  renderBody(m, body);
  node.append(body, statusNote(m) ?? "", arenaNote(m) ?? "", messageActions(m));
  if (state.panel?.id === m.id) node.append(openPanel(m));
  return node;
}

function renderArena({ turn, sides }) {
  return arenaView(turn, sides, {
    streaming: Boolean(state.stream),
    streamingIds: new Set(state.stream?.arena ?? []),
    fail: showError,
    picked: ({ chosen_id, versions, choice }) => {
      for (const side of ["A", "B"]) {
        const m = state.messages.get(sides[side].id);
        m.arena = { ...m.arena, choice };
        m.model_version = versions[side]; // revealed once picked
      }
      const chosen = state.messages.get(chosen_id);
      select(chosen);
      if (state.conv) state.conv.current_id = chosen_id; // the server moved it with the pick
      showError(null);
      renderMessages({ toBottom: true });
      renderComposer();
      $("composer-input").focus();
    },
  });
}

function editBox(m) {
  const input = el("textarea", { class: "edit-input" });
  input.value = m.content;
  const box = el("div", { class: "edit-box" }, input,
    el("div", { class: "row" },
      el("button", { type: "button", class: "primary edit-submit", text: "Save & submit",
        onclick: () => { if (input.value.trim()) edit(m, input.value); } }),
      el("button", { type: "button", class: "ghost edit-cancel", text: "Cancel",
        onclick: () => { state.editing = null; renderMessages(); } })));
  setTimeout(() => input.focus());
  return box;
}

async function copyText(button, text) {
  try {
    await navigator.clipboard.writeText(text);
    button.title = "Copied";
    button.classList.add("on");
    setTimeout(() => { button.title = "Copy"; button.classList.remove("on"); }, 1200);
  } catch (err) { showError(new Error("Copying needs clipboard access (HTTPS or localhost).")); }
}

// ---------- feedback and reports ----------

function openPanel(m) {
  const close = () => { state.panel = null; renderMessages(); };
  const hooks = { close, fail: showError };
  if (state.panel.kind === "report") {
    return reportPanel(m, isBlocked(m), { ...hooks, done: (kind) => { m.reports = [...(m.reports ?? []), kind]; close(); } });
  }
  const rating = state.panel.kind === "up" ? 1 : -1;
  return feedbackPanel(m, rating, { ...hooks, done: (fb) => { m.feedback = fb; close(); } });
}

// A thumb records the rating at once; the panel that opens lets the user add reasons.
// Pressing the thumb that is already on takes the rating back.
async function rate(m, rating) {
  try {
    if (m.feedback?.rating === rating) {
      await api("DELETE", `/api/messages/${m.id}/feedback`);
      m.feedback = null;
      state.panel = null;
    } else {
      const fb = await api("POST", `/api/messages/${m.id}/feedback`, { rating, reasons: [], comment: "" });
      m.feedback = fb.feedback;
      state.panel = { id: m.id, kind: rating > 0 ? "up" : "down" };
    }
    renderMessages();
  } catch (err) { showError(err); }
}

// ---------- streaming ----------

function updateStreamingBody(m) {
  const box = $("messages");
  const follow = nearBottom(box);
  const node = document.querySelector(`.msg[data-id="${CSS.escape(String(m.id))}"] .msg-body`);
  if (node) renderBody(m, node); else renderMessages();
  if (follow) box.scrollTop = box.scrollHeight;
}

function onStreamEvent(ev) {
  if (ev.type === "user" || ev.type === "assistant") {
    if (ev.type === "user" && state.conv && !state.conv.title) {
      // The server titles a new chat after its first message; show that title right away.
      state.conv.title = ev.message.content.split(/\s+/).join(" ").trim().slice(0, 60);
      renderHeader();
      renderSidebar();
    }
    addMessage(ev.message);
    select(ev.message);
    if (ev.type === "assistant") state.stream.messageId = ev.message.id;
    renderMessages();
  } else if (ev.type === "arena") {
    // Two replies stream side by side; a stop on either (the server's rule) stops both.
    for (const m of ev.messages) addMessage(m);
    select(ev.messages[0]);
    state.stream.messageId = ev.messages[0].id;
    state.stream.arena = ev.messages.map((m) => m.id);
    renderMessages();
  } else if (ev.type === "arena_reply") {
    addMessage(ev.message);
    state.stream.arena = (state.stream.arena ?? []).filter((id) => id !== ev.message.id);
    renderMessages();
  } else if (ev.type === "delta") {
    const m = state.messages.get(ev.id ?? state.stream.messageId);
    m.content += ev.text;
    updateStreamingBody(m);
  } else if (ev.type === "done") {
    addMessage(ev.message);
    for (const m of ev.arena?.messages ?? []) addMessage(m);
  } else if (ev.type === "error") {
    if (ev.message) addMessage(ev.message);
    for (const m of ev.arena?.messages ?? []) addMessage(m);
    showError(ev.error);
  }
}

async function runStream(path, body) {
  showError(null);
  state.stream = { controller: new AbortController(), messageId: null };
  state.panel = state.editing = null;
  renderComposer();
  renderMessages({ toBottom: true });
  try {
    await stream(path, body, onStreamEvent, state.stream.controller.signal);
  } catch (err) {
    if (err.name !== "AbortError") showError(err);
  } finally {
    state.stream = null;
    renderComposer();
    renderMessages();
    refreshConversations().then(() => {
      const fresh = state.conversations.find((c) => c.id === state.conv?.id);
      if (fresh) { state.conv = { ...state.conv, ...fresh }; renderHeader(); }
    }).catch(showError);
    $("composer-input").focus();
  }
}

async function ensureConversation() {
  if (state.conv) return state.conv;
  const created = await api("POST", "/api/conversations", state.draft);
  state.conv = created.conversation;
  state.selected = {};
  history.replaceState(null, "", `#/c/${state.conv.id}`);
  state.conversations.unshift(state.conv);
  renderSidebar();
  return state.conv;
}

async function send(text) {
  if (pendingArena()) return showError(new Error("Pick one of the two replies first."));
  try {
    const conv = await ensureConversation();
    const path = currentPath();
    const last = path[path.length - 1];
    // Reply to the last answer; a last user turn without one (it failed) is replaced instead.
    const parent = !last ? null : last.role === "assistant" ? last.id : last.parent_id;
    await runStream(`/api/conversations/${conv.id}/messages`, { content: text, parent_id: parent });
  } catch (err) { showError(err); }
}

const regenerate = (m) => runStream(`/api/messages/${m.id}/regenerate`, {});
const edit = (m, content) => runStream(`/api/messages/${m.id}/edit`, { content });

async function stop() {
  const s = state.stream;
  if (!s) return;
  try {
    if (s.messageId) await api("POST", `/api/messages/${s.messageId}/stop`, {});
  } catch { /* the stream may just have ended */ }
  // The server ends the stream on stop; if it doesn't within a few seconds, drop the connection,
  // which also cancels the generation.
  setTimeout(() => { if (state.stream === s) s.controller.abort(); }, 3000);
}

// ---------- settings ----------

const SETTING_FIELDS = ["temperature", "top_p", "max_tokens", "seed"];

function renderSettings() {
  const cur = currentSettings();
  $("set-system").value = cur.system_prompt ?? "";
  for (const f of SETTING_FIELDS) $(`set-${f}`).value = cur.settings[f] ?? "";
  $("out-temperature").textContent = $("set-temperature").value;
  $("out-top_p").textContent = $("set-top_p").value;
  $("settings-status").textContent = "";
}

function readSettings() {
  const num = (id) => ($(id).value === "" ? null : Number($(id).value));
  return {
    system_prompt: $("set-system").value,
    settings: { temperature: num("set-temperature"), top_p: num("set-top_p"),
      max_tokens: num("set-max_tokens"), seed: num("set-seed") },
  };
}

async function saveSettings() {
  const values = readSettings();
  try {
    if (state.conv) {
      const res = await api("PATCH", `/api/conversations/${state.conv.id}`, values);
      state.conv = { ...state.conv, ...res.conversation };
    } else {
      state.draft = values;
    }
    $("settings-status").textContent = "Saved";
  } catch (err) {
    $("settings-status").textContent = err.message;
  }
}

// ---------- boot ----------

function showLogin() {
  $("app-view").hidden = true;
  $("login-view").hidden = false;
  $("login-username").focus();
}

// The conversation a `#/c/<id>` link names, or null.
function linkedConversationId() {
  const match = /^#\/c\/(.+)$/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

async function showApp() {
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  $("user-name").textContent = state.user.username;
  $("workspace-link").hidden = !["trainer", "admin"].includes(state.user.role);
  await refreshConversations();
  const id = linkedConversationId();
  if (id) await openConversation(id); else newChat();
  // Set once the first view is on screen, so scripts (and tests) can tell a page still loading
  // from one that is idle.
  document.body.dataset.ready = "true";
}

async function boot() {
  try {
    state.user = (await api("GET", "/api/me")).user;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return showLogin();
    throw err;
  }
  await showApp();
}

function wire() {
  // A pasted link, or back/forward between conversations, changes only the hash.
  window.addEventListener("hashchange", () => {
    const id = linkedConversationId();
    if (state.user && id && id !== String(state.conv?.id)) openConversation(id);
  });
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("login-error").textContent = "";
    try {
      const res = await api("POST", "/api/login",
        { username: $("login-username").value, password: $("login-password").value });
      state.user = res.user;
      $("login-password").value = "";
      // Pages of this site that need a login (the trainer workspace) send people here with
      // ?next=/path; only same-origin paths are followed.
      const next = safeNext(new URLSearchParams(location.search).get("next"), location.origin);
      if (next) { location.href = next; return; }
      await showApp();
    } catch (err) { $("login-error").textContent = err.message; }
  });
  $("logout").addEventListener("click", async () => {
    try { await api("POST", "/api/logout", {}); } finally { state.user = null; showLogin(); }
  });
  $("new-chat").addEventListener("click", () => { if (!state.stream) newChat(); });
  $("sidebar-toggle").addEventListener("click", (e) => {
    e.stopPropagation();
    document.querySelector(".sidebar").classList.toggle("open");
  });
  document.querySelector(".chat").addEventListener("click", () => document.querySelector(".sidebar").classList.remove("open"));
  const input = $("composer-input");
  const submit = () => {
    const text = input.value;
    if (!text.trim() || state.stream) return;
    input.value = "";
    input.style.height = "";
    send(text);
  };
  $("composer").addEventListener("submit", (e) => { e.preventDefault(); submit(); });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
  });
  input.addEventListener("input", () => {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
  });
  $("stop").addEventListener("click", stop);
  $("settings-toggle").addEventListener("click", () => {
    const panel = $("settings-panel");
    panel.hidden = !panel.hidden;
    $("settings-toggle").setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) renderSettings();
  });
  $("settings-save").addEventListener("click", saveSettings);
  for (const f of ["temperature", "top_p"]) {
    $(`set-${f}`).addEventListener("input", () => { $(`out-${f}`).textContent = $(`set-${f}`).value; });
  }
}

wire();
boot().catch((err) => { document.body.textContent = `Failed to start: ${err.message}`; });
