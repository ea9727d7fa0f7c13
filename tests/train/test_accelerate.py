"""SFT and the reward model under ``accelerate``: one process computes exactly what the plain
PyTorch loop did, and two launched CPU processes (DDP over gloo) split each step's batches between
them, average their gradients and write one checkpoint."""

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from chatrlhf.schema import Conversation, Ranking, write_jsonl


def _data(d: Path) -> tuple[str, str]:
    demos = []
    for i in range(24):
        msgs = [{"role": "user", "content": f"What is {i} plus {i % 5}?"},
                {"role": "assistant", "content": f"{i} plus {i % 5} is {i + i % 5}."}]
        if i % 4 == 0:
            msgs += [{"role": "user", "content": "Are you sure?"},
                     {"role": "assistant", "content": "Yes, I checked it twice."}]
        demos.append(Conversation(msgs, {}))
    rankings = [Ranking([{"role": "user", "content": f"Name a colour, please ({i})."}],
                        [f"Blue is a fine colour number {i}.", "No.", "I cannot answer that."], [0, 1, 2],
                        flags={2: ["over_refusal"]} if i % 3 == 0 else {})
                for i in range(14)]
    write_jsonl(d / "demos.jsonl", demos)
    write_jsonl(d / "rankings.jsonl", rankings)
    return str(d / "demos.jsonl"), str(d / "rankings.jsonl")


def _sft_cfg(demos: str, out_dir: Path, **kw):
    from chatrlhf.sft import SFTConfig

    base = dict(model="tiny", data=[demos], out_dir=str(out_dir), max_steps=3, batch_size=4, lr=1e-3, warmup=1,
                max_length=64, eval_every=2, dtype="float32")
    return SFTConfig(**{**base, **kw})


def _plain_sft_losses(cfg) -> list[tuple[float, float]]:
    """(loss, grad norm) per step of the loop as written before accelerate: plain backward, clipping
    and AdamW, same data order."""
    import torch

    from chatrlhf.heads import masked_lm_loss
    from chatrlhf.models import load_model
    from chatrlhf.schema import read_jsonl
    from chatrlhf.sft import mixed_batches
    from chatrlhf.train_utils import adamw, cosine_lr, encode_demos, pad_id_of, pad_right, setup_torch

    setup_torch(cfg.seed)
    rng = random.Random(cfg.seed)
    lm, tok = load_model(cfg.model)
    demos = encode_demos(read_jsonl(cfg.data[0], Conversation), tok, cfg.max_length)
    rng.shuffle(demos)
    demos = demos[int(len(demos) * cfg.eval_frac):]
    steps = max(1, min(cfg.max_steps, int(cfg.epochs * max(1, len(demos) // (cfg.batch_size * cfg.grad_accum)))))
    params = [p for p in lm.parameters() if p.requires_grad]
    opt = adamw(params, lr=cfg.lr, weight_decay=cfg.weight_decay)  # the optimizer sft.run builds
    batches = mixed_batches(demos, [], cfg.batch_size, cfg.instruction_ratio, steps * cfg.grad_accum, rng)
    out = []
    for step in range(steps):
        lm.train()
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, steps, cfg.warmup, cfg.lr)
        total = 0.0
        for micro in batches[step * cfg.grad_accum: (step + 1) * cfg.grad_accum]:
            ids, attn, mask = pad_right([e[0] for e in micro], pad_id_of(tok), [e[1] for e in micro])
            loss = masked_lm_loss(lm, ids, attn, mask)
            (loss / cfg.grad_accum).backward()
            total += loss.item() / cfg.grad_accum
        out.append((total, float(torch.nn.utils.clip_grad_norm_(params, 1.0))))
        opt.step()
        opt.zero_grad(set_to_none=True)
    return out


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_single_process_sft_is_the_plain_loop_and_saves_a_loadable_checkpoint(tiny, tmp_path):
    from transformers import AutoModelForCausalLM

    from chatrlhf import sft

    demos, _ = _data(tmp_path)
    cfg = _sft_cfg(demos, tmp_path / "sft", grad_accum=2)
    summary = sft.run(cfg)
    rows = _rows(tmp_path / "sft" / "metrics.jsonl")
    got = [(r["loss"], r["grad_norm"]) for r in rows[1:]]
    assert got == _plain_sft_losses(cfg)  # bit for bit: accelerate adds nothing in one process
    assert got[-1][0] < got[0][0] and summary["eval_loss_after"] < summary["eval_loss_before"]
    assert (tmp_path / "sft" / "DONE").exists()
    AutoModelForCausalLM.from_pretrained(tmp_path / "sft")


def test_single_process_reward_model_trains_with_and_without_cached_blocks(tiny, tmp_path):
    from transformers import AutoModelForCausalLM

    from chatrlhf import reward
    from chatrlhf.heads import load_head

    demos, rankings = _data(tmp_path)
    results = {}
    for cache in (True, False):
        out = tmp_path / f"rm-{cache}"
        cfg = reward.RewardConfig(model="tiny", rankings=[rankings], demos=demos, out_dir=str(out), lr=1e-3,
                                  max_length=64, norm_samples=4, dtype="float32", train_layers=1,
                                  batch_rankings=4, cache_trunk=cache)
        results[cache] = reward.run(cfg), [r["loss"] for r in _rows(out / "metrics.jsonl")]
        assert (out / "DONE").exists()
        AutoModelForCausalLM.from_pretrained(out)
        load_head(out)
    (res, losses), (_, uncached) = results[True], results[False]
    assert res["steps"] == len(losses) == -(-res["train_rankings"] // 4)  # every ranking, one process
    assert losses[-1] < losses[0] and res["final_loss"] == losses[-1]
    assert uncached == pytest.approx(losses, rel=1e-4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_cpu_processes_share_each_step_and_write_one_checkpoint(tiny, tmp_path):
    """2 processes x batch 4 is one process with 2 micro-batches of 4: same batches, same gradient."""
    from transformers import AutoModelForCausalLM

    from chatrlhf import sft

    demos, _ = _data(tmp_path)
    out = tmp_path / "ddp"
    env = {**os.environ, "CHATRLHF_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    # --multi_gpu picks accelerate's torchrun launcher; without CUDA the processes join over gloo
    # (``--cpu`` alone starts a single process unless an MPI hostfile is given)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "--no_python",
           sys.executable, "-c", "from chatrlhf.cli import main; main()",
           "sft", "--config", "tiny", "model=tiny", f"data=[{demos}]", f"out_dir={out}", "max_steps=2",
           "batch_size=4", "max_length=64"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

    assert sorted(p.name for p in out.iterdir() if p.suffix == ".safetensors") == ["model.safetensors"]
    assert not any(p.is_dir() for p in out.iterdir())
    done = json.loads((out / "DONE").read_text())
    assert done["steps"] == 2
    rows = _rows(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2]  # written by the main process only
    AutoModelForCausalLM.from_pretrained(out)

    sft.run(_sft_cfg(demos, tmp_path / "one", max_steps=2, grad_accum=2))
    ref = _rows(tmp_path / "one" / "metrics.jsonl")
    for key in ("loss", "grad_norm", "eval_loss"):
        got, want = [r.get(key) for r in rows], [r.get(key) for r in ref]
        # rows without the key (step 0 has no loss) must match as missing; pytest.approx rejects None
        assert [g is None for g in got] == [w is None for w in want], key
        assert [g for g in got if g is not None] == pytest.approx([w for w in want if w is not None], rel=1e-5), key
