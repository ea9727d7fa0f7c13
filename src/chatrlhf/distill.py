"""Everyday-request demonstrations distilled from the base model's own best replies.

Consumes the base model spec and the simulator's everyday requests (family ``general``: write,
explain, summarise, plan, code, how-to; train split, from a seed stream of their own). Produces
``out_dir/general_demos.jsonl`` (``Conversation`` demonstrations, ``meta.source = "distill"``),
``out_dir/candidates.jsonl`` (every candidate with the checks it failed, to read) and ``DONE``.
Pipeline step 1b, between simulate and SFT; its demonstrations join SFT's single-turn data and
PPO's ptx term.

Why: the simulator's families teach refusals and templates, and no demonstration covered the
everyday requests most users make, so SFT lost what the base model could do (it refused to write a
poem about autumn). InstructGPT's pretraining mix pays that alignment tax; here the base model's
own replies are that data. Each prompt gets a greedy reply and ``samples - 1`` sampled ones; the
kept one is the best by checks that need no gold judge (no refusal, an ending, no echo or loop, a
sane length), so nothing the evaluation scores with was used to pick them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

# Prompts for distillation come from their own seed stream: never the held-out eval prompts (a
# different split) and not the PPO/compare train prompts either.
DISTILL_SEED_OFFSET = 3_000_017


@dataclass
class DistillConfig:
    n_prompts: int = 60  # everyday train prompts per family in ``families`` (0 = stage off)
    families: list[str] = field(default_factory=lambda: ["general"])
    samples: int = 4  # candidates per prompt: the greedy reply plus samples-1 at ``temperature``
    temperature: float = 0.7
    # Kept replies are cut at a sentence end within ``max_words``: every later stage samples at most
    # ~48 new tokens on the cpu preset, so a demonstration longer than that teaches replies that
    # never end (and PPO's non-ending penalty would then fight SFT).
    max_new_tokens: int = 96
    min_words: int = 5
    max_words: int = 45
    min_form: float = 0.9  # the judge's family-independent form check (echo, loops, keyword lists)
    max_prompt_len: int = 256
    batch_size: int = 32
    dtype: str = "float32"
    seed: int = 0
    threads: int = 0


# ----------------------------------------------------------------------------- pure checks

_SENTENCE_END = re.compile(r"[.!?)\]\"'`]\s|[.!?]$|\n")


def trim_to_sentence(text: str, min_keep: float = 0.5) -> str | None:
    """A reply cut off by the token limit, shortened to its last complete sentence or line, or
    None when that would drop more than ``1 - min_keep`` of it."""
    text = text.rstrip()
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    if not ends:
        return None
    cut = text[: ends[-1]].rstrip()
    return cut if len(cut) >= min_keep * len(text) else None


def first_words(text: str, n: int) -> str:
    """``text`` up to the end of its ``n``-th word, whitespace (newlines) kept as it was."""
    m = re.match(rf"\s*(?:\S+\s+){{{max(n - 1, 0)}}}\S+", text)
    return m.group(0) if m else text


def check_reply(text: str, finish_reason: str, prompt: str, cfg: DistillConfig) -> tuple[str, list[str]]:
    """(the reply as it would be kept, the checks it fails: empty when it is usable)."""
    from chatrlhf.simulate.judge import form_score, is_refusal

    failed: list[str] = []
    reply = text.strip()
    if finish_reason != "stop" or len(reply.split()) > cfg.max_words:
        head = first_words(reply, cfg.max_words)
        # a reply that already ends within the limit keeps its ending; else the last full sentence
        reply = head if head == reply and finish_reason == "stop" else (trim_to_sentence(head, 0.3) or "")
        if not reply:
            failed.append("no sentence end within the word limit")
    words = len(reply.split())
    if reply and words < cfg.min_words:
        failed.append(f"shorter than {cfg.min_words} words")
    if reply and is_refusal(reply):
        failed.append("refuses")
    if reply and form_score(reply, prompt) < cfg.min_form:
        failed.append("echo, loop or keyword list")
    if "<|im_" in reply or "<|endoftext|>" in reply:
        failed.append("special tokens in the text")
    return reply, failed


def choose(candidates: Sequence[tuple[str, str]], prompt: str, cfg: DistillConfig) -> tuple[int | None, list[dict]]:
    """Index of the kept candidate (the first that passes every check: the greedy reply comes
    first, so it wins when it is fine) and a record of every candidate's checks."""
    records, kept = [], None
    for i, (text, finish) in enumerate(candidates):
        reply, failed = check_reply(text, finish, prompt, cfg)
        records.append({"reply": reply, "raw": text, "finish": finish, "failed": failed})
        if kept is None and not failed:
            kept = i
    return kept, records


