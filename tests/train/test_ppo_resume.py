"""A PPO stage killed between checkpoints resumes at its last checkpoint and ends exactly where an
uninterrupted run ends: same metrics rows, same weights."""

import copy
import json

import pytest
import torch
from safetensors.torch import load_file

import chatrlhf.ppo as ppo
from chatrlhf.heads import ScalarModel, new_scalar_head
from chatrlhf.schema import Conversation, write_jsonl


def _cfg(tmp_path, tiny, out):
    lm, tok = tiny
    rm_dir = tmp_path / "rm"
    if not rm_dir.exists():
        torch.manual_seed(0)
        ScalarModel(copy.deepcopy(lm), new_scalar_head(lm.config.hidden_size, 0.5)).save(rm_dir, tok)
        write_jsonl(tmp_path / "prompts.jsonl",
                    [Conversation([{"role": "user", "content": f"Tell me about number {i}."}]) for i in range(8)])
    return ppo.PPOConfig(policy="tiny", reward_model=str(rm_dir), prompts=[str(tmp_path / "prompts.jsonl")],
                         out_dir=str(tmp_path / out), iterations=4, rollout_batch=3, minibatch_size=2,
                         max_new_tokens=6, temperature=1.0, lr=1e-3, kl_target=1.0, dtype="float32",
                         rollout_dtype="float32", train_layers=1, checkpoint_every=2, gold=False, threads=1)


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_killed_ppo_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(tmp_path, tiny, monkeypatch):
    ppo.run(_cfg(tmp_path, tiny, "whole"))

    calls = {"n": 0}
    real_update = ppo.ppo_update

    def dies_in_third_update(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real_update(*args, **kwargs)

    monkeypatch.setattr(ppo, "ppo_update", dies_in_third_update)
    with pytest.raises(KeyboardInterrupt):
        ppo.run(_cfg(tmp_path, tiny, "resumed"))
    out = tmp_path / "resumed"
    assert not (out / "DONE").exists()
    assert torch.load(out / ppo.CHECKPOINT, weights_only=False)["iteration"] == 2
    assert [r["iteration"] for r in _rows(out)] == [1, 2]

    updates = []
    monkeypatch.setattr(ppo, "ppo_update", lambda *a, **k: updates.append(1) or real_update(*a, **k))
    ppo.run(_cfg(tmp_path, tiny, "resumed"))
    assert len(updates) == 2  # only iterations 3 and 4 ran again
    assert (out / "DONE").exists() and not (out / ppo.CHECKPOINT).exists()
    whole, resumed = _rows(tmp_path / "whole"), _rows(out)
    assert [r["iteration"] for r in resumed] == [1, 2, 3, 4]
    for a, b in zip(whole, resumed):
        for key in ("reward", "kl", "kl_coef", "pg_loss", "vf_loss", "length"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), (a["iteration"], key)
    w_whole = load_file(str(tmp_path / "whole" / "model.safetensors"))
    w_resumed = load_file(str(out / "model.safetensors"))
    assert w_whole.keys() == w_resumed.keys()
    for k in w_whole:
        torch.testing.assert_close(w_resumed[k], w_whole[k], rtol=1e-4, atol=1e-6)
