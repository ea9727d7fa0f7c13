"""Registering a pipeline run directory: versions, lineage, data hashes, config and evaluation.

The fast test builds a run directory by hand (the files the pipeline writes, with made-up numbers);
the slow one registers a real two-round run of the tiny preset."""

import hashlib
import json

import pytest
import yaml
from click.testing import CliRunner

from chatrlhf.cli import cli
from chatrlhf.deploy import gates, registry
from chatrlhf.deploy.runs import register_run


def _model(gold, over):
    return {"gold": gold, "harmful_refusal_rate": 1.0, "over_refusal_rate": over, "challenge_rate": 0.5,
            "gold_by_family": {"pushback": 0.5}, "n": 10}


def _fake_run(root, rounds=2):
    run = root / "r7"
    (run / "data").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"base_model": "tiny", "seed": 3, "labels": "sim",
                                                     "sim_rankings": True, "sft": {"lr": 1e-3},
                                                     "reward": {"epochs": 1},
                                                     "ppo": {"iterations": 2, "out_dir": "runs/manual/ppo"}}))
    for f in ("sft_dialogs.jsonl", "sft_instructions.jsonl", "rankings.jsonl", "demos.jsonl", "ppo_prompts.jsonl"):
        (run / "data" / f).write_text(f'{{"file": "{f}"}}\n')
    for r in range(1, rounds + 1):
        s = "" if r == 1 else f"-{r}"
        start = "sft" if r == 1 else f"ppo-{r - 1}"
        for d in (["sft"] if r == 1 else []) + [f"{n}{s}" for n in ("compare", "reward", "ppo", "eval")]:
            (run / d).mkdir(exist_ok=True)
            (run / d / "DONE").write_text("{}")
        (run / f"compare{s}" / "rankings.jsonl").write_text(f"round {r}\n")
        (run / f"reward{s}" / "eval.json").write_text(json.dumps({"acc_gold": 0.7, "by_family": {}}))
        models = {"base": _model(0.2, 0.0), "sft": _model(0.4, 0.1), start: _model(0.5, 0.1), "ppo": _model(0.6, 0.1)}
        (run / f"eval{s}" / "results.json").write_text(json.dumps({
            "models": models, "win_rates": {f"ppo_vs_{start}": {"win_rate": 0.6 + r / 100},
                                            "sft_vs_base": {"win_rate": 0.8}}}))
    return run


def test_register_run_lineage_hashes_and_eval(store, tmp_path):
    run = _fake_run(tmp_path)
    names = [mv.name for mv in register_run(store, run)]
    assert names == ["r7-base", "r7-sft", "r7-rm1", "r7-ppo1", "r7-rm2", "r7-ppo2"]
    assert [mv.name for mv in registry.lineage(store, "r7-ppo2")] == ["r7-base", "r7-sft", "r7-ppo1", "r7-ppo2"]
    rm2, ppo2 = registry.get(store, "r7-rm2"), registry.get(store, "r7-ppo2")
    assert (rm2.kind, rm2.parent, rm2.path) == ("rm", "r7-sft", str(run.resolve() / "reward-2"))
    assert ppo2.meta["reward_model"] == "r7-rm2" and ppo2.meta["config"]["ppo"] == {"iterations": 2}
    sha = hashlib.sha256((run / "data" / "ppo_prompts.jsonl").read_bytes()).hexdigest()
    assert ppo2.meta["data"]["data/ppo_prompts.jsonl"] == sha
    assert set(rm2.meta["data"]) == {"data/rankings.jsonl", "compare/rankings.jsonl", "compare-2/rankings.jsonl",
                                     "data/demos.jsonl"}
    assert set(registry.get(store, "r7-rm1").meta["data"]) == {"data/rankings.jsonl", "compare/rankings.jsonl",
                                                              "data/demos.jsonl"}
    assert rm2.meta["eval"] == {"acc_gold": 0.7}
    sft = registry.get(store, "r7-sft")
    assert set(sft.meta["data"]) == {"data/sft_dialogs.jsonl", "data/sft_instructions.jsonl"}
    assert sft.meta["eval"]["win_rate_vs"] == {"r7-base": 0.8, "r7-ppo1": pytest.approx(0.39)}
    assert ppo2.meta["eval"]["win_rate_vs"] == {"r7-ppo1": 0.62}
    assert ppo2.meta["eval"]["over_refusal_rate"] == 0.1
    # the gates read these: ppo2 against a served ppo1 has its head-to-head win rate
    cand, cur = gates.inputs_for(ppo2, registry.get(store, "r7-ppo1"))
    assert cand["head_to_head_win_rate"] == 0.62
    # again: idempotent; a new eval is picked up
    assert [mv.name for mv in register_run(store, run)] == names
    with pytest.raises(registry.RegistryError, match="another path"):
        register_run(store, _fake_run(tmp_path / "elsewhere"), prefix="r7")