# ----------------------------------------------------------------------------- the stage


def distill_prompts(cfg: DistillConfig) -> list[Any]:
    from chatrlhf.simulate import generate_tasks

    return generate_tasks(cfg.seed + DISTILL_SEED_OFFSET, cfg.n_prompts, "train", families=cfg.families)


def sample_candidates(spec: str, convs: list[Any], cfg: DistillConfig) -> list[list[tuple[str, str]]]:
    """Per prompt: the greedy reply, then ``samples - 1`` sampled ones, as (text, finish_reason)."""
    import torch

    from chatrlhf.chat_format import render_prompt
    from chatrlhf.engine import Engine, SamplingParams
    from chatrlhf.models import load_model
    from chatrlhf.train_utils import device, generate_with_progress

    dtype = torch.bfloat16 if cfg.dtype in ("bf16", "bfloat16") else torch.float32
    model, tok = load_model(spec, dtype=dtype)
    model.to(device())
    engine = Engine(model, tok, max_batch_size=cfg.batch_size)
    prompts = [render_prompt(c.messages, tok, max_length=cfg.max_prompt_len) for c in convs]
    k = max(1, cfg.samples)
    rows = [p for p in prompts for _ in range(k)]
    params = [SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=0.0 if i % k == 0 else cfg.temperature,
                             seed=cfg.seed * 7919 + i) for i in range(len(rows))]
    out = generate_with_progress(engine, rows, params, desc=f"distill: {k} replies per everyday request")
    return [[(c.text, c.finish_reason) for c in out[i * k: (i + 1) * k]] for i in range(len(convs))]


def run(cfg: DistillConfig, base_model: str, out_dir: str | Path) -> dict[str, Any]:
    """Write the distilled demonstrations; returns the summary stored in DONE."""
    from chatrlhf.schema import Conversation, write_jsonl
    from chatrlhf.train_utils import mark_done, setup_torch, write_json

    setup_torch(cfg.seed, cfg.threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    convs = distill_prompts(cfg) if cfg.n_prompts > 0 else []
    demos, records = [], []
    if convs:
        for conv, cands in zip(convs, sample_candidates(base_model, convs, cfg)):
            prompt = conv.messages[-1]["content"]
            kept, recs = choose(cands, prompt, cfg)
            records.append({"prompt": prompt, "kept": kept, "candidates": recs})
            if kept is not None:
                reply = recs[kept]["reply"]
                demos.append(Conversation([*conv.messages, {"role": "assistant", "content": reply}],
                                          {**conv.meta, "source": "distill", "loss_on": "all", "candidate": kept}))
    sha = write_jsonl(out / "general_demos.jsonl", demos)
    write_jsonl(out / "candidates.jsonl", records)
    failures: dict[str, int] = {}
    for r in records:
        for c in r["candidates"]:
            for f in c["failed"]:
                failures[f] = failures.get(f, 0) + 1
    summary = {"stage": "distill", "base_model": base_model, "prompts": len(convs), "demos": len(demos),
               "kept_greedy": sum(r["kept"] == 0 for r in records), "failed_checks": failures, "sha256": sha}
    write_json(out / "summary.json", summary)
    mark_done(out, summary)
    return summary
