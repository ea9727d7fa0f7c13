// Admin page: trainers and roles, agreement, ranking-task creation and review, prompt-list uploads,
// and the model registry (versions, what is served, promote / roll back / split, the deployment log).
import { api, el, setup, showError, showOk } from "/static/workspace/ws.js";

const $ = (id) => document.getElementById(id);
const pct = (x) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(1)}%`);

async function loadUsers() {
  const [{ users }, ag] = await Promise.all([api("GET", "/api/workspace/admin/users"),
                                            api("GET", "/api/workspace/admin/agreement")]);
  const byName = Object.fromEntries(ag.trainers.map((t) => [t.annotator, t]));
  $("users").replaceChildren(...users.map((u) => {
    const sel = el("select", { "aria-label": `Role of ${u.username}`, onchange: async (ev) => {
      try {
        await api("POST", `/api/workspace/admin/users/${u.id}/role`, { role: ev.target.value });
        showOk($("users-status"), `${u.username} is now ${ev.target.value}.`);
      } catch (e) { showError($("users-status"), e); ev.target.value = u.role; }
    } }, ["user", "trainer", "admin"].map((r) => el("option", { value: r, selected: r === u.role }, r)));
    const a = byName[u.username];
    return el("tr", {}, el("td", {}, u.username), el("td", {}, sel),
      el("td", {}, a ? `${pct(a.agreement)} over ${a.pairs} pairs` : "–"));
  }));
  $("agreement").textContent = ag.overall === null
    ? "No task has been ranked by two trainers yet."
    : `Overall pairwise agreement: ${pct(ag.overall)} over ${ag.pairs} compared pairs.`;
}

async function loadTasks() {
  const { tasks } = await api("GET", "/api/workspace/admin/tasks");
  $("tasks").replaceChildren(...tasks.map((t) => el("tr", {},
    el("td", {}, el("a", { href: `#task-${t.id}`, onclick: (ev) => { ev.preventDefault(); showTask(t.id); } }, String(t.id))),
    el("td", {}, t.prompt.slice(0, 90)), el("td", {}, String(t.k)),
    el("td", {}, `${t.submitted}/${t.required}`), el("td", {}, String(t.assigned)),
    el("td", {}, el("span", { class: "pill" }, t.status)), el("td", {}, t.source))));
  if (!tasks.length) $("tasks").append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No tasks yet.")));
}

async function showTask(id) {
  const [d, bt] = await Promise.all([api("GET", `/api/workspace/admin/tasks/${id}`),
                                     api("GET", `/api/workspace/admin/tasks/${id}?method=bradley_terry`)]);
  const letters = "ABCDEFGHI";
  const agg = d.aggregate;
  const aggBT = bt.aggregate;
  $("task-detail").replaceChildren(el("div", { class: "card" },
    el("h2", {}, `Task #${d.id}`),
    el("div", { class: "prefix" }, d.prefix.map((m) =>
      el("div", { class: `msg ${m.role}` }, el("strong", {}, `${m.role}: `), el("span", { class: "text" }, m.content)))),
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Reply"), el("th", {}, "Model"),
        el("th", {}, "Ranked pairs"), el("th", {}, "Bradley–Terry"), el("th", {}, "Text"))),
      el("tbody", {}, d.completions.map((c, p) => el("tr", {},
        el("td", {}, letters[p]), el("td", {}, c.model),
        el("td", {}, agg ? String(agg[p] + 1) : "–"), el("td", {}, aggBT ? String(aggBT[p] + 1) : "–"),
        el("td", { class: "text" }, c.text))))),
    el("h2", {}, "Rankings"),
    d.rankings.length ? el("ul", {}, d.rankings.map((r) => el("li", {},
      `${r.annotator}: ${r.ranks.map((x, p) => `${letters[p]}=${x + 1}`).join(" ")}`,
      r.all_unacceptable ? " · all unacceptable" : "",
      Object.keys(r.flags).length ? ` · flags ${JSON.stringify(r.flags)}` : "",
      r.comment ? ` · “${r.comment}”` : ""))) : el("p", { class: "muted" }, "No rankings yet.")));
}

