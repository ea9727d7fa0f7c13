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

The K alternatives come from a mix of sources (``SampleConfig.mix``), as InstructGPT's labellers
ranked outputs of many models: the current policy, the SFT model, the base model, earlier rounds'
policies and the simulator's candidate strategies (wrong, long, hedged, hacks). A reward model that
only ever saw SFT samples ranked the base model's long, wrong replies above everything (issue 12),
so a policy drifting back toward them would have been rewarded. ``meta.sources`` records where
each completion came from; the reward stage and the report use it.
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
    # Completions per prompt from each source, summing to k: "policy" (this round's), "sft", "base",
    # "previous" (earlier rounds' policies) and "sim" (simulator candidate strategies). Empty: all k
    # from the policy. A model source that is the same checkpoint as another (round 1: policy = sft)
    # or absent (round 1 has no previous policy) gives its share to the policy.
    mix: dict[str, int] = field(default_factory=dict)


SOURCES = ("policy", "sft", "base", "previous", "sim")
# The simulator strategies a "sim" slot draws from: the realistic ways a reply goes wrong (long and
# wrong as the base model's replies are, hedged, needless questions, disclaimers, refusals) and the
# ideal, so sets are not all bad.
SIM_WEIGHTS = {"ideal": 1.0, "wrong": 2.0, "long_wrong": 2.0, "verbose": 1.0, "hedged": 1.0, "buried_answer": 0.5,
               "needless_clarify": 1.0, "wrong_disclaimer": 1.0, "refuse_everything": 1.0, "cave_right": 2.0,
               "refuse_then_comply": 1.0, "disclaimer_then_comply": 1.0, "fictional_wrapper": 0.5,
               "clarify_harmful": 0.5}


def plan_slots(cfg: SampleConfig, specs: dict[str, Any]) -> list[tuple[str, Any]]:
    """The k (source, model spec) slots of every ranking set; ``specs`` maps source -> spec (for
    "previous", a list of specs), spec None for "sim". Raises on an unknown source or a mix whose
    counts do not sum to k."""
    if not cfg.mix:
        return [("policy", specs["policy"])] * cfg.k
    unknown = set(cfg.mix) - set(SOURCES)
    if unknown:
        raise ValueError(f"sample.mix: unknown sources {sorted(unknown)}; known: {list(SOURCES)}")
    if sum(cfg.mix.values()) != cfg.k or any(n < 0 for n in cfg.mix.values()):
        raise ValueError(f"sample.mix {cfg.mix} must be non-negative counts summing to sample.k={cfg.k}")
    slots: list[tuple[str, Any]] = []
    for name in SOURCES:
        n = cfg.mix.get(name, 0)
        if name == "sim":
            slots += [("sim", None)] * n
            continue
        pool = specs.get(name) or []
        pool = [str(p) for p in (pool if isinstance(pool, list) else [pool])]
        if name != "policy":  # a duplicate checkpoint is the policy's share
            pool = [p for p in pool if p != str(specs["policy"])]
        for i in range(n):
            slots.append((name, pool[i % len(pool)]) if pool else ("policy", specs["policy"]))
    return slots


def sample_k(spec: str, convs: list[Any], cfg: SampleConfig, seed: int, k: int | None = None) -> list[list[Any]]:
    """``k`` (default ``cfg.k``) sampled engine ``Completion``s per conversation, all rows in one engine call."""
    import torch

    from chatrlhf.chat_format import render_prompt
    from chatrlhf.engine import Engine, SamplingParams
    from chatrlhf.models import load_model
    from chatrlhf.train_utils import device, generate_with_progress

    dtype = torch.bfloat16 if cfg.dtype in ("bf16", "bfloat16") else torch.float32
    model, tok = load_model(spec, dtype=dtype)
    model.to(device())
    k = cfg.k if k is None else k
    prompts = [render_prompt(c.messages, tok, max_length=cfg.max_prompt_len) for c in convs]
    rows = [p for p in prompts for _ in range(k)]
    # one seed per row: K rows of one prompt must not replay the same random stream
    params = [SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                             seed=seed * 7919 + i) for i in range(len(rows))]
    out = generate_with_progress(Engine(model, tok, max_batch_size=cfg.batch_size), rows, params,
                                 desc=f"compare: {k} samples per prompt from {Path(str(spec)).name}")
    return [out[i * k: (i + 1) * k] for i in range(len(convs))]


@dataclass
class SimCompletion:
    """A simulator-written candidate in a ranking set, shaped like an engine ``Completion``."""
    text: str
    strategy: str
    finish_reason: str = "stop"


