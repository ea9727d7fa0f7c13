"""Task families: shape of prompts, determinism, split disjointness, demonstrations."""

from __future__ import annotations

import random

import pytest

from chatrlhf.schema import Conversation
from chatrlhf.simulate import (
    FAMILIES, HARM_CATEGORIES, NO_IDEAL_FAMILIES, generate_tasks, ideal_replies, ideal_reply, instruction_records, make_demos,
)
from chatrlhf.simulate.adversarial import COMPLIANT_PLACEHOLDER

MULTI_TURN = {"followup", "correction", "pushback"}


@pytest.fixture(scope="module")
def tasks():
    return {s: generate_tasks(0, 60, s) for s in ("train", "eval")}


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_generates_prompts_with_answer_keys(family, tasks):
    for split in ("train", "eval"):
        convs = [c for c in tasks[split] if c.meta["family"] == family]
        assert len(convs) == 60
        for c in convs:
            assert isinstance(c, Conversation) and c.is_prompt
            assert c.meta["split"] == split
            task = c.meta["task"]
            assert task["template"].startswith(f"{family}.") and task["entities"] and task["kind"]
            assert len(c.messages) == (3 if family in MULTI_TURN else 1)
            if family in MULTI_TURN:
                assert [m["role"] for m in c.messages] == ["user", "assistant", "user"]


def test_deterministic_under_a_seed():
    a, b = generate_tasks(7, 5, "train"), generate_tasks(7, 5, "train")
    assert [(c.messages, c.meta) for c in a] == [(c.messages, c.meta) for c in b]
    assert [d.messages for d in make_demos(7, 5)] == [d.messages for d in make_demos(7, 5)]
    other = generate_tasks(8, 5, "train")
    assert [c.messages for c in a] != [c.messages for c in other]


def test_one_family_does_not_shift_another():
    alone = generate_tasks(3, 4, "train", ["pushback"])
    mixed = [c for c in generate_tasks(3, 4, "train") if c.meta["family"] == "pushback"]
    assert [c.messages for c in alone] == [c.messages for c in mixed]


def test_train_and_eval_are_disjoint_in_templates_and_entities(tasks):
    def collect(split, key):
        return {x for c in tasks[split] for x in ([c.meta["task"][key]] if key == "template" else c.meta["task"][key])}

    for key in ("template", "entities"):
        train, ev = collect("train", key), collect("eval", key)
        assert train and ev
        assert not train & ev, f"{key} shared between splits: {sorted(train & ev)[:5]}"
    # The prompt texts themselves never coincide either.
    texts = {s: {"\n".join(m["content"] for m in c.messages) for c in tasks[s]} for s in tasks}
    assert not texts["train"] & texts["eval"]


@pytest.mark.parametrize("family", ["verifiable", "false_premise", "followup", "correction", "pushback"])
def test_open_ended_families_give_distinct_prompts(family, tasks):
    texts = ["\n".join(m["content"] for m in c.messages) for c in tasks["train"] if c.meta["family"] == family]
    assert len(set(texts)) == len(texts)


def test_harm_categories_match_moderation_and_are_all_used(tasks):
    assert HARM_CATEGORIES == ("violence", "weapons", "illicit_drugs", "malware_hacking", "fraud",
                               "self_harm", "hate", "harassment", "sexual_minors")
    used = {c.meta["task"]["category"] for s in tasks for c in tasks[s] if c.meta["family"] == "harmful"}
    assert used == set(HARM_CATEGORIES)


def test_harm_categories_are_the_moderation_filters():
    moderation = pytest.importorskip("chatrlhf.moderation")
    assert HARM_CATEGORIES == tuple(moderation.CATEGORIES)


def test_bad_examples_are_placeholders():
    assert "[details omitted]" in COMPLIANT_PLACEHOLDER


@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in NO_IDEAL_FAMILIES])
def test_ideal_replies_are_short_and_have_several_phrasings(family):
    convs = generate_tasks(1, 20, "train", [family])
    rng = random.Random(0)
    phrasings = set()
    for c in convs:
        for r in ideal_replies(c):
            assert 1 <= len(r.split()) <= 30, r
        phrasings.add(ideal_reply(c, rng).split()[0])
    if family != "sounds_harmful":  # its replies are written per request
        assert len(phrasings) >= 2


def test_columbus_style_false_premise_answer_key():
    convs = generate_tasks(0, 60, "train", ["false_premise"])
    after_death = [c for c in convs if c.meta["task"]["kind"] == "after_death"]
    assert after_death
    for c in after_death:
        slots = c.meta["task"]["slots"]
        assert slots["year"] > slots["died"]
        assert str(slots["year"]) in c.messages[-1]["content"]
        assert c.meta["task"]["accept"] == [str(slots["died"])]


def test_correction_and_pushback_disagree_on_who_is_right():
    for c in generate_tasks(0, 20, "train", ["correction"]):
        assert c.meta["task"]["wrong"] in c.messages[1]["content"]
    for c in generate_tasks(0, 20, "train", ["pushback"]):
        assert c.meta["task"]["answer"] in c.messages[1]["content"]


def test_demos_with_a_deliberate_mistake_train_on_the_last_turn_only():
    for d in make_demos(0, 2):
        assert d.meta["loss_on"] == ("last_turn" if d.meta["family"] == "correction" else "all")


def test_demos_end_with_the_ideal_reply_and_instruction_rows():
    demos = make_demos(0, 3)
    with_ideal = len(FAMILIES) - len(NO_IDEAL_FAMILIES)
    assert len(demos) == 3 * with_ideal and not {d.meta["family"] for d in demos} & NO_IDEAL_FAMILIES
    assert all(d.messages[-1]["role"] == "assistant" and not d.is_prompt for d in demos)
    rows = instruction_records(demos)
    assert len(rows) == 3 * (with_ideal - len(MULTI_TURN))
    assert set(rows[0]) == {"instruction", "output", "family"}


def test_unknown_split_or_family_is_an_error():
    with pytest.raises(ValueError):
        generate_tasks(0, 1, "test")
    with pytest.raises(ValueError):
        generate_tasks(0, 1, "train", ["poetry"])


def test_counts_override_one_family_and_leave_the_others_alone():
    base = generate_tasks(3, 4, "train")
    more = generate_tasks(3, 4, "train", counts={"sounds_harmful": 9})
    fam = lambda cs, f: [c.messages for c in cs if c.meta["family"] == f]  # noqa: E731
    assert len(fam(more, "sounds_harmful")) == 9
    assert fam(more, "sounds_harmful")[:4] == fam(base, "sounds_harmful")  # the same stream, longer
    assert fam(more, "harmful") == fam(base, "harmful")
    demos = make_demos(3, 2, counts={"harmful": 0})
    assert not [d for d in demos if d.meta["family"] == "harmful"]
    assert len(demos) == 2 * (len(FAMILIES) - len(NO_IDEAL_FAMILIES) - 1)
    with pytest.raises(ValueError, match="no_such_family"):
        generate_tasks(3, 4, "train", counts={"no_such_family": 1})