async function loadLists() {
  const { lists } = await api("GET", "/api/workspace/admin/prompts");
  $("lists").replaceChildren(...lists.map((l) => el("tr", {},
    el("td", {}, String(l.id)), el("td", {}, l.name), el("td", {}, String(l.prompts)), el("td", {}, String(l.used)))));
  $("nt-list").replaceChildren(el("option", { value: "" }, "any"),
    ...lists.map((l) => el("option", { value: String(l.id) }, `${l.name} (${l.prompts})`)));
}

async function createTasks(ev) {
  ev.preventDefault();
  showOk($("tasks-status"), "Sampling replies from the model…");
  try {
    const list = $("nt-list").value;
    const res = await api("POST", "/api/workspace/admin/tasks", {
      source: $("nt-source").value, list_id: list ? Number(list) : null,
      count: Number($("nt-count").value), k: Number($("nt-k").value), required: Number($("nt-required").value),
    });
    const msg = `Created ${res.created.length} task(s).` + (res.exhausted ? " Nothing more to pick from that source." : "");
    (res.created.length ? showOk : showError)($("tasks-status"), res.created.length ? msg : new Error(msg));
    await Promise.all([loadTasks(), loadLists()]);
  } catch (e) { showError($("tasks-status"), e); }
}

async function upload(ev) {
  ev.preventDefault();
  try {
    const file = $("up-file").files[0];
    const text = file ? await file.text() : $("up-text").value;
    const res = await api("POST", "/api/workspace/admin/prompts",
      { name: $("up-name").value, format: $("up-format").value, text });
    const status = $("upload-status");
    showOk(status, `Uploaded ${res.prompts} prompt(s) as list #${res.id}.`);
    if (res.errors.length) status.append(el("ul", { class: "error" }, res.errors.slice(0, 20).map((e) => el("li", {}, e))));
    await loadLists();
  } catch (e) { showError($("upload-status"), e); }
}

async function newUser(ev) {
  ev.preventDefault();
  try {
    const u = await api("POST", "/api/workspace/admin/users",
      { username: $("nu-name").value, password: $("nu-pass").value, role: $("nu-role").value });
    showOk($("users-status"), `Created ${u.username} (${u.role}).`);
    $("new-user").reset();
    await loadUsers();
  } catch (e) { showError($("users-status"), e); }
}

// ---- model versions (/api/admin/models) ----

const when = (iso) => (iso ? iso.replace("T", " ").slice(0, 16) : "–");
const firstLine = (text) => (text || "").split("\n", 1)[0].slice(0, 120);
const share = (w, total) => `${w} (${(100 * w / total).toFixed(0)}%)`;

function servingCell(name, serving) {
  const total = Object.values(serving.traffic).reduce((a, b) => a + b, 0);
  const parts = [];
  if (name === serving.default) parts.push(el("span", { class: "pill served" }, "● served"));
  if (name in serving.traffic) parts.push(` weight ${share(serving.traffic[name], total)}`);
  if (name === serving.previous) parts.push(el("span", { class: "muted" }, " previous"));
  return el("td", {}, parts.length ? parts : "–");
}

function describe(serving) {
  const names = Object.keys(serving.traffic);
  if (!names.length) return `Serving ${serving.default} to every request that names no version.`;
  const total = Object.values(serving.traffic).reduce((a, b) => a + b, 0);
  return `Traffic split: ${names.map((n) => `${n} ${share(serving.traffic[n], total)}`).join(", ")}; `
    + `default ${serving.default}.`;
}

