// Feedback and report panels under an assistant reply (thumbs reasons, reports).

import { api } from "./api.js";
import { el } from "./dom.js";

const UP_REASONS = ["Correct", "Helpful", "Clear and concise", "Followed instructions"];
const DOWN_REASONS = ["Not factually correct", "Didn't follow instructions", "Harmful or unsafe",
  "Refused without reason", "Too long", "Too short", "Off topic", "Other"];
const REPORT_KINDS = {
  harmful: "Harmful or unsafe",
  untrue: "Untrue or made up",
  moderation_false_negative: "Should have been blocked",
  moderation_false_positive: "Wrongly blocked by moderation",
};

function chipGroup(options, chosen) {
  const chips = el("div", { class: "chips" });
  for (const label of options) {
    const chip = el("button", { type: "button", class: "chip" + (chosen.has(label) ? " selected" : ""), text: label });
    chip.addEventListener("click", () => {
      if (chosen.has(label)) chosen.delete(label); else chosen.add(label);
      chip.classList.toggle("selected");
    });
    chips.append(chip);
  }
  return chips;
}

// The reasons panel under a rated reply; `done(feedback)` after saving, `close()` to dismiss.
export function feedbackPanel(m, rating, { done, close, fail }) {
  const previous = m.feedback?.rating === rating ? m.feedback : null;
  const chosen = new Set(previous?.reasons ?? []);
  const comment = el("textarea", { class: "feedback-comment", rows: 2, placeholder: "Tell us more (optional)" });
  comment.value = previous?.comment ?? "";
  const submit = async () => {
    try {
      const fb = await api("POST", `/api/messages/${m.id}/feedback`,
        { rating, reasons: [...chosen], comment: comment.value });
      done(fb.feedback);
    } catch (err) { fail(err); }
  };
  return el("div", { class: "feedback-panel" },
    el("div", { class: "panel-title", text: rating > 0 ? "What was good?" : "What was wrong?" }),
    chipGroup(rating > 0 ? UP_REASONS : DOWN_REASONS, chosen),
    comment,
    el("div", { class: "row" },
      el("button", { type: "button", class: "primary feedback-submit", text: "Submit", onclick: submit }),
      el("button", { type: "button", class: "ghost feedback-cancel", text: "Close",
        onclick: close })));
}

// The report panel: a reply can be harmful, untrue or should have been blocked; a moderation
// block can only be reported as wrong. `done(kind)` after sending.
export function reportPanel(m, blocked, { done, close, fail }) {
  const kinds = Object.keys(REPORT_KINDS).filter((k) =>
    blocked ? k === "moderation_false_positive" : k !== "moderation_false_positive");
  let kind = kinds[0];
  const chips = el("div", { class: "chips" });
  for (const k of kinds) {
    const chip = el("button", { type: "button", class: "chip report-kind" + (k === kind ? " selected" : ""),
      "data-kind": k, text: REPORT_KINDS[k] });
    chip.addEventListener("click", () => {
      kind = k;
      for (const c of chips.children) c.classList.toggle("selected", c === chip);
    });
    chips.append(chip);
  }
  const comment = el("textarea", { class: "report-comment", rows: 2, placeholder: "What happened? (optional)" });
  const submit = async () => {
    try {
      await api("POST", `/api/messages/${m.id}/report`, { kind, comment: comment.value });
      done(kind);
    } catch (err) { fail(err); }
  };
  return el("div", { class: "report-panel" },
    el("div", { class: "panel-title", text: "Report this reply" }), chips, comment,
    el("div", { class: "row" },
      el("button", { type: "button", class: "primary report-submit", text: "Send report", onclick: submit }),
      el("button", { type: "button", class: "ghost report-cancel", text: "Cancel",
        onclick: close })));
}
