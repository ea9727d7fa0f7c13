// The arena view: two replies to one user turn side by side, labelled A and B (the versions stay
// hidden until the pick), with the pick buttons (A, B, tie, both bad) and an optional reason.
// Talks to POST /api/arena/{turn}/pick (server/arena.py).
//
// Safety as in app.js: text reaches the page through textContent, or through renderMarkdown
// (which escapes before formatting).

import { api } from "./api.js";
import { el } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

export const CHOICES = [
  ["A", "A is better"],
  ["B", "B is better"],
  ["tie", "It's a tie"],
  ["both_bad", "Both are bad"],
];
const CHOICE_WORDS = { A: "A", B: "B", tie: "a tie", both_bad: "both bad" };

// {A, B} among `kids` (messages) when they are the two arena replies to user message `turnId`.
export function arenaSides(kids, turnId) {
  const sides = {};
  for (const m of kids) {
    if (m?.arena?.turn === turnId && (m.arena.side === "A" || m.arena.side === "B")) sides[m.arena.side] ??= m;
  }
  return sides.A && sides.B ? sides : null;
}

export const isPending = (sides) => Boolean(sides) && !("choice" in sides.A.arena);

// The note on a reply the chat went on from after a pick.
export function arenaNote(m) {
  if (!m.arena?.choice) return null;
  const version = m.model_version ? ` (${m.model_version})` : "";
  return el("div", { class: "msg-note arena-note",
    text: `Side by side: you picked ${CHOICE_WORDS[m.arena.choice] ?? m.arena.choice}; this reply was ${m.arena.side}${version}.` });
}

// The two columns and the pick bar. hooks: streaming (bool), streamingIds (Set of ids still
// streaming), picked({chosen_id, versions, choice}), fail(err).
export function arenaView(turnId, sides, { streaming, streamingIds, picked, fail }) {
  const column = (side) => {
    const m = sides[side];
    const body = el("div", { class: "msg-body" });
    body.innerHTML = renderMarkdown(m.content); // escaped before formatting
    const live = streamingIds.has(m.id);
    const note = m.status === "error" ? el("div", { class: "msg-note blocked", text: "The reply failed." })
      : m.finish_reason === "content_filter" ? el("div", { class: "msg-note blocked", text: "This reply was withheld by moderation." })
      : m.status === "streaming" && !live ? el("div", { class: "msg-note", text: "Interrupted" }) : null;
    return el("div", { class: "msg assistant arena-reply" + (live ? " streaming" : ""), "data-id": m.id,
      "data-side": side, "data-role": "assistant" },
      el("div", { class: "msg-role", text: `Assistant ${side}` }), body, note);
  };
  const reason = el("input", { class: "arena-reason", maxlength: "1000", placeholder: "Why? (optional)",
    "aria-label": "Reason for your pick" });
  const pick = async (choice) => {
    for (const b of bar.querySelectorAll("button")) b.disabled = true;
    try {
      const res = await api("POST", `/api/arena/${turnId}/pick`, { choice, reason: reason.value.trim() });
      picked({ ...res, choice });
    } catch (err) {
      for (const b of bar.querySelectorAll("button")) b.disabled = false;
      fail(err);
    }
  };
  const bar = el("div", { class: "arena-pick" },
    el("div", { class: "panel-title", text: "Which reply is better?" }),
    el("div", { class: "row" }, ...CHOICES.map(([choice, label]) =>
      el("button", { type: "button", class: `arena-choice choice-${choice}`, "data-choice": choice,
        text: label, disabled: streaming, onclick: () => pick(choice) }))),
    reason);
  return el("div", { class: "arena", "data-turn": turnId },
    el("div", { class: "arena-columns" }, column("A"), column("B")), bar);
}
