"""PPO under ``accelerate``: one process computes exactly what the plain loop did, and two
launched CPU processes (DDP over gloo) that split each iteration's rollouts and every minibatch
compute what one process computes, write one set of outputs, and resume a checkpoint."""

import copy
import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import chatrlhf.ppo as ppo
from chatrlhf.heads import ScalarModel, new_scalar_head
from chatrlhf.schema import Conversation, write_jsonl

# every statistic of a metrics row that comes from the computation (not the clock)
KEYS = ("reward", "kl", "kl_coef", "non_score_reward", "length", "ended", "pg_loss", "vf_loss", "entropy",
        "grad_norm", "clipfrac", "approx_kl", "ratio", "vf_clipfrac", "ptx_loss")


def _cfg(d: Path, out: str, **kw) -> ppo.PPOConfig:
    """Frozen lower block (the cpu preset's trunk sharing), ptx, adaptive β, two epochs; prompts of
    different lengths, so the two processes' shards pad to different prompt lengths; 5 rollouts in
    minibatches of 2, so the last minibatch has one row and one process gets none."""
    if not (d / "rm").exists():
        from chatrlhf.models import load_model

        lm, tok = load_model("tiny")
        torch.manual_seed(0)
        ScalarModel(copy.deepcopy(lm), new_scalar_head(lm.config.hidden_size, 0.5)).save(d / "rm", tok)
        asks = [f"Tell me about {i}" + " please" * (i % 4) for i in range(10)]
        write_jsonl(d / "prompts.jsonl", [Conversation([{"role": "user", "content": a}]) for a in asks])
        write_jsonl(d / "demos.jsonl", [Conversation([{"role": "user", "content": f"What is {i}?"},
                                                      {"role": "assistant", "content": f"It is {i}" + "!" * i}])
                                        for i in range(6)])
    base = dict(policy="tiny", reward_model=str(d / "rm"), prompts=[str(d / "prompts.jsonl")],
                ptx_data=[str(d / "demos.jsonl")], out_dir=str(d / out), iterations=3, rollout_batch=5,
                minibatch_size=2, ppo_epochs=2, max_new_tokens=6, lr=1e-3, kl_target=1.0, ptx_coef=0.5, ptx_batch=3,
                dtype="float32", rollout_dtype="float32", train_layers=1, gold=False, threads=1)
    return ppo.PPOConfig(**{**base, **kw})


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _plain_ppo(cfg: ppo.PPOConfig) -> tuple[list[dict], dict]:
    """The loop as written before accelerate: one process, plain backward/clip/AdamW, the update
    inlined here as it was. Returns (per-iteration stats, final trainable weights)."""
    from chatrlhf.engine import Engine, SamplingParams
    from chatrlhf import ppo_rollouts
    from chatrlhf.heads import masked_lm_loss_from_states
    from chatrlhf.ppo_core import make_kl_controller, masked_mean, policy_loss, value_loss
    from chatrlhf.train_utils import adamw, pad_id_of, pad_right, setup_torch

    setup_torch(cfg.seed, cfg.threads)
    rng = random.Random(cfg.seed)
    models = ppo.build_models(cfg)
    tok = models.tokenizer
    prompts = ppo.load_prompts(cfg.prompts, tok, cfg.max_prompt_len)
    ptx = ppo.with_lower_states(models, ppo.ptx_examples(cfg, tok), cfg)
    kl_ctl = make_kl_controller(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon)
    trained = [p for p in models.policy.parameters() if p.requires_grad]
    params = trained + list(models.value_head.parameters())
    # the optimizer ppo.run builds (fused where PyTorch has the kernel): bit for bit needs the same one
    opt = adamw([{"params": trained, "lr": cfg.lr},
                 {"params": list(models.value_head.parameters()), "lr": cfg.value_head_lr}], weight_decay=0.0)
    out = []
    for it in range(cfg.iterations):
        batch = rng.sample(prompts, min(cfg.rollout_batch, len(prompts)))
        engine = Engine(ppo_rollouts.refresh_gen_model(models, cfg), tok, max_batch_size=cfg.rollout_batch)
        sp = [SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                             seed=(cfg.seed * 100003 + it) * 1009 + row) for row in range(len(batch))]
        comps = engine.generate([ids for _, ids in batch], sp)
        exp = ppo.make_experience(models, batch, comps, kl_ctl.value, cfg)
        P, R = exp.prompt_len, exp.mask.shape[1]
        stats: dict[str, list[float]] = {}
        models.policy.train()
        for _ in range(cfg.ppo_epochs):
            order = list(range(len(batch)))
            rng.shuffle(order)
            for s in range(0, len(batch), cfg.minibatch_size):
                mb = exp.select(torch.tensor(order[s: s + cfg.minibatch_size]))
                logp, values, ent = ppo.logprobs_and_values(models, mb.sequences, mb.attention_mask, P,
                                                            mb.sequences[:, P: P + R], cfg, True, mb.trunk)
                pg, pg_stats = policy_loss(logp, mb.old_logprobs, mb.advantages, mb.mask, cfg.clip)
                vl, v_stats = value_loss(values, mb.values, mb.returns, mb.mask, cfg.vf_clip)
                rows = rng.sample(ptx, min(cfg.ptx_batch, len(ptx)))
                ids, a, m = pad_right([r[0] for r in rows], pad_id_of(tok), [r[1] for r in rows])
                h = torch.nn.utils.rnn.pad_sequence([r[2] for r in rows], batch_first=True)
                ptx_loss = masked_lm_loss_from_states(models.policy, h, ids, a, m, models.trunk_start)
                loss = pg + cfg.vf_coef * vl + cfg.ptx_coef * ptx_loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                gn = torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                row = {"pg_loss": pg.item(), "vf_loss": vl.item(), "entropy": masked_mean(ent.detach(), mb.mask).item(),
                       "grad_norm": float(gn), "ptx_loss": ptx_loss.item(),
                       **{k: v.item() for k, v in {**pg_stats, **v_stats}.items()}}
                for k, v in row.items():
                    stats.setdefault(k, []).append(v)
        seq_kl = ((exp.old_logprobs - exp.ref_logprobs) * exp.mask).sum(1).mean().item()
        kl_ctl.update(seq_kl, len(batch))
        upd = {k: sum(v) / len(v) for k, v in stats.items()}
        out.append(ppo.iteration_stats(it, exp, comps, batch, None, seq_kl, kl_ctl.value, upd))
    weights = {n: p.detach().clone() for n, p in models.policy.named_parameters() if p.requires_grad}
    return out, weights


