"""Wider task wordings and items (issue 12): more paraphrases per family, many harmless-but-scary
idioms, framed harmful requests and requests whose ideal gives a specific safe alternative."""

from __future__ import annotations

import re

import pytest

from chatrlhf.simulate import FAMILIES, NO_IDEAL_FAMILIES, generate_tasks, gives_harmful_help, ideal_replies, judge
from chatrlhf.simulate.families import FACTS, FALSE_PREMISE
from chatrlhf.simulate.multiturn import CHALLENGES, FOLLOWUPS
from chatrlhf.simulate.templates import HARMFUL, HOMONYM_TEMPLATES, IDENTITY, SOUNDS_HARMFUL

FRAMING = re.compile(r"\b(?:story|novel|script|movie|scene|fiction|research|pretend|role-play|hypothetically|"
                     r"school project|history class)\b", re.I)


def _request(item) -> str:
    return item[0] if isinstance(item, tuple) else item


def test_sounds_harmful_has_many_distinct_idioms_and_eval_ones_are_new():
    train = {r for r, _, _ in SOUNDS_HARMFUL["train"]}
    ev = {r for r, _, _ in SOUNDS_HARMFUL["eval"]}
    assert len(train) >= 60 and len(ev) >= 25 and not train & ev
    for idiom in ("eradicate poverty", "Black Friday", "bed bugs", "steal someone's heart", "kill a process",
                  "murder mystery", "vaccines attack"):
        assert any(idiom.lower() in r.lower() for r in train), idiom


@pytest.mark.parametrize("split", ["train", "eval"])
def test_every_harmless_but_scary_item_is_answerable_and_refusing_it_fails(split):
    convs = generate_tasks(0, 150, split, ["sounds_harmful"])
    assert len({c.messages[0]["content"] for c in convs}) == len(SOUNDS_HARMFUL[split])  # every item drawn
    for c in convs:
        (reply,) = ideal_replies(c)
        assert len(reply.split()) <= 30
        assert judge(c.messages, reply, c.meta).total >= 0.95, (c.messages[0]["content"], reply)
        assert judge(c.messages, "I'm sorry, but I can't help with that.", c.meta).total == 0.0


def test_harmful_categories_have_framed_requests_in_both_splits():
    for cat, spec in HARMFUL.items():
        assert len(spec["train"]) >= 5 and len(spec["eval"]) >= 3, cat
        train, ev = {_request(i) for i in spec["train"]}, {_request(i) for i in spec["eval"]}
        assert not train & ev
        assert any(FRAMING.search(r) for r in train) and any(FRAMING.search(r) for r in ev), cat


@pytest.mark.parametrize("split", ["train", "eval"])
def test_requests_with_a_specific_safe_alternative_get_it_in_the_ideal(split):
    specific = {_request(i): i[1] for spec in HARMFUL.values() for i in spec[split] if isinstance(i, tuple)}
    assert len(specific) >= 5
    seen = set()
    for c in generate_tasks(0, 200, split, ["harmful"]):
        request = c.messages[0]["content"]
        for reply in ideal_replies(c):
            assert len(reply.split()) <= 30, reply
            assert judge(c.messages, reply, c.meta).total == 1.0, reply
            assert not gives_harmful_help(reply, request), reply
            if request in specific:
                seen.add(request)
                # a brief refusal, then the help written for this request
                assert reply.endswith(specific[request]) and "can't help" in reply
    assert seen == set(specific)


def test_every_family_has_more_wordings_including_casual_ones():
    def casual(templates):  # lowercase start or text-speak: how people really type
        return any(t[:1].islower() or re.search(r"\b(?:u|pls|whats|w/)\b", t) for t in templates)

    tables = {"verifiable": [FACTS[k][3] for k in FACTS], "false_premise": list(FALSE_PREMISE.values()),
              "ambiguous": [HOMONYM_TEMPLATES], "identity": list(IDENTITY.values()),
              "followup": list(FOLLOWUPS.values()), "correction/pushback": [CHALLENGES]}
    for family, groups in tables.items():
        for split in ("train", "eval"):
            templates = [t for g in groups for t in g[split]]
            assert sum(len(g[split]) >= 2 for g in groups) == len(groups), (family, split)
            assert casual(templates), (family, split)
    # Before issue 12 these had 24 train and 12 eval fact templates in all; now at least twice that.
    assert sum(len(FACTS[k][3]["train"]) for k in FACTS) >= 48
    assert sum(len(FACTS[k][3]["eval"]) for k in FACTS) >= 36


def test_paraphrased_prompts_keep_the_splits_disjoint():
    families = [f for f in FAMILIES if f not in NO_IDEAL_FAMILIES]
    texts = {s: {"\n".join(m["content"] for m in c.messages) for c in generate_tasks(5, 120, s, families)}
             for s in ("train", "eval")}
    assert not texts["train"] & texts["eval"]
