"""Supervised fine-tuning on demonstrations: next-token loss on assistant tokens only.

Consumes Conversation JSONL files: dialog demonstrations (``data``) and, optionally, single-turn
instruction data (``instructions``) mixed into every batch at ``instruction_ratio``. Produces
``out_dir/`` = a ``save_pretrained`` checkpoint (LoRA merged) that plain ``transformers`` and vLLM
load, ``metrics.jsonl`` (train loss, eval loss on a held-out split) and ``DONE``. Run with
``chatrlhf sft`` or as pipeline step 2.

The loss mask comes from ``chat_format.render``, the project's only template code, so SFT trains on
exactly the tokens the engine will later be asked to produce, end-of-turn token included.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence


@dataclass
class SFTConfig:
    model: str = "smollm2"  # starting model spec (see chatrlhf.models)
    data: list[str] = field(default_factory=list)  # dialog demonstrations (Conversation JSONL)
    instructions: list[str] = field(default_factory=list)  # single-turn instruction data
    instruction_ratio: float = 0.3  # share of each batch drawn from ``instructions`` when given
    out_dir: str = "runs/manual/sft"
    eval_frac: float = 0.1  # held-out share of demonstrations for the eval loss
    max_steps: int = 200  # optimizer steps (the run stops at max_steps or after ``epochs``)
    epochs: float = 3.0
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 3e-5
    warmup: int = 10
    weight_decay: float = 0.0
    max_length: int = 384
    eval_every: int = 50
    lora_r: int = 0  # >0: LoRA with this rank (merged into the saved checkpoint)
    lora_alpha: int = 32
    dtype: str = "bf16"
    seed: int = 0
    threads: int = 0


def mixed_batches(demos: list, instr: list, batch_size: int, ratio: float, n_batches: int,
                  rng: random.Random) -> list[list]:
    """Batches that draw ~``ratio`` of their rows from ``instr`` and the rest from ``demos``;
    each source is walked in shuffled epochs so every example is seen before any repeats."""
    def stream(items: list):
        while True:
            order = list(items)
            rng.shuffle(order)
            yield from order

    d, i = stream(demos), stream(instr) if instr else None
    n_instr = round(batch_size * ratio) if instr else 0
    if not demos:
        n_instr = batch_size
    return [[next(i) for _ in range(n_instr)] + [next(d) for _ in range(batch_size - n_instr)]
            for _ in range(n_batches)]


def eval_loss(lm: Any, examples: Sequence, pad_id: int, batch_size: int, dtype: str,
              wrapped: Any = None) -> float | None:
    """Mean masked LM loss over ``examples``. With ``wrapped`` (the ``as_module`` that
    ``accelerator.prepare`` returned) the forward runs inside it, where FSDP/ZeRO-3 gather the
    sharded weights; every process must then call this, with the same examples."""
    import torch

    from chatrlhf.heads import masked_lm_loss
    from chatrlhf.train_utils import autocast, chunks, device, pad_right

    if not examples:
        return None
    lm.eval()
    total, n = 0.0, 0
    with torch.no_grad(), autocast(dtype):
        for batch in chunks(list(examples), batch_size):
            ids, attn, mask = pad_right([e[0] for e in batch], pad_id, [e[1] for e in batch])
            args = (lm, ids.to(device()), attn.to(device()), mask.to(device()))
            loss = wrapped(masked_lm_loss, *args) if wrapped is not None else masked_lm_loss(*args)
            total += loss.item() * len(batch)
            n += len(batch)
    return total / n


def run(cfg: SFTConfig) -> dict[str, Any]:
    """Fine-tune, evaluate and save; returns a summary dict (also written to ``DONE``)."""
    import torch

    from chatrlhf.heads import apply_lora, masked_lm_loss, save_lm
    from chatrlhf.models import load_model
    from chatrlhf.schema import Conversation, read_jsonl
    from chatrlhf.train_utils import (MetricsLog, adamw, as_module, autocast, cosine_lr, device, encode_demos,
                                      gathered_parts, make_accelerator, mark_done, mean_over_processes, pad_id_of,
                                      pad_right, progress, setup_torch, weights_sharded)

    acc = make_accelerator(cfg.dtype)
    world, rank, main = acc.num_processes, acc.process_index, acc.is_main_process
    setup_torch(cfg.seed, cfg.threads)
    out_dir = Path(cfg.out_dir)
    rng = random.Random(cfg.seed)
    lm, tok = load_model(cfg.model)
    pad = pad_id_of(tok)
    demos = encode_demos([c for p in cfg.data for c in read_jsonl(p, Conversation)], tok, cfg.max_length)
    instr = encode_demos([c for p in cfg.instructions for c in read_jsonl(p, Conversation)], tok,
                            cfg.max_length)
    rng.shuffle(demos)
    n_eval = int(len(demos) * cfg.eval_frac) if len(demos) > 10 else 0
    held, demos = demos[:n_eval], demos[n_eval:]
    if not demos and not instr:
        raise ValueError(f"no training examples with assistant tokens in {cfg.data + cfg.instructions}")
    per_epoch = max(1, (len(demos) + len(instr)) // (cfg.batch_size * cfg.grad_accum * world))
    steps = max(1, min(cfg.max_steps, int(cfg.epochs * per_epoch)))
    if cfg.lora_r > 0:
        lm = apply_lora(lm, cfg.lora_r, cfg.lora_alpha)
    lm.to(device())
    params = [p for p in lm.parameters() if p.requires_grad]
    opt = adamw(params, acc, lr=cfg.lr, weight_decay=cfg.weight_decay)
    wrapped, opt = acc.prepare(as_module(lm), opt)
    # every process draws the same batches and trains on its own share of each step's
    per_step = cfg.grad_accum * world
    batches = mixed_batches(demos, instr, cfg.batch_size, cfg.instruction_ratio, steps * per_step, rng)
    # metrics on the main process only. Eval too, unless the weights are sharded (FSDP, ZeRO-3):
    # then only the wrapped forward sees them whole, and every process runs it in step.
    sharded = weights_sharded(acc)
    log = MetricsLog(out_dir / "metrics.jsonl") if main else None

    def evaluate() -> float | None:
        if sharded:
            return eval_loss(lm, held, pad, cfg.batch_size, cfg.dtype, wrapped)
        return eval_loss(lm, held, pad, cfg.batch_size, cfg.dtype) if main else None

    first_eval = evaluate()
    if log:
        log.log(step=0, eval_loss=first_eval)
    bar = progress(range(steps), desc="sft", disable=not main)
    for step in bar:
        lm.train()
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, steps, cfg.warmup, cfg.lr)
        total = 0.0
        mine = batches[step * per_step: (step + 1) * per_step][rank::world]
        for j, micro in enumerate(mine):
            ids, attn, mask = pad_right([e[0] for e in micro], pad, [e[1] for e in micro])
            # gradients are all-reduced once per step, at the last micro-batch
            with acc.no_sync(wrapped) if j + 1 < len(mine) else contextlib.nullcontext(), autocast(cfg.dtype):
                loss = wrapped(masked_lm_loss, lm, ids.to(device()), attn.to(device()), mask.to(device()))
            acc.backward(loss / cfg.grad_accum)
            total += loss.item() / cfg.grad_accum
        grad_norm = acc.clip_grad_norm_(wrapped.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        total = mean_over_processes(acc, total)
        due = bool(held) and ((step + 1) % cfg.eval_every == 0 or step + 1 == steps)
        ev = evaluate() if due else None
        if not main:
            continue
        row: dict[str, Any] = {"step": step + 1, "loss": total, "lr": opt.param_groups[0]["lr"],
                               "grad_norm": None if grad_norm is None else float(grad_norm)}
        if due:
            row["eval_loss"] = ev
        log.log(**row)
        bar.set_postfix(loss=f"{total:.3f}")
    acc.wait_for_everyone()
    final_eval = evaluate()
    summary = {"stage": "sft", "steps": steps, "train_examples": len(demos), "instruction_examples": len(instr),
               "eval_examples": len(held), "eval_loss_before": first_eval, "eval_loss_after": final_eval}

    def fresh() -> list[Any]:  # the same modules, to receive gathered weights
        fresh_lm = load_model(cfg.model)[0]
        return [apply_lora(fresh_lm, cfg.lora_r, cfg.lora_alpha) if cfg.lora_r > 0 else fresh_lm]

    parts = gathered_parts(acc, wrapped, fresh, sharded)  # every process takes part when sharded
    if main:
        save_lm(parts[0], tok, out_dir)
        mark_done(out_dir, summary)
    acc.wait_for_everyone()  # no process returns before the stage is DONE
    return summary