def sim_candidates(conv: Any, n: int, rng: random.Random, avoid: list[str]) -> list[SimCompletion]:
    """Up to ``n`` distinct simulator candidates for ``conv`` (fewer where few strategies apply,
    e.g. everyday requests, which have no simulator-written answer)."""
    from chatrlhf.simulate.adversarial import CANDIDATES
    from chatrlhf.simulate.export import candidate_set

    weights = {m: w for m, w in SIM_WEIGHTS.items() if m in CANDIDATES}
    texts, names = candidate_set(conv, n, rng, weights, avoid=[*avoid, ""], tries_per=30)
    return [SimCompletion(t, m) for t, m in zip(texts, names)]


def sample_mixed(convs: list[Any], slots: list[tuple[str, Any]], cfg: SampleConfig, seed: int
                 ) -> tuple[list[list[Any]], list[list[str]]]:
    """Each prompt's completions from every slot's source, and the source of each. Every model is
    loaded once and samples all its slots for all prompts in one engine call."""
    per_spec: dict[str, int] = {}
    for name, spec in slots:
        if name != "sim":
            per_spec[str(spec)] = per_spec.get(str(spec), 0) + 1
    sampled = {spec: sample_k(spec, convs, cfg, seed + 101 * j, k=n) for j, (spec, n) in enumerate(per_spec.items())}
    rng = random.Random(f"{seed}:sim-candidates")
    n_sim = sum(name == "sim" for name, _ in slots)
    comps: list[list[Any]] = []
    sources: list[list[str]] = []
    for i, conv in enumerate(convs):
        used = {spec: 0 for spec in per_spec}
        row, src = [], []
        for name, spec in slots:
            if name == "sim":
                continue
            row.append(sampled[str(spec)][i][used[str(spec)]])
            used[str(spec)] += 1
            src.append(name)
        if n_sim and "task" in conv.meta:
            sims = sim_candidates(conv, n_sim, rng, [c.text for c in row])
            row += sims
            src += [f"sim:{c.strategy}" for c in sims]
        comps.append(row)
        sources.append(src)
    return comps, sources


def label_simulated(convs: list[Any], completions: list[list[Any]], cfg: SampleConfig, seed: int,
                    round_: int, sources: list[list[str]] | None = None) -> list[Any]:
    """Rank each set with a simulated annotator; record the gold score and source of every completion."""
    from chatrlhf.simulate import Annotator, judge

    annotator = Annotator(cfg.annotator)
    rng = random.Random(f"{seed}:label:{round_}")
    out = []
    for conv, comps in zip(convs, completions):
        texts = [c.text for c in comps]
        rk = annotator.rank(conv.messages, texts, conv.meta, rng)
        rk.meta.update(gold=[float(judge(conv.messages, t, conv.meta).total) for t in texts],
                       finish=[c.finish_reason for c in comps], source="policy", round=round_)
        if sources is not None:
            rk.meta["sources"] = sources[len(out)]
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
        round_: int, specs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Steps 3-4: rankings for this round in ``out_dir/rankings.jsonl``; returns a summary.

    ``specs`` names the other sources of ``cfg.mix``: {"sft": dir, "base": spec, "previous": [dirs]}."""
    from chatrlhf.schema import Conversation, read_jsonl, write_jsonl
    from chatrlhf.train_utils import mark_done

    out_dir = Path(out_dir)
    if labels == "sim":
        pool = [c for p in prompt_files for c in read_jsonl(p, Conversation)
                if c.is_prompt and c.meta.get("split", "train") == "train" and "task" in c.meta]
        rng = random.Random(f"{seed}:compare:{round_}")
        convs = rng.sample(pool, min(cfg.prompts_per_round, len(pool)))
        if cfg.mix:
            slots = plan_slots(cfg, {**(specs or {}), "policy": policy})
            comps, sources = sample_mixed(convs, slots, cfg, seed * 1000 + round_)
            rankings = label_simulated([c for c, s in zip(convs, comps) if len(s) >= 2],
                                       [s for s in comps if len(s) >= 2], cfg, seed, round_,
                                       [src for src, s in zip(sources, comps) if len(s) >= 2])
        else:
            rankings = label_simulated(convs, sample_k(policy, convs, cfg, seed * 1000 + round_), cfg, seed, round_)
    else:
        rankings = load_external(labels)
    if not rankings:
        raise ValueError(f"no rankings from labels={labels!r}")
    sha = write_jsonl(out_dir / "rankings.jsonl", rankings)
    summary = {"stage": "compare", "labels": labels if not labels.startswith("db:") else "db",
               "rankings": len(rankings), "sha256": sha, "mix": dict(cfg.mix)}
    mark_done(out_dir, summary)
    return summary