def test_single_process_ppo_is_the_plain_loop_bit_for_bit(tiny, tmp_path):
    cfg = _cfg(tmp_path, "one")
    summary = ppo.run(cfg)
    want, weights = _plain_ppo(cfg)
    got = _rows(tmp_path / "one")
    assert summary["processes"] == 1 and len(got) == len(want) == cfg.iterations
    for g, w in zip(got, want):
        assert {k: g[k] for k in KEYS} == {k: w[k] for k in KEYS}  # exact: accelerate adds nothing alone
    saved = load_file(str(tmp_path / "one" / "model.safetensors"))
    for name, value in weights.items():
        assert torch.equal(saved[name], value), name
    # ptx ran and the policy moved off the reference (the KL is a sampled estimate: either sign)
    assert got[0]["ptx_loss"] > 0 and abs(got[-1]["kl"]) > 1e-6


def test_minibatch_shares_weigh_to_the_whole_minibatch():
    from chatrlhf.ppo_core import share_of

    counts = [3.0, 5.0, 1.0]
    assert share_of(counts, 1, 0) == ([0, 1, 2], 1.0)
    (a, wa), (b, wb) = share_of(counts, 2, 0), share_of(counts, 2, 1)
    assert (a, b) == ([0, 2], [1])
    # weight = world x the part's share of the tokens: averaging (weight x part mean) over the
    # processes gives the minibatch's token mean (parts hold 3+1 and 5 of its 9 tokens)
    assert (wa, wb) == pytest.approx((2 * 4 / 9, 2 * 5 / 9))
    assert share_of([2.0], 2, 1) == ([0], 0.0)  # no row of its own: a weight-0 stand-in


