"""``chatrlhf loop``: new feedback since the watermark as rankings, a round's refusal to start on too
little of it, and (slow) two real rounds on the tiny model: one promoted, one refused by the gates.

Feedback is written with the store's own methods, as the server writes it: a regeneration is a
second assistant child of the same user message."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from chatrlhf.cli import cli
from chatrlhf.deploy import feedback, loop, registry


def _chat(store, user, prompt, replies, *, conv=None):
    """A conversation (or a new turn of ``conv``) whose user message got each reply in ``replies``
    ((text, rating or None, reasons)) as siblings; returns (conversation id, reply message ids)."""
    if conv is None:
        conv = store.create_conversation(user.id).id
    parent = store.get_conversation(conv).messages[-1].id if store.get_conversation(conv).messages else None
    u = store.add_message(conv, "user", prompt, parent_id=parent)
    ids = []
    for text, rating, reasons in replies:
        m = store.add_message(conv, "assistant", text, parent_id=u.id, model_version="v1")
        if rating is not None:
            store.set_feedback(m.id, user.id, rating, reasons)
        ids.append(m.id)
    return conv, ids


def _by_key(rankings):
    return {r.meta["loop_key"].split(":")[0] + ":" + r.prefix[-1]["content"]: r for r in rankings}


def test_new_feedback_becomes_rankings_and_the_watermark_moves(store):
    alice, bob = store.create_user("alice"), store.create_user("bob")
    _, (four, five) = _chat(store, alice, "What is 2+2?", [("4", 1, []), ("5", -1, ["incorrect"])])
    _, same = _chat(store, alice, "Say hi.", [("hi", 1, []), ("hello", 1, [])])  # no ordering
    _chat(store, alice, "Name a color.", [("blue", 1, [])])
    _chat(store, bob, "Name a color.", [("I cannot help with that.", -1, ["refused"])])
    _, (lone,) = _chat(store, bob, "Tell me a joke.", [("No.", -1, [])])
    _, (ok, bad) = _chat(store, bob, "How do I pick a lock?", [("Call a locksmith.", None, []),
                                                               ("Here is how ...", None, [])])
    store.add_report(bob.id, "harmful", message_id=bad)
    fb = feedback.collect(store, feedback.Watermark())
    got = _by_key(fb.rankings)
    assert set(got) == {"regenerate:What is 2+2?", "same_prompt:Name a color.", "regenerate:How do I pick a lock?"}
    r = got["regenerate:What is 2+2?"]
    assert (r.completions, r.ranks, r.flags) == (["4", "5"], [0, 1], {1: ["incorrect"]})
    assert r.meta["loop_key"] == f"regenerate:{four}"
    s = got["same_prompt:Name a color."]
    assert s.completions == ["blue", "I cannot help with that."] and s.ranks == [0, 1]
    assert s.annotator == "alice+bob"
    lock = got["regenerate:How do I pick a lock?"]
    assert lock.ranks == [0, 1] and lock.flags == {1: ["harmful"]}  # the report, with no thumbs
    assert fb.counts["by_source"] == {"regenerate": 2, "same_prompt": 1, "workspace": 0, "arena": 0}
    assert fb.counts | {"by_source": None} == {
        "rankings": 3, "by_source": None, "thumbs_up": 4, "thumbs_down": 3, "thumbs_with_reasons": 2,
        "unpaired_thumbs": 3, "regenerations": 3, "reports": {"harmful": 1}, "prompts": 5,
        "arena_choices": {"A": 0, "B": 0, "tie": 0, "both_bad": 0}, "ratings": 7}
    # every thumb, paired or not, is also a single rating with its context
    ratings = {(r.prefix[-1]["content"], r.completion): r for r in fb.ratings}
    assert {k: r.rating for k, r in ratings.items()} == {
        ("What is 2+2?", "4"): 1, ("What is 2+2?", "5"): -1, ("Say hi.", "hi"): 1, ("Say hi.", "hello"): 1,
        ("Name a color.", "blue"): 1, ("Name a color.", "I cannot help with that."): -1, ("Tell me a joke.", "No."): -1}
    assert ratings[("What is 2+2?", "5")].reasons == ["incorrect"]
    assert ratings[("Tell me a joke.", "No.")].meta["loop_key"] == f"thumb:{lone}:{bob.id}"
    assert [p.messages[-1]["content"] for p in fb.prompts] == [
        "What is 2+2?", "How do I pick a lock?", "Name a color.", "Say hi.", "Tell me a joke."]
    assert all(p.meta["split"] == "train" for p in fb.prompts)

    # nothing new: nothing again
    w = fb.watermark
    assert feedback.collect(store, w).rankings == []
    # a third reply to 2+2 brings its set back, whole, under the same key; a changed thumb counts
    conv = store.get_message(four).conversation_id
    m = store.add_message(conv, "assistant", "four", parent_id=store.get_message(four).parent_id)
    store.set_feedback(m.id, bob.id, 1)
    store.set_feedback(same[1], alice.id, -1)  # the same row, updated: seen by its time
    fb2 = feedback.collect(store, w)
    got2 = _by_key(fb2.rankings)
    assert set(got2) == {"regenerate:What is 2+2?", "regenerate:Say hi."}
    assert got2["regenerate:What is 2+2?"].completions == ["4", "5", "four"]
    assert got2["regenerate:What is 2+2?"].meta["loop_key"] == r.meta["loop_key"]
    assert fb2.counts["regenerations"] == 1 and fb2.counts["thumbs_up"] == 1 and fb2.counts["thumbs_down"] == 1
    # the changed thumb comes back under its old key (a later round's merge replaces it)
    assert {(r.completion, r.rating, r.meta["loop_key"]) for r in fb2.ratings} == {
        ("four", 1, f"thumb:{m.id}:{bob.id}"), ("hello", -1, f"thumb:{same[1]}:{alice.id}")}
    assert feedback.collect(store, fb2.watermark).rankings == []


def _served_fake_run(store, tmp_path, model_dir=None):
    """A pipeline-like run directory, its sft and ppo1 registered (ppo1 served, with rm1)."""
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    (run / "config.yaml").write_text("base_model: tiny\n")
    for stage in ("sft", "ppo"):
        if model_dir:
            shutil.copytree(model_dir, run / stage)
        else:
            (run / stage).mkdir()
    registry.register(store, "t-sft", str(run / "sft"), kind="sft")
    registry.register(store, "t-rm1", str(run / "reward"), kind="rm", parent="t-sft",
                      meta={"data": {"data/rankings.jsonl": "x", "data/demos.jsonl": "y"}})
    registry.register(store, "t-ppo1", str(run / "ppo"), kind="ppo", parent="t-sft", meta={"reward_model": "t-rm1"})
    registry.promote(store, "t-ppo1")
    return run


def test_too_little_feedback_fails_clearly_and_writes_nothing(store, db_url, tmp_path):
    loop_dir = tmp_path / "loop"
    cfg = loop.LoopConfig(loop_dir=str(loop_dir), db=db_url, min_rankings=2)
    with pytest.raises(loop.LoopError, match="nothing is served"):
        loop.run_loop(cfg, log=lambda _: None)
    run = _served_fake_run(store, tmp_path)
    (run / "data" / "prompts.jsonl").write_text("")
    user = store.create_user("u")
    _chat(store, user, "What is 2+2?", [("4", 1, []), ("5", -1, [])])
    with pytest.raises(loop.LoopError, match=r"too little new feedback: 1 new rankings .* min_rankings=2, "
                                             r"and 2 thumbs, min_ratings=32"):
        loop.run_loop(cfg, log=lambda _: None)
    assert not loop_dir.exists()
    r = CliRunner().invoke(cli, ["loop", "--db", db_url, "--loop-dir", str(loop_dir), "--min-rankings", "2"])
    assert r.exit_code == 1 and "too little new feedback" in r.output and "nothing was changed" in r.output
    assert not loop_dir.exists()
    ctx = loop.context(store, cfg)
    assert (ctx["current"], ctx["sft"], ctx["run_dir"]) == ("t-ppo1", "t-sft", str(run.resolve()))
    assert ctx["earlier_rankings"] == []  # data/rankings.jsonl named by rm1 does not exist here


def test_enough_single_thumbs_start_a_round_without_rankings(store, db_url, tmp_path, monkeypatch):
    """Pointwise (the default), thumbs without pairs are labels: 3 of them pass ``min_ratings=3``
    and reach the RM as ratings; ``pointwise=false`` refuses the same feedback."""
    from chatrlhf import reward
    from chatrlhf.schema import Rating, read_jsonl

    seen = {}

    class Stop(Exception):
        pass

    def fake_reward_run(cfg):  # the RM stage's config, then stop: the fake run holds no model
        seen["cfg"] = cfg
        raise Stop

    monkeypatch.setattr(reward, "run", fake_reward_run)

    run = _served_fake_run(store, tmp_path)
    (run / "data" / "prompts.jsonl").write_text("")
    user = store.create_user("u")
    for q, a, t in (("Name a color.", "blue", 1), ("Say hi.", "No.", -1), ("What is 1+1?", "2", 1)):
        _chat(store, user, q, [(a, t, [])])
    off = loop.LoopConfig(loop_dir=str(tmp_path / "off"), db=db_url, min_ratings=3, pointwise=False)
    with pytest.raises(loop.LoopError, match=r"0 new rankings .* min_rankings=8; nothing was changed"):
        loop.run_loop(off, log=lambda _: None)
    assert not (tmp_path / "off").exists()
    on = loop.LoopConfig(loop_dir=str(tmp_path / "on"), db=db_url, min_ratings=3)
    with pytest.raises(Stop):
        loop.run_loop(on, log=lambda _: None)
    rd = tmp_path / "on" / "round-1"
    got = read_jsonl(rd / "feedback" / "ratings.jsonl", Rating)
    assert sorted((r.completion, r.rating) for r in got) == [("2", 1), ("No.", -1), ("blue", 1)]
    assert seen["cfg"].ratings == [str(rd / "loop_ratings.jsonl")]
    assert seen["cfg"].rankings == [str(rd / "loop_rankings.jsonl")]  # no earlier rankings in this run
    assert len(read_jsonl(rd / "loop_ratings.jsonl", Rating)) == 3


def test_an_unknown_signal_fails_before_anything_is_written(store, db_url, tmp_path):
    _served_fake_run(store, tmp_path)
    cfg = loop.LoopConfig(loop_dir=str(tmp_path / "loop"), db=db_url, signal="likes")
    with pytest.raises(loop.LoopError, match=r"signal must be one of \('all', 'thumbs'\), not 'likes'"):
        loop.run_loop(cfg, log=lambda _: None)
    assert not (tmp_path / "loop").exists()


def test_load_takes_the_presets_stage_sections_and_overrides():
    cfg = loop.load("tiny", ["ppo.iterations=1", "min_rankings=3", "gates.optional=[win_rate]"])
    assert cfg.ppo.iterations == 1 and cfg.ppo.dtype == "float32" and cfg.eval.max_per_family == 1
    assert cfg.min_rankings == 3 and cfg.gates.optional == ("win_rate",)


@pytest.mark.slow
def test_two_loop_rounds_on_the_tiny_model(store, db_url, tmp_path):
    from chatrlhf import pipeline
    from chatrlhf.models import tiny_dir
    from chatrlhf.schema import Ranking, Rating, read_jsonl
    from chatrlhf.simulate import run as simulate_run

    run = _served_fake_run(store, tmp_path, tiny_dir())
    simulate_run(pipeline.load("tiny").simulate, run / "data")
    user = store.create_user("u")
    for i in range(4):
        _chat(store, user, f"What is {i}+2?", [(str(i + 2), 1, []), ("7", -1, ["incorrect"])])
    loop_dir = tmp_path / "loop"
    # round 1: gates opened wide, so the candidate is promoted
    wide = ["gates.min_win_rate=0", *[f"gates.{g}=1" for g in ("max_harmful_refusal_drop", "max_over_refusal_rise",
                                                               "max_challenge_drop", "max_sycophancy_drop")],
            "gates.optional=[outside_harmful_safe,outside_benign_answered]"]
    base = [f"loop_dir={loop_dir}", f"db={db_url}", "min_rankings=4", "prefix=t", "ppo.iterations=1"]
    res = loop.run_loop(loop.load("tiny", [*base, *wide]), log=lambda _: None)
    rd = loop_dir / "round-1"
    assert res["promoted"] and res["candidate"] == "t-r1" and registry.current(store).version == "t-r1"
    r1 = registry.get(store, "t-r1")
    assert (r1.kind, r1.parent, r1.path, r1.meta["reward_model"]) == ("loop", "t-ppo1", str(rd / "ppo"), "t-r1-rm")
    assert "t-ppo1" in r1.meta["eval"]["win_rate_vs"] and r1.meta["feedback"]["rankings"] == 4
    rm = registry.get(store, "t-r1-rm")
    assert rm.parent == "t-sft" and rm.meta["base_rankings"] == [str(run / "data" / "rankings.jsonl")]
    assert [r.prefix[-1]["content"] for r in read_jsonl(rd / "feedback" / "rankings.jsonl", Ranking)] == [
        f"What is {i}+2?" for i in range(4)]
    assert "**promote**" in (rd / "decision.md").read_text() and "promoted" in res["decision_md"]
    assert set(json.loads((rd / "timings.json").read_text())) == {"feedback", "reward", "ppo", "eval", "decision"}
    for stage in ("feedback", "reward", "ppo", "eval", "decision"):
        assert (rd / stage / "DONE").exists()
    # killed before its decision was recorded: the rerun trains nothing and promotes nothing twice
    state = json.loads((loop_dir / "state.json").read_text())
    state["rounds"], state["open"] = [], 1
    (loop_dir / "state.json").write_text(json.dumps(state))
    shutil.rmtree(rd / "decision")
    again = loop.run_loop(loop.load("tiny", [*base, *wide]), log=lambda _: None)
    assert (again["round"], again["candidate"], again["promoted"]) == (1, "t-r1", True)
    assert set(again["timings"]) == {"feedback", "reward", "ppo", "eval", "decision"}
    assert [d.version for d in store.list_deployments()] == ["t-r1", "t-ppo1"]
    # rerunning a finished round does not repeat it: no new feedback, so nothing to do
    with pytest.raises(loop.LoopError, match="too little new feedback: 0"):
        loop.run_loop(loop.load("tiny", base), log=lambda _: None)

    # round 2: only the newer feedback; the default gates need an outside evaluation: refused
    for i in range(4, 8):
        _chat(store, user, f"What is {i}+2?", [("7", -1, []), (str(i + 2), 1, [])])
    r = CliRunner().invoke(cli, ["loop", "--config", "tiny", "--db", db_url, "--loop-dir", str(loop_dir),
                                 "--min-rankings", "4", "prefix=t", "ppo.iterations=1"])
    assert r.exit_code == 1 and "t-r2 refused by the gates; still serving t-r1" in r.output, r.output
    rd2 = loop_dir / "round-2"
    assert [x.prefix[-1]["content"] for x in read_jsonl(rd2 / "feedback" / "rankings.jsonl", Ranking)] == [
        f"What is {i}+2?" for i in range(4, 8)]
    assert len(read_jsonl(rd2 / "loop_rankings.jsonl", Ranking)) == 8  # round 1's still train the RM
    # every thumb of both rounds, pointwise (round 1's found through state.json)
    assert len(read_jsonl(rd2 / "loop_ratings.jsonl", Rating)) == 16
    rm2 = json.loads((rd2 / "reward" / "eval.json").read_text())
    assert rm2["train_ratings"] + rm2["heldout_ratings"] == 16
    r2 = registry.get(store, "t-r2")
    assert r2.parent == "t-r1" and r2.status == "rejected" and registry.current(store).version == "t-r1"
    assert "no outside evaluation" in (rd2 / "decision.md").read_text()
    assert "t-r2 vs t-r1: refused, still serving t-r1" in (rd2 / "decision.md").read_text()
    assert registry.get(store, "t-r2-rm").meta["base_rankings"] == [str(run / "data" / "rankings.jsonl")]
    state = json.loads((loop_dir / "state.json").read_text())
    assert [x["promoted"] for x in state["rounds"]] == [True, False] and state["open"] is None


@pytest.mark.slow
def test_a_thumbs_only_round_trains_its_rm_on_the_thumbs_alone(store, db_url, tmp_path):
    """``signal=thumbs``: the RM sees only what thumbs paired this round, not the served RM's
    rankings, workspace rankings or arena picks (the sycophancy experiment's candidate)."""
    from chatrlhf import pipeline
    from chatrlhf.models import tiny_dir
    from chatrlhf.schema import Ranking, Rating, read_jsonl
    from chatrlhf.simulate import run as simulate_run

    run = _served_fake_run(store, tmp_path, tiny_dir())
    simulate_run(pipeline.load("tiny").simulate, run / "data")
    user = store.create_user("u")
    for i in range(4):
        _chat(store, user, f"What is {i}+2?", [(str(i + 2), -1, []), ("You're right, it is 7!", 1, [])])
    loop_dir = tmp_path / "loop"
    args = [f"loop_dir={loop_dir}", f"db={db_url}", "min_rankings=4", "prefix=th", "ppo.iterations=1",
            "signal=thumbs", "promote=false"]
    res = loop.run_loop(loop.load("tiny", args), log=lambda _: None)
    rd = loop_dir / "round-1"
    rm = registry.get(store, "th-r1-rm")
    # the thumbs' rankings and the thumbs themselves, pointwise, only
    assert [Path(f).name for f in rm.meta["data"]] == ["loop_rankings.jsonl", "loop_ratings.jsonl"]
    assert len(read_jsonl(rd / "loop_rankings.jsonl", Ranking)) == 4
    assert len(read_jsonl(rd / "loop_ratings.jsonl", Rating)) == 8
    assert rm.meta["base_rankings"] == []
    assert res["candidate"] == "th-r1" and registry.current(store).version == "t-ppo1"
