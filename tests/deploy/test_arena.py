"""The arena without a server: the assignment draw by share, picks in the store (ownership, one per
turn, bounded input), picks exported as rankings and read by the loop's ``collect()`` past its
watermark, and the win-rate / Wilson / Bradley-Terry statistics against hand-computed values."""

import math
from types import SimpleNamespace as NS

import pytest

from chatrlhf.deploy import feedback
from chatrlhf.deploy.arena import arena_stats, bradley_terry, games, wilson
from chatrlhf.server.arena import ArenaConfig, arena_sides, arena_versions, is_arena_turn
from chatrlhf.store import Conflict, NotFound
from chatrlhf.store.arena_tables import add_pick, list_picks


# ---- assignment ----

@pytest.mark.parametrize("share", [0.0, 0.1, 0.5, 1.0])
def test_arena_turns_follow_the_share_and_are_stable(share):
    draws = [is_arena_turn(share, u, c, t) for u in range(10) for c in range(20) for t in range(10)]
    assert abs(sum(draws) / len(draws) - share) < 0.03
    assert draws == [is_arena_turn(share, u, c, t) for u in range(10) for c in range(20) for t in range(10)]
    if share == 0.0:
        assert not any(draws)
    if share == 1.0:
        assert all(draws)


def test_which_versions_and_which_side():
    split = {"v1": 0.7, "v2": 0.2, "v3": 0.1}
    assert arena_versions(None, split) is None
    assert arena_versions(ArenaConfig(share=0.0), split) is None  # off
    assert arena_versions(ArenaConfig(share=0.5), {}) is None  # one version served: no arena
    assert arena_versions(ArenaConfig(share=0.5), {"v1": 1.0, "v2": 0.0}) is None
    assert arena_versions(ArenaConfig(share=0.5), split) == ("v1", "v2")  # the two heaviest
    assert arena_versions(ArenaConfig(share=0.5, versions=("x", "y")), {}) == ("x", "y")
    sides = [arena_sides(("v1", "v2"), 1, c, 0) for c in range(400)]
    assert set(sides) == {("v1", "v2"), ("v2", "v1")}
    assert 150 < sides.count(("v1", "v2")) < 250  # each version is A about half the time


# ---- store ----

def _arena_turn(store, user, prompt="What is 2+2?", texts=("4", "5"), versions=("va", "vb"), conv=None):
    conv = conv or store.create_conversation(user.id, system_prompt="Be brief.").id
    u = store.add_message(conv, "user", prompt)
    ids = [store.add_message(conv, "assistant", t, parent_id=u.id, model_version=v,
                             meta={"arena": {"turn": u.id, "side": s}, "status": "done"}).id
           for t, v, s in zip(texts, versions, "AB")]
    return conv, u.id, ids


def test_picks_are_stored_once_by_their_owner(store):
    alice, bob = store.create_user("alice"), store.create_user("bob")
    conv, turn, (a, b) = _arena_turn(store, alice)
    with pytest.raises(NotFound):
        add_pick(store, bob.id, turn, "A")  # not bob's turn
    with pytest.raises(NotFound):
        add_pick(store, alice.id, a, "A")  # an assistant message is no turn
    plain = store.add_message(conv, "user", "no arena here", parent_id=a)
    with pytest.raises(NotFound):
        add_pick(store, alice.id, plain.id, "A")
    with pytest.raises(ValueError):
        add_pick(store, alice.id, turn, "C")
    with pytest.raises(ValueError):
        add_pick(store, alice.id, turn, "A", "x" * 1001)
    p = add_pick(store, alice.id, turn, "B", "shorter")
    assert (p.choice, p.reason, p.a_version, p.b_version, p.chosen_id) == ("B", "shorter", "va", "vb", b)
    assert store.get_conversation(conv).current_id == b  # the chat goes on from the pick
    assert store.get_message(a).meta["arena"] == {"turn": turn, "side": "A", "choice": "B"}
    with pytest.raises(Conflict):
        add_pick(store, alice.id, turn, "A")
    assert [x.id for x in list_picks(store)] == [p.id]


def test_a_streaming_turn_cannot_be_picked(store):
    alice = store.create_user("alice")
    _, turn, (a, _) = _arena_turn(store, alice)
    store.update_message(a, meta={"status": "streaming"})
    with pytest.raises(ValueError, match="streaming"):
        add_pick(store, alice.id, turn, "A")


# ---- export and the loop ----

