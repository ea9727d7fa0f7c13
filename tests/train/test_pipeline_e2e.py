"""The whole pipeline on the tiny preset: every stage, the report, and resume after kill -9."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

STAGES = ["sft", "compare", "reward", "ppo", "eval"]


def _start(run_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "CHATRLHF_NO_PROGRESS": "1"}
    code = "from chatrlhf.cli import main; main()"
    return subprocess.Popen([sys.executable, "-c", code, "pipeline", "--config", "tiny", "--run-dir", str(run_dir)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_tiny_pipeline_runs_every_stage_and_resumes_after_kill(tmp_path):
    from chatrlhf import pipeline

    run_dir = tmp_path / "run"
    proc = _start(run_dir)
    # 1. kill -9 the run as soon as the reward model is complete (PPO has begun or is about to)
    deadline = time.time() + 150
    while not (run_dir / "reward" / "DONE").exists():
        if proc.poll() is not None:
            pytest.fail(f"pipeline exited early:\n{proc.stdout.read()[-3000:]}")
        assert time.time() < deadline, "reward stage did not finish in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "ppo" / "DONE").exists()
    sft_done = (run_dir / "sft" / "DONE").read_text()

    # 2. run again: completed stages are skipped, the rest runs, the report is written
    logs: list[str] = []
    results = pipeline.run(pipeline.load("tiny", [f"run_dir={run_dir}"]), log=logs.append)
    for stage in ["sft", "compare", "reward"]:
        assert f"[{stage}] complete, skipped" in logs
    assert "[ppo] running" in logs and "[eval] running" in logs
    assert (run_dir / "sft" / "DONE").read_text() == sft_done  # not retrained
    for stage in STAGES:
        assert (run_dir / stage / "DONE").exists(), stage

    # 3. outputs: checkpoints load with plain transformers; metrics, results and the report exist
    from transformers import AutoModelForCausalLM

    for ckpt in ("sft", "ppo", "reward"):
        AutoModelForCausalLM.from_pretrained(run_dir / ckpt)
    ppo_rows = [json.loads(x) for x in (run_dir / "ppo" / "metrics.jsonl").read_text().splitlines()]
    assert len(ppo_rows) == 2
    for key in ("reward", "kl", "kl_coef", "entropy", "clipfrac", "vf_loss", "length", "gold"):
        assert key in ppo_rows[-1], key
    assert set(results["models"]) == {"base", "sft", "ppo"}
    assert {"ppo_vs_sft", "sft_vs_base"} <= set(results["win_rates"])
    lo, hi = results["win_rates"]["ppo_vs_sft"]["ci95"]
    assert lo <= results["win_rates"]["ppo_vs_sft"]["win_rate"] <= hi
    rm_eval = json.loads((run_dir / "reward" / "eval.json").read_text())
    assert rm_eval["train_rankings"] > 0
    report = (run_dir / "report.md").read_text()
    for section in ("## Wall time", "## Reward model", "## PPO", "## Evaluation", "## Acceptance", "## Samples",
                    "## Reward model across policies", "## Gate"):
        assert section in report
    assert set(results["rm_pair_agreement"]) == {"base_vs_sft", "base_vs_ppo", "sft_vs_ppo"}
    assert results["gate"]["start"] == "sft" and results["gate"]["passed"] in (True, False)
    assert "outside" not in results and "## Outside prompts" not in report  # no --outside-data given
    assert f"{lo:.3f}-{hi:.3f}" in report  # the interval is in the win-rate table
    for png in ("ppo_curves.png", "rm_vs_gold.png", "gold_by_family.png", "win_rates.png", "sft_loss.png"):
        assert (run_dir / png).stat().st_size > 1000, png
    timings = json.loads((run_dir / "timings.json").read_text())
    # reward may lack a time: it was killed between its DONE and the timings write
    assert {"sft", "compare", "ppo", "eval"} <= set(timings)

    # 4. a third start finds everything complete and only rewrites the report
    logs.clear()
    pipeline.run(pipeline.load("tiny", [f"run_dir={run_dir}"]), log=logs.append)
    assert all(f"[{s}] complete, skipped" in logs for s in STAGES)
