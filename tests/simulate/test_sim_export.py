"""The simulate stage: data files, manifest hashes, determinism, resume, and the CLI."""

from __future__ import annotations

import hashlib
import json

from click.testing import CliRunner

from chatrlhf.cli import cli
from chatrlhf.schema import Conversation, Ranking, read_jsonl
from chatrlhf.simulate import FAMILIES, NO_IDEAL_FAMILIES, SimulateConfig, run

# Families with simulator demonstrations and ranked candidate sets (general has neither).
WITH_IDEAL = [f for f in FAMILIES if f not in NO_IDEAL_FAMILIES]

SMALL = dict(demos_per_family=3, train_prompts_per_family=2, eval_prompts_per_family=2,
             ranking_prompts_per_family=2)


def test_run_writes_records_and_manifest(tmp_path):
    m = run(SimulateConfig(seed=5, **SMALL), tmp_path)
    demos = read_jsonl(tmp_path / "demos.jsonl", Conversation)
    prompts = read_jsonl(tmp_path / "prompts.jsonl", Conversation)
    rankings = read_jsonl(tmp_path / "rankings.jsonl", Ranking)
    assert len(demos) == 3 * len(WITH_IDEAL) and not any(d.is_prompt for d in demos)
    assert all(p.is_prompt for p in prompts)
    assert {p.meta["split"] for p in prompts} == {"train", "eval"}
    # general prompts are written for both splits (for rollouts, distillation and evaluation)
    assert {p.meta["split"] for p in prompts if p.meta["family"] == "general"} == {"train", "eval"}
    assert len(rankings) == 2 * len(WITH_IDEAL) and all(len(r.completions) == 4 for r in rankings)
    assert all(r.meta["task"] and r.meta["family"] in WITH_IDEAL for r in rankings)
    for name, info in m["files"].items():
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == info["sha256"]
    assert json.loads((tmp_path / "manifest.json").read_text()) == m


def test_run_is_deterministic_and_resumes(tmp_path):
    a = run(SimulateConfig(seed=2, **SMALL), tmp_path / "a")
    b = run(SimulateConfig(seed=2, **SMALL), tmp_path / "b")
    assert a["files"] == b["files"]
    before = (tmp_path / "a" / "demos.jsonl").stat().st_mtime_ns
    assert run(SimulateConfig(seed=2, **SMALL), tmp_path / "a") == a
    assert (tmp_path / "a" / "demos.jsonl").stat().st_mtime_ns == before  # skipped, not rewritten
    c = run(SimulateConfig(seed=3, **{**SMALL, "ranking_prompts_per_family": 0}), tmp_path / "a")
    assert c["files"]["demos.jsonl"] != a["files"]["demos.jsonl"]
    assert not (tmp_path / "a" / "rankings.jsonl").exists()


def test_cli_run_show_and_agreement(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["simulate", "run", "--out", str(tmp_path), "seed=1",
                              *[f"{k}={v}" for k, v in SMALL.items()]])
    assert res.exit_code == 0, res.output
    assert "demos.jsonl" in res.output and (tmp_path / "rankings.jsonl").exists()
    res = runner.invoke(cli, ["simulate", "show", "--family", "pushback", "-n", "1"])
    assert res.exit_code == 0 and "gold 1.00" in res.output
    res = runner.invoke(cli, ["simulate", "agreement", "--rankings", str(tmp_path / "rankings.jsonl")])
    assert res.exit_code == 0, res.output
    assert "vs gold" in res.output and "pushback" in res.output
    res = runner.invoke(cli, ["simulate", "run", "--out", str(tmp_path), "no_such_key=1"])
    assert res.exit_code != 0


def test_family_demos_changes_only_that_familys_demo_count(tmp_path):
    run(SimulateConfig(seed=5, **SMALL, family_demos={"sounds_harmful": 7}), tmp_path)
    demos = read_jsonl(tmp_path / "demos.jsonl", Conversation)
    counts = {f: sum(d.meta["family"] == f for d in demos) for f in WITH_IDEAL}
    assert counts.pop("sounds_harmful") == 7 and set(counts.values()) == {3}


def test_candidate_sets_skip_strategies_that_do_not_apply():
    import random

    from chatrlhf.simulate import generate_tasks
    from chatrlhf.simulate.export import candidate_set

    rng = random.Random(0)
    for conv in generate_tasks(0, 6, "train"):
        texts, names = candidate_set(conv, 4, rng)
        assert len(texts) == 4 and all(isinstance(t, str) for t in texts)
        assert "cave_right" not in names or conv.meta["family"] == "pushback"
        assert "needless_clarify" not in names or conv.meta["family"] != "ambiguous"
        new = {"refuse_then_comply", "disclaimer_then_comply", "fictional_wrapper", "clarify_harmful"}
        assert not new & set(names) or conv.meta["family"] == "harmful"


def test_data_from_an_older_simulator_is_rewritten(tmp_path):
    m = run(SimulateConfig(seed=2, **SMALL), tmp_path)
    stale = {**m, "simulator_version": m["simulator_version"] - 1}
    (tmp_path / "manifest.json").write_text(json.dumps(stale))
    (tmp_path / "rankings.jsonl").write_text("")
    assert run(SimulateConfig(seed=2, **SMALL), tmp_path) == m
    assert len(read_jsonl(tmp_path / "rankings.jsonl", Ranking)) == 2 * len(WITH_IDEAL)


def test_every_candidate_strategy_has_a_weight():
    from chatrlhf.simulate.adversarial import CANDIDATES
    from chatrlhf.simulate.export import CANDIDATE_WEIGHTS

    assert set(CANDIDATE_WEIGHTS) == set(CANDIDATES)
    assert {"refuse_then_comply", "disclaimer_then_comply", "fictional_wrapper", "clarify_harmful"} <= set(CANDIDATES)