async function loadModels() {
  let data;
  try { data = await api("GET", "/api/admin/models"); } catch (e) { showError($("models-status"), e); return; }
  const { versions, deployments, serving } = data;
  $("serving").textContent = describe(serving);
  $("versions").replaceChildren(...versions.map((v) => {
    const onlyServed = v.name === serving.default && !Object.keys(serving.traffic).length;
    const promote = el("button", { type: "button", class: "small primary promote", disabled: onlyServed,
      "aria-label": `Promote ${v.name}`, onclick: () => act(`Promoting ${v.name}`, "POST",
        `/api/admin/models/${encodeURIComponent(v.name)}/promote`,
        { skip_gates: $("mv-skip-gates").checked }) }, "Promote");
    return el("tr", { dataset: { version: v.name } },
      el("td", { class: "text", title: v.notes || null }, v.name), el("td", {}, v.kind || "–"),
      el("td", {}, v.parent || "–"), el("td", {}, el("span", { class: "pill" }, v.status)),
      el("td", { title: v.created_at }, when(v.created_at)), servingCell(v.name, serving), el("td", {}, promote));
  }));
  if (!versions.length) $("versions").append(el("tr", {}, el("td", { colspan: 7, class: "muted" },
    "No registered versions (chatrlhf models register-run RUN_DIR).")));
  $("deployments").replaceChildren(...deployments.slice(0, 20).map((d) => el("tr", {},
    el("td", {}, String(d.id)),
    el("td", {}, d.action, Object.keys(d.traffic).length
      ? el("span", { class: "muted" }, ` ${Object.entries(d.traffic).map(([n, w]) => `${n}=${w}`).join(" ")}`) : null),
    el("td", { class: "text" }, d.version), el("td", {}, d.actor || "–"),
    el("td", { title: d.created_at }, when(d.created_at)),
    el("td", { class: "text", title: d.report || null }, firstLine(d.report)))));
  if (!deployments.length) $("deployments").append(el("tr", {}, el("td", { colspan: 6, class: "muted" },
    "Nothing deployed yet: the server serves the model it was started with.")));
  const names = versions.map((v) => v.name);
  const others = names.filter((n) => n !== serving.default);
  fillSelect($("sp-a"), names, names.includes(serving.default) ? serving.default : names[0]);
  fillSelect($("sp-b"), names, others[0] ?? names[0]);
}

function fillSelect(select, names, fallback) {
  const keep = names.includes(select.value) ? select.value : fallback;
  select.replaceChildren(...names.map((n) => el("option", { value: n, selected: n === keep }, n)));
}

// One registry write: the report from the textarea, then the server's answer (or its error), then a
// fresh table. Promote and split may load a model first, so the buttons wait until it is done.
async function act(doing, method, path, body) {
  const buttons = document.querySelectorAll("#models button");
  buttons.forEach((b) => { b.disabled = true; });
  showOk($("models-status"), `${doing}…`);
  try {
    const res = await api(method, path, { ...body, report: $("mv-report").value });
    showOk($("models-status"), `Done (${res.deployment.action}, ${res.seconds} s). Now serving `
      + `${res.serving.default} by default.` + (Object.keys(res.serving.traffic).length ? ` ${describe(res.serving)}` : ""));
    $("mv-report").value = "";
    $("mv-skip-gates").checked = false;
  } catch (e) { showError($("models-status"), e); }
  buttons.forEach((b) => { b.disabled = false; });
  await loadModels();
}

function split(ev) {
  ev.preventDefault();
  const [a, b] = [$("sp-a").value, $("sp-b").value];
  const traffic = { [a]: Number($("sp-wa").value) };
  traffic[b] = (traffic[b] ?? 0) + Number($("sp-wb").value);  // the same version twice: the server says why
  act(`Splitting traffic between ${a} and ${b}`, "POST", "/api/admin/models/split", { traffic });
}

async function main() {
  await setup("/workspace/admin");
  $("new-user").onsubmit = newUser;
  $("new-tasks").onsubmit = createTasks;
  $("upload").onsubmit = upload;
  $("mv-split").onsubmit = split;
  $("mv-rollback").onclick = () => act("Rolling back", "POST", "/api/admin/models/rollback", {});
  await Promise.all([loadUsers(), loadTasks(), loadLists(), loadModels()]);
}

main();
