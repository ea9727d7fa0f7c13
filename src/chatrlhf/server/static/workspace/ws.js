// Shared helpers for the trainer workspace pages: JSON calls, safe DOM building, the top bar and
// the guidelines panel. Every string from the server or the user reaches the page through
// textContent or an attribute, never through innerHTML, so nothing can be interpreted as markup.

const HEADERS = { "Content-Type": "application/json", "X-Requested-With": "chatrlhf" };

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export async function api(method, path, body) {
  const resp = await fetch(path, {
    method, headers: HEADERS, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (resp.status === 401) { location.href = "/?next=" + encodeURIComponent(location.pathname); throw new ApiError(401, "log in"); }
  if (!resp.ok) {
    let message = `${resp.status} ${resp.statusText}`;
    try {
      const b = await resp.json();
      const d = b.error?.message ?? b.detail;
      if (typeof d === "string") message = d;
    } catch { /* keep the status line */ }
    throw new ApiError(resp.status, message);
  }
  return resp.status === 204 ? null : resp.json();
}

// el("div", {class: "x", onclick: fn}, "text", child, ...): strings become text nodes.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "value") node.value = v;
    else if (k in node && typeof v !== "string") node[k] = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function debounce(fn, ms) {
  let t = null;
  const wrapped = (...args) => { clearTimeout(t); t = setTimeout(() => { t = null; fn(...args); }, ms); };
  wrapped.flush = (...args) => { if (t !== null) { clearTimeout(t); t = null; return fn(...args); } };
  return wrapped;
}

const LINKS = [["/workspace", "Home"], ["/workspace/demo", "Write demonstrations"], ["/workspace/rank", "Rank"]];

// Builds the top bar; resolves to the current user (or redirects to the login page).
export async function setup(active) {
  const me = await api("GET", "/api/workspace/me");
  const links = me.role === "admin" ? [...LINKS, ["/workspace/admin", "Admin"], ["/workspace/monitor", "Monitor"]] : LINKS;
  const guideBtn = el("button", { type: "button", id: "guidelines-toggle", "aria-expanded": "false",
                                  onclick: toggleGuidelines }, "Guidelines");
  const bar = el("header", { class: "topbar" },
    el("span", { class: "brand" }, "chatrlhf · trainer workspace"),
    el("nav", {}, links.map(([href, label]) =>
      el("a", { href, class: href === active ? "active" : null }, label))),
    guideBtn,
    el("span", { class: "muted", id: "whoami" }, `${me.username} (${me.role})`),
    el("a", { href: "/", class: "muted" }, "Chat"));
  document.body.prepend(bar);
  return me;
}

// The guidelines open in a panel beside the task, so trainers can read them while working.
export function toggleGuidelines() {
  const layout = document.querySelector(".layout");
  let panel = document.getElementById("guide-panel");
  const btn = document.getElementById("guidelines-toggle");
  if (panel) { panel.remove(); btn?.setAttribute("aria-expanded", "false"); return; }
  panel = el("aside", { class: "guide-panel", id: "guide-panel", "aria-label": "Guidelines" },
    el("header", {}, el("strong", {}, "Guidelines"),
      el("button", { type: "button", class: "small", onclick: toggleGuidelines }, "Close")),
    el("iframe", { src: "/workspace/guidelines?embed=1", title: "Labelling guidelines" }));
  layout.append(panel);
  btn?.setAttribute("aria-expanded", "true");
}

export function showError(node, err) {
  node.className = "error";
  node.textContent = err ? (err.message || String(err)) : "";
}

export function showOk(node, text) {
  node.className = "ok";
  node.textContent = text;
}