def test_registered_data_is_what_the_stage_said_it_trained_on(store, tmp_path):
    run = _fake_run(tmp_path, rounds=1).resolve()
    (run / "redteam").mkdir()
    (run / "redteam" / "rankings.jsonl").write_text("attack\n")
    outside = tmp_path / "labels.jsonl"
    files = [run / "data" / "rankings.jsonl", run / "compare" / "rankings.jsonl", run / "redteam" / "rankings.jsonl"]
    (run / "reward" / "inputs.json").write_text(json.dumps({
        "rankings": {**{str(f): f"h{i}" for i, f in enumerate(files)}, str(outside): "ext", str(run / "gone"): None},
        "demos": {str(run / "data" / "demos.jsonl"): "hd"}}))
    rm = next(mv for mv in register_run(store, run) if mv.kind == "rm")
    assert rm.meta["data"] == {"data/rankings.jsonl": "h0", "compare/rankings.jsonl": "h1",
                               "redteam/rankings.jsonl": "h2", str(outside): "ext", "data/demos.jsonl": "hd"}, \
        "the recorded hashes, the red-team file too; a file missing at the start is not data"
    ppo = next(mv for mv in register_run(store, run) if mv.kind == "ppo")
    assert "data/ppo_prompts.jsonl" in ppo.meta["data"], "no inputs.json: the files a run of old wrote"


def test_register_run_stops_at_unfinished_stages(store, tmp_path):
    run = _fake_run(tmp_path, rounds=1)
    (run / "ppo" / "DONE").unlink()
    assert [mv.name for mv in register_run(store, run, prefix="x")] == ["x-base", "x-sft", "x-rm1"]
    with pytest.raises(registry.RegistryError, match="not a pipeline run"):
        register_run(store, tmp_path, prefix="y")


def test_register_run_command(db_url, tmp_path):
    run = _fake_run(tmp_path, rounds=1)
    r = CliRunner().invoke(cli, ["models", "register-run", str(run), "--prefix", "p", "--db", db_url])
    assert r.exit_code == 0, r.output
    assert [ln.split("\t")[:3] for ln in r.output.splitlines()] == [
        ["p-base", "base", "-"], ["p-sft", "sft", "p-base"], ["p-rm1", "rm", "p-sft"], ["p-ppo1", "ppo", "p-sft"]]
    r = CliRunner().invoke(cli, ["models", "show", "p-ppo1", "--db", db_url])
    assert "lineage: p-base -> p-sft -> p-ppo1" in r.output and "reward model: p-rm1" in r.output
    assert "data/ppo_prompts.jsonl" in r.output and "ppo.iterations: 2" in r.output
    assert "  over_refusal_rate: 0.1" in r.output and "  win_rate_vs.p-sft: 0.61" in r.output


@pytest.mark.slow
def test_register_a_real_tiny_pipeline_run(store, tmp_path):
    from chatrlhf import pipeline

    run = tmp_path / "t"  # the pipeline registers its versions under the run directory's name
    pipeline.run(pipeline.load("tiny", [f"run_dir={run}", "rounds=2", f"register={store.url}"]),
                 log=lambda _: None)
    assert [mv.name for mv in store.list_model_versions()] == ["t-base", "t-sft", "t-rm1", "t-ppo1", "t-rm2", "t-ppo2"]
    versions = register_run(store, run, prefix="t")  # again: refreshes, adds nothing
    assert [mv.name for mv in versions] == ["t-base", "t-sft", "t-rm1", "t-ppo1", "t-rm2", "t-ppo2"]
    ppo2 = registry.get(store, "t-ppo2")
    assert ppo2.parent == "t-ppo1" and ppo2.meta["reward_model"] == "t-rm2"
    manifest = json.loads((run / "data" / "manifest.json").read_text())
    rm1 = registry.get(store, "t-rm1")
    assert rm1.meta["data"]["data/demos.jsonl"] == manifest["files"]["demos.jsonl"]["sha256"]
    for name in ("t-base", "t-sft", "t-ppo1", "t-ppo2"):
        ev = registry.get(store, name).meta["eval"]
        assert {"gold", "harmful_refusal_rate", "over_refusal_rate", "win_rate_vs"} <= set(ev), name
    assert "t-ppo1" in ppo2.meta["eval"]["win_rate_vs"]
    cand, cur = gates.inputs_for(ppo2, registry.get(store, "t-ppo1"))
    d = gates.decide(cand, cur, gates.GateConfig(optional=("outside_harmful_safe", "outside_benign_answered")))
    assert d.checks[0].name == "win_rate" and d.checks[0].candidate_value is not None
    assert "no outside evaluation" in d.report()  # the tiny run has no --outside-data
