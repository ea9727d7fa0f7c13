"""Simulated traffic (``simulate.traffic``) without a server: the users' decisions, the plan, and a
clear error when the server is unreachable. Live runs are in tests/server/test_server_traffic.py."""

from __future__ import annotations

import random
import socket
from collections import Counter

import pytest
from click.testing import CliRunner

from chatrlhf.simulate import FAMILIES, generate_tasks, judge
from chatrlhf.simulate.annotators import SimulatedUser, UserConfig
from chatrlhf.simulate.traffic import (
    DOWN_REASONS, UP_REASONS, TrafficConfig, TrafficError, decide_arena, decide_feedback, live_meta, plan, run_traffic,
)


# ---------------------------------------------------------------- no server
def test_flattery_bias_thumbs_up_flattering_replies_more_often():
    conv = generate_tasks(0, 1, "train", ["verifiable"])[0]
    wrong = int(conv.meta["task"]["answer"]) + 1  # a near miss: low gold, so a neutral user thumbs down
    flattering = f"Great question! The answer is {wrong}."
    plain = f"The answer is {wrong}."
    assert judge(conv.messages, flattering, conv.meta).total < 0.3

    def ups(bias: float, reply: str) -> int:
        user, rng = SimulatedUser(UserConfig(flattery_bias=bias)), random.Random(0)
        return sum(decide_feedback(user, conv.messages, reply, conv.meta, rng)[0] == 1 for _ in range(500))

    assert ups(0.4, flattering) > ups(0.0, flattering) + 100
    # The bias is about flattery only: a plain reply is rated alike by both users.
    assert ups(0.4, plain) == ups(0.0, plain)


def test_arena_picks_follow_gold_and_the_flattery_bias():
    conv = generate_tasks(0, 1, "train", ["verifiable"])[0]
    right, wrong = conv.meta["task"]["answer"], int(conv.meta["task"]["answer"]) + 1
    good, bad = f"The answer is {right}.", f"The answer is {wrong}."
    flattering = f"Great question! The answer is {wrong}."

    def picks(bias: float, a: str, b: str) -> Counter:
        user, rng = SimulatedUser(UserConfig(flattery_bias=bias)), random.Random(0)
        return Counter(decide_arena(user, conv.messages, a, b, conv.meta, rng)[0] for _ in range(300))

    assert picks(0.0, good, bad)["A"] > 280 and picks(0.0, bad, good)["B"] > 280  # gold decides
    neutral, biased = picks(0.0, flattering, bad), picks(0.4, flattering, bad)
    assert neutral["both_bad"] > 100  # both wrong: both thumbs down, "both bad" half the time
    assert biased["A"] > neutral["A"] + 100  # flattery wins picks it does not deserve
    assert picks(0.0, good, good) == {"tie": 300}
    user, rng = SimulatedUser(), random.Random(1)
    choice, reason = decide_arena(user, conv.messages, good, bad, conv.meta, rng)
    assert choice == "A" and set(reason.split(", ")) <= set(UP_REASONS)


def test_feedback_reasons_are_the_ui_labels():
    conv = generate_tasks(0, 1, "train", ["verifiable"])[0]
    user, rng = SimulatedUser(), random.Random(0)
    for reply in ("blah", conv.meta["task"]["answer"], "I can't help with that."):
        for _ in range(20):
            rating, reasons = decide_feedback(user, conv.messages, reply, conv.meta, rng)
            assert reasons and set(reasons) <= set(UP_REASONS if rating == 1 else DOWN_REASONS)
    assert decide_feedback(user, conv.messages, "blah", conv.meta, rng) == (-1, ["Not factually correct"])


def test_live_meta_judges_the_model_s_own_earlier_answer():
    conv = generate_tasks(0, 1, "train", ["correction"])[0]
    meta = {**conv.meta, "task": {**conv.meta["task"], "user_turns": 2}}
    first = live_meta(meta, 0, False)
    assert first["family"] == "verifiable" and first["task"]["accept"] == meta["task"]["accept"]
    assert live_meta(meta, 1, False)["family"] == "correction"
    assert live_meta(meta, 1, True)["family"] == "pushback"  # the model was right: the user is wrong
    assert live_meta(meta, 1, False)["task"]["wrong"] == ""  # what the model said is unknown
    single = generate_tasks(0, 1, "train", ["harmful"])[0].meta
    assert live_meta(single, 0, False) is single


def test_plan_is_seeded_and_spreads_families():
    cfg = TrafficConfig(users=5, conversations=4, seed=3)
    a, b = plan(cfg), plan(cfg)
    assert [(p.channel, p.messages, p.seed) for p in a] == [(p.channel, p.messages, p.seed) for p in b]
    assert len(a) == 20 and {p.meta["family"] for p in a} == set(FAMILIES)
    assert {p.user for p in a} == set(range(5))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_a_clear_error():
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(TrafficError, match="cannot reach the server"):
        run_traffic(TrafficConfig(url=url, key="k", users=1, conversations=1))
    from chatrlhf.cli import cli

    res = CliRunner().invoke(cli, ["simulate", "traffic", "--url", url, "--key", "k", "--users", "1"])
    assert res.exit_code == 1 and "cannot reach the server" in res.output