def test_picks_export_as_rankings_and_collect_reads_them_past_the_watermark(store):
    alice = store.create_user("alice")
    _, t1, (a1, b1) = _arena_turn(store, alice)
    _, t2, (a2, b2) = _arena_turn(store, alice, "Hi", ("hello", "hey"))
    _, t3, (a3, b3) = _arena_turn(store, alice, "Bad?", ("no", "nope"))
    _, t4, _ = _arena_turn(store, alice, "Unpicked", ("x", "y"))
    store.set_feedback(a1, alice.id, 1)
    store.set_feedback(b1, alice.id, -1)  # thumbs on both sides: no extra regeneration ranking
    picks = [add_pick(store, alice.id, t1, "A", "right"), add_pick(store, alice.id, t2, "tie"),
             add_pick(store, alice.id, t3, "both_bad")]
    fb = feedback.collect(store, feedback.Watermark())
    assert fb.counts["by_source"] == {"regenerate": 0, "same_prompt": 0, "workspace": 0, "arena": 3}
    assert fb.counts["arena_choices"] == {"A": 1, "B": 0, "tie": 1, "both_bad": 1}
    assert fb.counts["regenerations"] == 0 and fb.counts["unpaired_thumbs"] == 0
    r1, r2, r3 = fb.rankings
    assert r1.prefix == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}]
    assert (r1.completions, r1.ranks, r1.pairs(), r1.annotator) == (["4", "5"], [0, 1], [(0, 1)], "alice")
    assert r1.meta | {"conversation_id": 0} == {
        "source": "arena", "pick_id": picks[0].id, "choice": "A", "reason": "right", "conversation_id": 0,
        "message_ids": [a1, b1], "model_versions": ["va", "vb"], "loop_key": f"arena:{picks[0].id}"}
    assert (r2.ranks, r2.pairs(), r2.all_unacceptable) == ([0, 0], [], False)
    assert (r3.ranks, r3.all_unacceptable) == ([0, 0], True)
    assert [p.messages[-1]["content"] for p in fb.prompts] == ["What is 2+2?", "Hi", "Bad?"]
    # the watermark moves past them; a new pick is the only new ranking
    assert fb.watermark.arena_pick_id == picks[-1].id
    assert feedback.collect(store, fb.watermark).rankings == []
    p4 = add_pick(store, alice.id, t4, "B")
    again = feedback.collect(store, fb.watermark)
    assert [(r.meta["loop_key"], r.ranks) for r in again.rankings] == [(f"arena:{p4.id}", [1, 0])]
    # thumbs alone: the picks are left out, but the watermark still moves past them
    thumbs_only = feedback.collect(store, feedback.Watermark(), arena=False, workspace=False)
    assert thumbs_only.counts["by_source"]["arena"] == 0 and thumbs_only.rankings == []
    assert thumbs_only.watermark.arena_pick_id == p4.id
    # an old state.json without the field still loads
    assert feedback.Watermark(**{k: v for k, v in fb.watermark.as_dict().items() if k != "arena_pick_id"})


# ---- statistics ----

def _picks(*rows):
    return [NS(a_version=a, b_version=b, choice=c) for a, b, c in rows]


def test_wilson_matches_hand_computed_values():
    # p = 0.8, n = 10, z = 1.96: (0.8 + 0.19208) / 1.38416 -/+ 1.96 sqrt(0.016 + 0.0009604) / 1.38416
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.49016, abs=1e-4) and hi == pytest.approx(0.94332, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)
    lo, hi = wilson(0, 5)
    assert lo == 0.0 and hi == pytest.approx(0.43449, abs=1e-4)


def test_bradley_terry_matches_hand_computed_values():
    # Two versions, 3 wins to 1, no prior: p_a / p_b = 3, so ln p = +-ln(3)/2.
    played = games(_picks(("a", "b", "A"), ("a", "b", "A"), ("b", "a", "B"), ("b", "a", "A")))
    assert played == [("a", "b", 1.0), ("a", "b", 1.0), ("b", "a", 0.0), ("b", "a", 1.0)]
    bt = bradley_terry(played, prior=0.0)
    assert bt["a"] == pytest.approx(math.log(3) / 2) and bt["b"] == pytest.approx(-math.log(3) / 2)
    # prior 1 = one virtual tie: 3.5 to 1.5 points, ratio 7/3
    bt = bradley_terry(played, prior=1.0)
    assert bt["a"] - bt["b"] == pytest.approx(math.log(7 / 3))
    # three versions in a cycle, one win each: all equal
    cyc = bradley_terry(games(_picks(("a", "b", "A"), ("b", "c", "A"), ("c", "a", "A"))), prior=0.0)
    assert all(v == pytest.approx(0.0, abs=1e-8) for v in cyc.values())
    # a tie is half a win each way: 1 win + 1 tie against 1 tie = 1.5 to 0.5, ratio 3
    bt = bradley_terry(games(_picks(("a", "b", "A"), ("a", "b", "tie"))), prior=0.0)
    assert bt["a"] - bt["b"] == pytest.approx(math.log(3))


def test_arena_stats_per_version():
    picks = _picks(("a", "b", "A"), ("b", "a", "B"), ("a", "b", "A"), ("b", "a", "A"), ("a", "b", "tie"),
                   ("a", "b", "both_bad"), ("a", "a", "A"))  # the last: same version both sides, skipped
    s = arena_stats(picks, prior=0.0)
    assert (s["picks"], s["games"]) == (7, 6)
    assert s["choices"] == {"A": 4, "B": 1, "tie": 1, "both_bad": 1}
    a, b = s["versions"]
    assert a["version"] == "a" and b["version"] == "b"
    assert {k: a[k] for k in ("games", "wins", "losses", "ties", "both_bad")} == \
        {"games": 6, "wins": 3, "losses": 1, "ties": 2, "both_bad": 1}
    assert a["win_rate"] == pytest.approx(4 / 6) and b["win_rate"] == pytest.approx(2 / 6)
    assert a["ci"] == pytest.approx(list(wilson(4, 6)))
    assert a["bt"] - b["bt"] == pytest.approx(math.log(2))  # 4 points to 2
    assert a["elo"] - b["elo"] == pytest.approx(400 * math.log10(2))
    assert arena_stats([])["versions"] == []
