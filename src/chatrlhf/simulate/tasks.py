"""Public task API: prompts, ideal replies and demonstrations for every family.

Consumes the family builders (``families``, ``multiturn``); produces ``schema.Conversation`` records:
prompts (ending on a user turn) and demonstrations (ending on the ideal assistant reply). Everything
is a pure function of ``(seed, split, ...)``: each family draws from its own ``random.Random`` seeded
by a string, so adding a family never changes another family's tasks.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Iterable, Mapping

from chatrlhf.schema import Conversation
from chatrlhf.simulate.families import (
    FAMILIES, IDEALS, NO_IDEAL_FAMILIES, SPLITS, Built, build_ambiguous, build_false_premise, build_harmful,
    build_identity, build_sounds_harmful, build_verifiable,
)
from chatrlhf.simulate.general import build_general
from chatrlhf.simulate.multiturn import build_correction, build_followup, build_pushback

BUILDERS: dict[str, Callable[[random.Random, str], Built]] = {
    "verifiable": build_verifiable,
    "false_premise": build_false_premise,
    "harmful": build_harmful,
    "sounds_harmful": build_sounds_harmful,
    "ambiguous": build_ambiguous,
    "identity": build_identity,
    "followup": build_followup,
    "correction": build_correction,
    "pushback": build_pushback,
    "general": build_general,
}
assert tuple(BUILDERS) == FAMILIES

# Some families have few distinct prompts; past this many tries a duplicate is accepted.
_MAX_TRIES = 20


def generate_tasks(seed: int, n_per_family: int, split: str,
                   families: Iterable[str] | None = None,
                   counts: Mapping[str, int] | None = None) -> list[Conversation]:
    """``n_per_family`` prompts of every family (or of ``families``) for ``split``; ``counts``
    overrides the number for some families.

    Prompts are distinct where the family has enough distinct prompts; a small family
    (e.g. homonyms, or ``counts`` above a family's item list) repeats once it is exhausted.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    counts = dict(counts or {})
    unknown = sorted(set(counts) - set(BUILDERS))
    if unknown:
        raise ValueError(f"unknown families {unknown} in counts; known: {FAMILIES}")
    out = []
    for family in families or FAMILIES:
        if family not in BUILDERS:
            raise ValueError(f"unknown family {family!r}; known: {FAMILIES}")
        rng = random.Random(f"{seed}:{split}:{family}")
        seen: set[str] = set()
        for _ in range(counts.get(family, n_per_family)):
            for _try in range(_MAX_TRIES):
                messages, task = BUILDERS[family](rng, split)
                key = "\n".join(m["content"] for m in messages)
                if key not in seen:
                    break
            seen.add(key)
            out.append(Conversation(messages, {"family": family, "split": split, "task": task}))
    return out


def _fill(template: str, slots: dict[str, Any], rng: random.Random) -> str:
    # A list-valued slot (e.g. several safe alternatives) is one more axis of phrasing.
    values = {k: rng.choice(v) if isinstance(v, list) else v for k, v in slots.items()}
    return template.format(**values)


def ideal_reply(conv: Conversation, rng: random.Random) -> str | None:
    """One of several phrasings of the ideal reply to a generated prompt (None for a family without
    a simulator-written ideal, such as ``general``)."""
    task = conv.meta["task"]
    if task.get("ideal") is None:
        return None
    text = _fill(rng.choice(IDEALS[task["ideal"]]), task.get("slots", {}), rng)
    return text[:1].upper() + text[1:]


def ideal_replies(conv: Conversation) -> list[str]:
    """Every phrasing of the ideal reply (list-valued slots take their first value); [] where the
    family has no simulator-written ideal."""
    task = conv.meta["task"]
    if task.get("ideal") is None:
        return []
    slots = {k: v[0] if isinstance(v, list) else v for k, v in task.get("slots", {}).items()}
    return [t.format(**slots)[:1].upper() + t.format(**slots)[1:] for t in IDEALS[task["ideal"]]]


# Families whose earlier assistant turn is deliberately wrong: SFT must not learn to say it.
LAST_TURN_ONLY = frozenset({"correction"})


def make_demos(seed: int, n_per_family: int, split: str = "train",
               families: Iterable[str] | None = None,
               counts: Mapping[str, int] | None = None) -> list[Conversation]:
    """Demonstrations: generated prompts completed with an ideal assistant reply.

    ``meta["loss_on"]`` is ``"last_turn"`` where only the final assistant reply is a demonstration
    (the earlier assistant answer of a ``correction`` dialog is the mistake being corrected) and
    ``"all"`` where every assistant turn is. Families without an ideal (``NO_IDEAL_FAMILIES``) give
    no demonstrations.
    """
    rng = random.Random(f"{seed}:demos:{split}")
    demos = []
    families = [f for f in (families or FAMILIES) if f not in NO_IDEAL_FAMILIES]
    if not families:
        return []  # an empty list would mean "every family" to generate_tasks
    for conv in generate_tasks(seed, n_per_family, split, families, counts):
        reply = ideal_reply(conv, rng)
        loss_on = "last_turn" if conv.meta["family"] in LAST_TURN_ONLY else "all"
        demos.append(Conversation([*conv.messages, {"role": "assistant", "content": reply}],
                                  {**conv.meta, "source": "simulate", "loss_on": loss_on}))
    return demos


def instruction_records(demos: Iterable[Conversation]) -> list[dict[str, str]]:
    """Single-turn demonstrations as ``{"instruction", "output", "family"}`` rows.

    For SFT code that mixes dialog demonstrations with instruction-tuning data in that shape.
    """
    rows = []
    for d in demos:
        if len(d.messages) == 2 and d.messages[0]["role"] == "user":
            rows.append({"instruction": d.messages[0]["content"], "output": d.messages[1]["content"],
                         "family": d.meta.get("family", "")})
    return rows
