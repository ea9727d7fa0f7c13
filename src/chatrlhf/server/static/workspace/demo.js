// Demonstration writer: a multi-turn dialog the trainer writes as both user and assistant.
// Drafts autosave (debounced PUT); "Suggest" samples K replies from the served model for an
// assistant turn; "Use" copies one into the turn for editing and records that it was used.
import { api, el, debounce, setup, showError, showOk } from "/static/workspace/ws.js";

const state = { id: null, turns: [], suggestions: {}, used: {} };
const $ = (id) => document.getElementById(id);

function messages() {
  return state.turns.map((t) => ({ role: t.role, content: t.content }));
}

function meta() {
  // Which turns started from a model suggestion (index -> suggestion number): SFT provenance.
  return { suggestions_used: state.used };
}

// One save at a time: a second POST while the first is in flight would create two drafts.
let saving = Promise.resolve();
function save() {
  saving = saving.then(saveNow);
  return saving;
}

async function saveNow() {
  try {
    const body = { messages: messages(), meta: meta() };
    const d = state.id === null ? await api("POST", "/api/workspace/demos", body)
                                : await api("PUT", `/api/workspace/demos/${state.id}`, body);
    state.id = d.id;
    $("save-status").textContent = `Draft #${d.id} saved`;
    loadDrafts();
  } catch (e) {
    $("save-status").textContent = "";
    showError($("demo-error"), e);
  }
}
const autosave = debounce(save, 600);

function nextRole() {
  const last = state.turns[state.turns.length - 1];
  return !last || last.role === "assistant" ? "user" : "assistant";
}

function addTurn(role) {
  state.turns.push({ role, content: "" });
  render();
  const areas = document.querySelectorAll("#turns textarea");
  areas[areas.length - 1]?.focus();
  autosave();
}

async function suggest(index, k) {
  const status = $(`suggest-status-${index}`);
  status.textContent = "Asking the model…";
  try {
    const prior = messages().slice(0, index);
    const res = await api("POST", "/api/workspace/suggest", { messages: prior, k });
    state.suggestions[index] = res.suggestions;
    render();
  } catch (e) {
    status.textContent = "";
    showError($("demo-error"), e);
  }
}

function useSuggestion(index, n) {
  state.turns[index].content = state.suggestions[index][n];
  state.used[index] = n;
  delete state.suggestions[index];
  render();
  document.querySelectorAll("#turns textarea")[index]?.focus();
  autosave();
}

function turnCard(t, i) {
  const area = el("textarea", {
    rows: 4, value: t.content, "aria-label": `Turn ${i + 1} (${t.role})`,
    placeholder: t.role === "user" ? "What the user says…" : "The assistant's ideal reply…",
    oninput: (ev) => { t.content = ev.target.value; $("save-status").textContent = "Saving…"; autosave(); },
  });
  const head = el("div", { class: "turn-head" },
    el("span", { class: "role-tag" }, `${i + 1}. ${t.role}`),
    el("span", { class: "row" },
      el("button", { type: "button", class: "small", title: "Switch between user and assistant",
        onclick: () => { t.role = t.role === "user" ? "assistant" : "user"; render(); autosave(); } }, "⇄ Switch role"),
      el("button", { type: "button", class: "small danger", "aria-label": `Delete turn ${i + 1}`,
        onclick: () => { state.turns.splice(i, 1); state.suggestions = {}; render(); autosave(); } }, "Delete")));
  const card = el("div", { class: `card turn ${t.role}`, dataset: { index: String(i) } }, head, area);
  if (t.role === "assistant" && i > 0 && state.turns[i - 1].role === "user") {
    const kSel = el("select", { "aria-label": "Number of suggestions" },
      [1, 2, 3, 4, 5, 6, 7, 8, 9].map((k) => el("option", { value: String(k), selected: k === 4 }, String(k))));
    card.append(el("div", { class: "row" },
      el("button", { type: "button", class: "small suggest", onclick: () => suggest(i, Number(kSel.value)) },
        "Suggest replies"), kSel, el("span", { class: "muted" }, "suggestions from the model"),
      el("span", { class: "muted", id: `suggest-status-${i}` })));
    const sugg = state.suggestions[i];
    if (sugg) {
      card.append(el("div", { class: "suggestions", "aria-label": "Suggestions" }, sugg.map((s, n) =>
        el("div", { class: "suggestion" },
          el("div", { class: "text" }, s || "(empty)"),
          el("div", { class: "row" },
            el("button", { type: "button", class: "small primary use-suggestion",
              onclick: () => useSuggestion(i, n) }, `Use suggestion ${n + 1}`))))));
    }
  }
  return card;
}

function render() {
  $("turns").replaceChildren(...state.turns.map(turnCard));
  if (!state.turns.length) $("turns").append(el("p", { class: "muted" }, "Start with a user turn."));
}

async function loadDrafts() {
  const { demos } = await api("GET", "/api/workspace/demos");
  const drafts = demos.filter((d) => d.status === "draft");
  $("drafts").replaceChildren(...drafts.map((d) => {
    const first = d.messages.find((m) => m.content)?.content || "(empty)";
    return el("li", {}, el("a", { href: `#${d.id}`, onclick: (ev) => { ev.preventDefault(); open(d); } },
      `#${d.id}: ${first.slice(0, 80)}`), d.id === state.id ? " (open)" : "");
  }));
  if (!drafts.length) $("drafts").append(el("li", { class: "muted" }, "No drafts."));
  $("submitted-count").textContent = `${demos.length - drafts.length} demonstration(s) submitted.`;
}

function open(d) {
  state.id = d.id;
  state.turns = d.messages.map((m) => ({ role: m.role, content: m.content }));
  state.used = d.meta?.suggestions_used || {};
  state.suggestions = {};
  $("save-status").textContent = `Draft #${d.id}`;
  render();
  loadDrafts();
}

function fresh() {
  state.id = null; state.turns = [{ role: "user", content: "" }]; state.used = {}; state.suggestions = {};
  $("save-status").textContent = "";
  render();
}

async function submit() {
  showError($("demo-error"), null);
  autosave.flush();
  await saving;
  try {
    const body = { messages: messages(), meta: meta() };
    if (state.id === null) state.id = (await api("POST", "/api/workspace/demos", body)).id;
    const d = await api("POST", `/api/workspace/demos/${state.id}/submit`, body);
    showOk($("demo-error"), `Demonstration #${d.id} submitted. Thank you!`);
    fresh();
    loadDrafts();
  } catch (e) {
    showError($("demo-error"), e);
  }
}

async function discard() {
  autosave.flush();
  await saving;
  if (state.id !== null) {
    try { await api("DELETE", `/api/workspace/demos/${state.id}`); } catch (e) { showError($("demo-error"), e); }
  }
  fresh();
  loadDrafts();
}

async function main() {
  await setup("/workspace/demo");
  $("add-user").onclick = () => addTurn("user");
  $("add-assistant").onclick = () => addTurn("assistant");
  $("submit-demo").onclick = submit;
  $("new-demo").onclick = async () => { autosave.flush(); await saving; fresh(); loadDrafts(); };
  $("discard-demo").onclick = discard;
  state.turns = [{ role: "user", content: "" }];
  render();
  await loadDrafts();
}

main();
