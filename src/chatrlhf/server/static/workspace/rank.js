// Ranking page: order K replies (drag and drop, or keyboard), mark ties, flag problems, or mark the
// whole set unacceptable. Replies arrive in a shuffled order with no model names; the submitted
// ranks are indexed by that display position.
import { api, el, setup, showError, showOk } from "/static/workspace/ws.js";

const $ = (id) => document.getElementById(id);
const LETTERS = "ABCDEFGHI";
const FLAG_LABELS = { harmful: "Harmful", untruthful: "Untruthful", unhelpful: "Unhelpful", off_topic: "Off-topic" };
// order: display positions best first; tied[p]: p is equal to the item above it.
const state = { task: null, order: [], tied: {}, flags: {}, flagNames: Object.keys(FLAG_LABELS) };

export function ranksFromOrder(order, tied) {
  const ranks = new Array(order.length).fill(0);
  let level = -1;
  order.forEach((p, i) => { if (i === 0 || !tied[p]) level += 1; ranks[p] = level; });
  return ranks;
}

function move(pos, delta) {
  const i = state.order.indexOf(pos);
  const j = i + delta;
  if (j < 0 || j >= state.order.length) return;
  [state.order[i], state.order[j]] = [state.order[j], state.order[i]];
  render(pos);
}

function item(pos, i) {
  const text = state.task.completions[pos];
  const rank = ranksFromOrder(state.order, state.tied)[pos] + 1;
  const flagBoxes = state.flagNames.map((f) => el("label", {},
    el("input", { type: "checkbox", checked: (state.flags[pos] || []).includes(f), class: `flag-${f}`,
      onchange: (ev) => {
        const set = new Set(state.flags[pos] || []);
        ev.target.checked ? set.add(f) : set.delete(f);
        state.flags[pos] = [...set];
      } }), ` ${FLAG_LABELS[f] || f}`));
  const node = el("li", {
    class: `rank-item${i > 0 && state.tied[pos] ? " tied" : ""}`, tabindex: 0, draggable: "true",
    dataset: { pos: String(pos) }, "aria-label": `Reply ${LETTERS[pos]}, rank ${rank}`,
    onkeydown: (ev) => {
      if (ev.target !== node) return; // typing in a control inside the item
      if (ev.key === "ArrowUp" || ev.key === "k") { ev.preventDefault(); move(pos, -1); }
      else if (ev.key === "ArrowDown" || ev.key === "j") { ev.preventDefault(); move(pos, +1); }
      else if (ev.key === "t" || ev.key === "T") { ev.preventDefault(); if (i > 0) { state.tied[pos] = !state.tied[pos]; render(pos); } }
    },
    ondragstart: (ev) => { ev.dataTransfer.setData("text/plain", String(pos)); node.classList.add("dragging"); },
    ondragend: () => node.classList.remove("dragging"),
    ondragover: (ev) => { ev.preventDefault(); node.classList.add("drop-before"); },
    ondragleave: () => node.classList.remove("drop-before"),
    ondrop: (ev) => {
      ev.preventDefault();
      const from = Number(ev.dataTransfer.getData("text/plain"));
      if (Number.isNaN(from) || from === pos) return render();
      state.order.splice(state.order.indexOf(from), 1);
      state.order.splice(state.order.indexOf(pos), 0, from); // dropped above the target
      render(from);
    },
  },
  el("div", { class: "rank-badge" },
    el("span", { class: "num" }, String(rank)),
    el("span", { class: "handle", title: "Drag to reorder", "aria-hidden": "true" }, "⠿"),
    el("button", { type: "button", class: "small", "aria-label": `Move reply ${LETTERS[pos]} up`, onclick: () => move(pos, -1) }, "↑"),
    el("button", { type: "button", class: "small", "aria-label": `Move reply ${LETTERS[pos]} down`, onclick: () => move(pos, +1) }, "↓")),
  el("div", {},
    el("div", {}, el("span", { class: "letter" }, `Reply ${LETTERS[pos]}`),
      i > 0 ? el("label", {}, el("input", { type: "checkbox", class: "tie", checked: !!state.tied[pos],
        onchange: (ev) => { state.tied[pos] = ev.target.checked; render(pos); } }), " tie with the reply above") : null),
    el("div", { class: "text" }, text || "(empty reply)"),
    el("div", { class: "flags" }, flagBoxes)));
  return node;
}

function render(focusPos) {
  $("ranking").replaceChildren(...state.order.map(item));
  if (focusPos !== undefined) $("ranking").querySelector(`[data-pos="${focusPos}"]`)?.focus();
}

function showTask(task) {
  state.task = task;
  $("empty").hidden = !!task;
  $("task").hidden = !task;
  $("task-id").textContent = task ? `task #${task.id}` : "";
  if (!task) return;
  state.order = task.completions.map((_, p) => p);
  state.tied = {}; state.flags = {};
  $("all-unacceptable").checked = false;
  $("comment").value = "";
  $("prefix").replaceChildren(...task.prefix.map((m) =>
    el("div", { class: `msg ${m.role}` }, el("strong", {}, `${m.role}: `), el("span", { class: "text" }, m.content))));
  render();
}

async function loadNext() {
  const { task } = await api("GET", "/api/workspace/tasks/next");
  showTask(task);
}

async function submit() {
  showError($("rank-status"), null);
  try {
    const body = {
      ranks: ranksFromOrder(state.order, state.tied),
      flags: Object.fromEntries(Object.entries(state.flags).filter(([, v]) => v.length)),
      all_unacceptable: $("all-unacceptable").checked,
      comment: $("comment").value,
    };
    await api("POST", `/api/workspace/tasks/${state.task.id}/ranking`, body);
    showOk($("rank-status"), `Ranking for task #${state.task.id} saved.`);
    await loadNext();
  } catch (e) { showError($("rank-status"), e); }
}

async function skip() {
  try {
    await api("POST", `/api/workspace/tasks/${state.task.id}/skip`);
    showOk($("rank-status"), `Skipped task #${state.task.id}.`);
    await loadNext();
  } catch (e) { showError($("rank-status"), e); }
}

async function main() {
  const me = await setup("/workspace/rank");
  if (Array.isArray(me.flags)) state.flagNames = me.flags;
  $("submit-ranking").onclick = submit;
  $("skip-task").onclick = skip;
  await loadNext();
}

main();
