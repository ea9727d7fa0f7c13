"""Comparison data for the reward model: sample K replies per prompt, then get them ranked.

Consumes the current policy checkpoint and train-split prompts (Conversations ending on a user
turn). Produces ``out_dir/rankings.jsonl`` (``schema.Ranking``; from the simulator the meta also
holds each completion's ``gold`` score, which the reward stage uses for its accuracy against gold)
and ``DONE``. Pipeline steps 3 and 4.

Label sources (``labels``):
- ``"sim"``: a simulated annotator (``chatrlhf.simulate.Annotator``: gold judge + noise + biases);
- ``"db:URL"``: rankings exported from the store (trainer workspace rankings and feedback);
- a path to a rankings JSONL file (``schema.Ranking`` records, e.g. a workspace export).
With the last two nothing is sampled: humans already ranked what they were shown.

Each sampled turn is the final model turn of a prompt conversation; multi-turn prompts carry their
earlier turns, so the set covers first replies and replies deep in a dialog.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatrlhf.simulate.annotators import AnnotatorConfig


@dataclass
class SampleConfig:
    k: int = 4  # completions per prompt
    prompts_per_round: int = 64
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    max_prompt_len: int = 256
    batch_size: int = 32
    dtype: str = "bf16"  # weights used for sampling
    annotator: AnnotatorConfig = field(default_factory=AnnotatorConfig)


def sample_k(spec: str, convs: list[Any], cfg: SampleConfig, seed: int) -> list[list[Any]]:
    """K sampled engine ``Completion``s per conversation, all rows in one engine call."""
    import torch

    from chatrlhf.chat_format import render_prompt
    from chatrlhf.engine import Engine, SamplingParams
    from chatrlhf.models import load_model
    from chatrlhf.train_utils import device, generate_with_progress

    dtype = torch.bfloat16 if cfg.dtype in ("bf16", "bfloat16") else torch.float32
    model, tok = load_model(spec, dtype=dtype)
    model.to(device())
    prompts = [render_prompt(c.messages, tok, max_length=cfg.max_prompt_len) for c in convs]
    rows = [p for p in prompts for _ in range(cfg.k)]
    # one seed per row: K rows of one prompt must not replay the same random stream
    params = [SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                             seed=seed * 7919 + i) for i in range(len(rows))]
    out = generate_with_progress(Engine(model, tok, max_batch_size=cfg.batch_size), rows, params,
                                 desc=f"compare: {cfg.k} samples per prompt")
    return [out[i * cfg.k: (i + 1) * cfg.k] for i in range(len(convs))]


def label_simulated(convs: list[Any], completions: list[list[Any]], cfg: SampleConfig, seed: int,
                    round_: int) -> list[Any]:
    """Rank each set with a simulated annotator; record the gold score of every completion."""
    from chatrlhf.simulate import Annotator, judge

    annotator = Annotator(cfg.annotator)
    rng = random.Random(f"{seed}:label:{round_}")
    out = []
    for conv, comps in zip(convs, completions):
        texts = [c.text for c in comps]
        rk = annotator.rank(conv.messages, texts, conv.meta, rng)
        rk.meta.update(gold=[float(judge(conv.messages, t, conv.meta).total) for t in texts],
                       finish=[c.finish_reason for c in comps], source="policy", round=round_)
        out.append(rk)
    return out


def load_external(labels: str) -> list[Any]:
    """Rankings from the store (``db:URL``) or from a JSONL file."""
    from chatrlhf.schema import Ranking, read_jsonl

    if labels.startswith("db:"):
        from chatrlhf.store import Store
        from chatrlhf.store.export import export_feedback_rankings

        store = Store(url=labels[3:] or None)
        try:
            store.upgrade()
            out = list(export_feedback_rankings(store))
            try:
                from chatrlhf.workspace import export_rankings
            except ImportError:  # a store without the trainer workspace tables
                export_rankings = None
            if export_rankings is not None:
                out += list(export_rankings(store))
        finally:
            store.dispose()
        return out
    path = Path(labels)
    if not path.exists():
        raise FileNotFoundError(f"labels must be 'sim', 'db:URL' or a rankings JSONL file; {labels!r} is none")
    return read_jsonl(path, Ranking)


def run(policy: str, prompt_files: list[str], out_dir: str | Path, labels: str, cfg: SampleConfig, seed: int,
        round_: int) -> dict[str, Any]:
    """Steps 3-4: rankings for this round in ``out_dir/rankings.jsonl``; returns a summary."""
    from chatrlhf.schema import Conversation, read_jsonl, write_jsonl
    from chatrlhf.train_utils import mark_done

    out_dir = Path(out_dir)
    if labels == "sim":
        pool = [c for p in prompt_files for c in read_jsonl(p, Conversation)
                if c.is_prompt and c.meta.get("split", "train") == "train" and "task" in c.meta]
        rng = random.Random(f"{seed}:compare:{round_}")
        convs = rng.sample(pool, min(cfg.prompts_per_round, len(pool)))
        rankings = label_simulated(convs, sample_k(policy, convs, cfg, seed * 1000 + round_), cfg, seed, round_)
    else:
        rankings = load_external(labels)
    if not rankings:
        raise ValueError(f"no rankings from labels={labels!r}")
    sha = write_jsonl(out_dir / "rankings.jsonl", rankings)
    summary = {"stage": "compare", "labels": labels if not labels.startswith("db:") else "db",
               "rankings": len(rankings), "sha256": sha}
    mark_done(out_dir, summary)
    return summary
