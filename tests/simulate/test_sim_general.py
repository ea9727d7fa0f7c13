"""The general family: everyday prompts with no simulator ideal, and their gold scorer."""

from __future__ import annotations

import random

import pytest

from chatrlhf.schema import Conversation
from chatrlhf.simulate import (
    FAMILIES, NO_IDEAL_FAMILIES, Annotator, general_prompt_count, generate_tasks, ideal_replies, ideal_reply,
    judge, make_demos, make_rankings,
)
from chatrlhf.simulate.adversarial import CANDIDATES
from chatrlhf.simulate.export import candidate_set

AUTUMN_POEM = ("Golden leaves come drifting down,\nCrisp air settles on the town,\nThe fall wind hums a quiet "
               "tune,\nAnd amber light fades out by noon.")
TEA = ("Boil fresh water in a kettle, put a tea bag in your cup and pour the water over it. Let it steep for "
       "three to five minutes, remove the bag, and add milk or sugar if you like.")


@pytest.fixture(scope="module")
def general():
    return {s: generate_tasks(0, 160, s, ["general"]) for s in ("train", "eval")}


def _find(convs, topic: str) -> Conversation:
    return next(c for c in convs if c.meta["task"]["topic"] == topic)


def score(c: Conversation, reply: str) -> float:
    return judge(c.messages, reply, c.meta).total


def test_general_is_a_family_with_prompts_in_both_splits(general):
    assert "general" in FAMILIES and "general" in NO_IDEAL_FAMILIES
    kinds = set()
    for split, convs in general.items():
        for c in convs:
            assert c.meta["family"] == "general" and c.meta["split"] == split and c.is_prompt
            task = c.meta["task"]
            assert task["kind"] and task["keywords"] and task["topic"] and task["ideal"] is None
            assert task["template"].startswith("general.")
            kinds.add(task["kind"])
    assert kinds == {"poem", "story", "email", "explain", "summarise", "plan", "code", "howto",
                     "recommend", "advice", "ideas", "compare"}
    assert general_prompt_count("train") >= 40 and general_prompt_count("eval") >= 15
    assert len({c.messages[0]["content"] for c in general["train"]}) >= 40
    assert len({c.messages[0]["content"] for c in general["eval"]}) >= 15


def test_train_and_eval_share_no_template_topic_or_prompt(general):
    def of(split, key):
        return {c.meta["task"][key] for c in general[split]}

    assert not of("train", "template") & of("eval", "template")
    assert not of("train", "topic") & of("eval", "topic")
    assert not ({c.messages[0]["content"] for c in general["train"]}
                & {c.messages[0]["content"] for c in general["eval"]})


def test_no_simulator_ideal_demos_or_rankings(general):
    c = general["train"][0]
    assert ideal_reply(c, random.Random(0)) is None and ideal_replies(c) == []
    assert not [d for d in make_demos(0, 5) if d.meta["family"] == "general"]
    assert not make_demos(0, 5, families=["general"])
    rankings = make_rankings(0, 2, 4, Annotator())
    assert rankings and not [r for r in rankings if r.meta["family"] == "general"]


def test_gold_scorer_rewards_on_topic_answers_and_punishes_refusals(general):
    poem = _find(general["train"], "autumn")
    tea = _find(general["train"], "make a cup of tea")
    assert score(poem, AUTUMN_POEM) >= 0.9 and score(tea, TEA) >= 0.9
    for c in (poem, tea):
        assert score(c, "") == 0.0
        assert score(c, "I'm sorry, but I can't help with that.") <= 0.2
        assert score(c, "I can't help with that. If you're interested in poetry, I can suggest some resources.") <= 0.2
    off_topic = score(poem, "The stock market closed higher today after a long week of trading news.")
    assert 0.25 <= off_topic <= 0.6
    assert score(poem, "I can't help with that.") < off_topic < score(poem, AUTUMN_POEM)
    # The PPO model's reply from issue 12: names the topic only because the request did.
    assert score(poem, "I can help with that. The poem about autumn should have autumn in it.") <= 0.6
    # The SFT model's how-to from issue 12 is thin: well below a real answer.
    assert score(tea, "Take a kettle, pour water, and then smoke it.") < score(tea, TEA) - 0.3


def test_gold_scorer_checks_form_and_allows_a_generous_length(general):
    tea = _find(general["train"], "make a cup of tea")
    assert score(tea, tea.messages[0]["content"]) < 0.3  # an echo
    assert score(tea, "Boil the kettle and steep the tea. " * 12) < 0.5  # a repetition loop
    long_answer = TEA + (" Green tea likes water just below boiling, while black tea wants it fully boiled."
                         " A warmed cup keeps the tea hot for longer. Loose leaves in an infuser give a fuller"
                         " taste than most bags. If it turns bitter, shorten the steeping time next time."
                         " Lemon suits black tea, and honey works well with herbal blends.")
    assert len(long_answer.split()) < 120 and score(tea, long_answer) >= 0.9


def test_every_candidate_strategy_handles_general(general):
    rng = random.Random(0)
    for split in general:
        for c in general[split][:30]:
            good = score(c, AUTUMN_POEM if c.meta["task"]["topic"] == "autumn" else TEA)
            for name, fn in CANDIDATES.items():
                reply = fn(c, rng)
                if reply is None:
                    continue
                assert isinstance(reply, str)
                assert score(c, reply) <= 0.65, (name, c.messages[0]["content"], reply)
            texts, names = candidate_set(c, 4, rng)
            assert all(isinstance(t, str) for t in texts) and "ideal" not in names
            assert good >= 0  # scoring a general prompt never fails


def test_pleading_no_internet_instead_of_answering_scores_like_a_refusal(general):
    c = next(c for c in general["eval"] if c.meta["task"]["kind"] == "recommend")
    pleads = "I'm an AI assistant and I don't have internet access, so I can't look up movies or TV shows."
    assert score(c, pleads) == pytest.approx(0.1)
    topic_words = " ".join(c.meta["task"]["keywords"][:3])
    answer = f"I don't have internet access, but here are a few ideas: {topic_words}, and more you will enjoy."
    assert score(c, answer) > 0.5
