// Admin page: trainers and roles, agreement, ranking-task creation and review, prompt-list uploads.
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

async function main() {
  await setup("/workspace/admin");
  $("new-user").onsubmit = newUser;
  $("new-tasks").onsubmit = createTasks;
  $("upload").onsubmit = upload;
  await Promise.all([loadUsers(), loadTasks(), loadLists()]);
}

main();