def test_concatenated_experiences_pad_like_one_batch():
    from chatrlhf.ppo_core import Experience, concat_experiences

    def exp(P, R, B, seed):
        g = torch.Generator().manual_seed(seed)
        tok = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
        mask = torch.ones(B, R)
        return Experience(torch.randint(1, 9, (B, P + R), generator=g), torch.ones(B, P + R, dtype=torch.long), P,
                          mask, *[tok(B, R) for _ in range(6)], tok(B), mask[:, 0] > 0, tok(B, P + R, 4), None)

    a, b = exp(3, 2, 2, 0), exp(5, 4, 1, 1)
    m = concat_experiences([a, b], pad_id=0)
    assert m.prompt_len == 5 and m.sequences.shape == (3, 9) and m.trunk.shape == (3, 9, 4) and m.rm_raw is None
    # a's rows: two more pad columns before the prompt, two after the reply; b's unchanged
    assert m.sequences[:2, :2].eq(0).all() and m.attention_mask[:2, :2].eq(0).all()
    assert torch.equal(m.sequences[:2, 2:7], a.sequences) and m.attention_mask[:2, 7:].eq(0).all()
    assert torch.equal(m.sequences[2:], b.sequences) and torch.equal(m.trunk[:2, 2:7], a.trunk)
    assert torch.equal(m.old_logprobs[:2, :2], a.old_logprobs) and m.mask[:2, 2:].eq(0).all()
    assert torch.equal(m.scores, torch.cat([a.scores, b.scores]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_ppo(cfg: ppo.PPOConfig) -> None:
    """``chatrlhf ppo`` on two CPU processes (see test_accelerate.py for why ``--multi_gpu``)."""
    env = {**os.environ, "CHATRLHF_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    # every setting, so none of the tiny preset's own ppo values applies (empty ones are defaults)
    flags = [f"{k}=[{','.join(v)}]" if isinstance(v, list) else f"{k}={str(v).lower() if isinstance(v, bool) else v}"
             for k, v in cfg.__dict__.items() if v not in ("", [])]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "--no_python",
           sys.executable, "-c", "from chatrlhf.cli import main; main()", "ppo", "--config", "tiny", *flags]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


def _assert_same_run(got: Path, want: Path) -> None:
    """Tolerance: the two processes sample the same tokens (each rollout's seed is its index in the
    whole batch, and the engine draws every row from its own generator), so the runs differ only
    by float32 rounding: a shard pads its prompts to its own longest, matmuls see other batch
    shapes, and the minibatch gradient is summed in two parts. That is ~1e-7 relative per step;
    Adam's m/sqrt(v) magnifies it for near-zero gradients, to ~1e-5 absolute in the weights after
    12 steps at lr 1e-3 (measured 8e-6). Statistics near 0 that are differences of log-probs (kl,
    pg_loss) differ by ~1e-6 absolute (measured 7.6e-7 with every block trained), hence abs 1e-5.
    A wrong share weight or whitening per process moves them by 1e-2 or more (tried)."""
    rows, ref = _rows(got), _rows(want)
    assert [r["iteration"] for r in rows] == [r["iteration"] for r in ref]  # one writer, no duplicate rows
    for a, b in zip(rows, ref):
        for k in KEYS:
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-5), (a["iteration"], k)
    wa, wb = load_file(str(got / "model.safetensors")), load_file(str(want / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(load_file(str(got / "value_head" / "scalar_head.safetensors")),
                               load_file(str(want / "value_head" / "scalar_head.safetensors")), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_two_cpu_processes_compute_the_one_process_run_and_resume(tiny, tmp_path, monkeypatch):
    ppo.run(_cfg(tmp_path, "one"))

    _launch_ppo(_cfg(tmp_path, "two"))
    done = json.loads((tmp_path / "two" / "DONE").read_text())
    assert done["processes"] == 2  # really two processes, not two single runs side by side
    assert sorted(p.name for p in (tmp_path / "two").glob("*.safetensors")) == ["model.safetensors"]
    _assert_same_run(tmp_path / "two", tmp_path / "one")

    # a one-process run killed after its checkpoint at iteration 2, finished by two processes
    calls = {"n": 0}
    real_update = ppo.ppo_update

    def dies_in_third_iteration(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real_update(*args, **kwargs)

    monkeypatch.setattr(ppo, "ppo_update", dies_in_third_iteration)
    with pytest.raises(KeyboardInterrupt):
        ppo.run(_cfg(tmp_path, "resumed", checkpoint_every=2))
    assert torch.load(tmp_path / "resumed" / ppo.CHECKPOINT, weights_only=False)["iteration"] == 2
    _launch_ppo(_cfg(tmp_path, "resumed", checkpoint_every=2))
    assert not (tmp_path / "resumed" / ppo.CHECKPOINT).exists()
    _assert_same_run(tmp_path / "resumed", tmp_path / "one")
