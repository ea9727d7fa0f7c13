"""``chatrlhf ablations`` on a tiny pipeline run: every ablation is trained and evaluated next to
base, SFT and PPO, the report and plot are written, and a second call skips what is complete."""

import json
import math

import pytest

ABLATION_MODELS = ["sft_long", "ppo_no_rm", "ppo_no_ptx", "dpo", "bon_4", "bon_16"]


def test_sft_long_is_matched_to_the_demonstrations_of_the_ptx_term():
    from chatrlhf.ablations import ptx_demonstrations
    from chatrlhf.pipeline import load

    ppo = load("cpu").ppo  # 40 iterations × 2 epochs × ⌈32 / 16⌉ minibatches × 8 demonstrations
    assert ptx_demonstrations(ppo, n_prompts=360) == 1280
    assert ptx_demonstrations(ppo, n_prompts=20) == 40 * 2 * 2 * 8  # ⌈20 / 16⌉ = 2 too
    assert ptx_demonstrations(ppo, n_prompts=16) == 40 * 2 * 1 * 8  # fewer prompts than rollout_batch: 1 minibatch
    ppo.ptx_coef = 0.0
    assert ptx_demonstrations(ppo, n_prompts=360) == 0


def test_ablations_train_on_the_files_the_runs_own_stages_recorded(tmp_path):
    from chatrlhf import ablations
    from chatrlhf.pipeline import load

    cfg, paths = load("tiny"), ablations.RunPaths.of(tmp_path)
    guessed = ablations.rm_rankings(cfg, paths)
    assert guessed == [str(tmp_path / "compare" / "rankings.jsonl")], "no inputs.json: as the pipeline assembles them"
    (tmp_path / "reward").mkdir()
    red = str(tmp_path / "redteam" / "rankings.jsonl")
    (tmp_path / "reward" / "inputs.json").write_text(json.dumps(
        {"rankings": {guessed[0]: "a", red: "b", "/gone.jsonl": None}, "demos": {"d.jsonl": "c"}}))
    assert ablations.rm_rankings(cfg, paths) == [guessed[0], red], "the red-team rankings too; not what was missing"
    (tmp_path / "ppo").mkdir()
    (tmp_path / "ppo" / "inputs.json").write_text(json.dumps(
        {"prompts": {"p.jsonl": "1", "redteam/prompts.jsonl": "2"}, "ptx_data": {"demos.jsonl": "3"}}))
    for name in ("ppo_no_rm", "ppo_no_ptx"):
        c = ablations.ppo_cfg(cfg, paths, ablations.AblationsConfig(), name)
        assert (c.prompts, c.ptx_data) == (["p.jsonl", "redteam/prompts.jsonl"], ["demos.jsonl"])
    assert (c.ptx_coef, ablations.ppo_cfg(cfg, paths, ablations.AblationsConfig(), "ppo_no_rm").rm_coef) == (0.0, 0.0)


@pytest.mark.slow
def test_ablations_of_a_tiny_run_train_evaluate_report_and_resume(tmp_path):
    from click.testing import CliRunner

    from chatrlhf import ablations, pipeline
    from chatrlhf.cli import cli
    from chatrlhf.models import load_model

    run_dir = tmp_path / "run"
    pipeline.run(pipeline.load("tiny", [f"run_dir={run_dir}", "threads=1"]), log=lambda m: None)
    logs: list[str] = []
    res = ablations.run(ablations.AblationsConfig(run_dir=str(run_dir), threads=1), log=logs.append)
    out = run_dir / "ablations"

    # 1. every model is in results.json with finite numbers; win rates are against SFT
    saved = json.loads((out / "results.json").read_text())
    assert list(saved["models"]) == ["base", "sft", "ppo"] + ABLATION_MODELS
    for name, s in saved["models"].items():
        assert s["n"] == saved["n_prompts"] > 0
        for key in ("gold", "length_words", "rm"):
            assert math.isfinite(s[key]), (name, key)
    assert set(saved["win_rates_vs_sft"]) == set(saved["models"]) - {"sft"}
    for name, w in saved["win_rates_vs_sft"].items():
        assert 0 <= w["win_rate"] <= 1 and w["n"] == saved["n_prompts"], name
        lo, hi = w["ci95"]
        assert lo <= w["win_rate"] <= hi
    assert saved["compute"]["ppo_no_rm"]["rm_coef"] == 0.0 and saved["compute"]["ppo_no_ptx"]["ptx_coef"] == 0.0
    # sft_long saw as many demonstrations as the ptx term of the tiny run's PPO: 2 iterations × 1
    # epoch × ⌈4 rollouts / minibatch 2⌉ × ptx batch 2 = 8, i.e. 2 steps of SFT's batch 4
    assert saved["compute"]["sft_long"]["demonstrations"] == 8
    assert json.loads((out / "sft_long" / "DONE").read_text())["steps"] == 2
    assert res["models"].keys() == saved["models"].keys()

    # 2. the trained ablations are loadable checkpoints, and the ablation PPO ran without RM reward
    for name in ("sft_long", "ppo_no_rm", "ppo_no_ptx", "dpo"):
        load_model(str(out / name))
    no_rm = [json.loads(x) for x in (out / "ppo_no_rm" / "metrics.jsonl").read_text().splitlines()]
    assert all("rm_score" in r and r["reward"] <= 0 for r in no_rm)  # only the non-ending penalty is left
    no_ptx = [json.loads(x) for x in (out / "ppo_no_ptx" / "metrics.jsonl").read_text().splitlines()]
    assert all("ptx_loss" not in r for r in no_ptx)

    # 3. best-of-16's pick scores at least as high by the RM as best-of-4's, from the same samples
    rows = [json.loads(x) for x in (out / "bon" / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == saved["n_prompts"] and all(len(r["samples"]) == 16 for r in rows)
    for r in rows:
        s4, s16 = r["samples"][r["best"]["4"]]["score"], r["samples"][r["best"]["16"]]["score"]
        assert r["best"]["4"] < 4 and s16 >= s4

    # 4. report and plot
    report = (out / "report.md").read_text()
    assert "| model | gold | win rate vs SFT" in report
    for name in ABLATION_MODELS:
        assert f"| {name} |" in report
    assert (out / "ablations.png").stat().st_size > 1000

    # 5. a second call (through the CLI) skips every completed sub-stage and re-evaluates nothing
    mtimes = {n: (out / n / "model.safetensors").stat().st_mtime for n in ("sft_long", "ppo_no_rm", "dpo")}
    result = CliRunner().invoke(cli, ["ablations", str(run_dir), "--threads", "1"])
    assert result.exit_code == 0, result.output
    for name in ablations.ABLATIONS:
        assert f"[{name}] complete, skipped" in result.output
    assert "[eval]" not in result.output and "bon_16: gold" in result.output
    assert {n: (out / n / "model.safetensors").stat().st_mtime for n in mtimes} == mtimes
    assert json.loads((out / "results.json").read_text())["models"] == saved["models"]
    # an unknown name fails before any work
    bad = CliRunner().invoke(cli, ["ablations", str(run_dir), "--only", "dpo,bogus"])
    assert bad.exit_code != 0 and "bogus" in str(bad.exception)
