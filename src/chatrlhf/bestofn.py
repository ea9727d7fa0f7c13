"""Best-of-n sampling with the reward model: the no-training baseline that PPO must beat.

Consumes a policy (the SFT checkpoint), a reward model checkpoint and prompt Conversations.
Produces, per prompt, ``max(ns)`` sampled replies with their RM scores and, for each n in ``ns``,
the index of the best of the *first* n. One set of samples serves every n (best-of-4 is the best of
samples 0-3 of the best-of-16 set), so the sampling is paid once and the two are nested: the
best-of-16 reply is never worse by the RM than the best-of-4 one. Used by ``chatrlhf ablations``.

Sample j of prompt p has its own seed, so it is the same draw whatever n or the batch it runs in.
A reply that never emitted its end-of-turn token gets ``nonending_penalty`` added to its score, as
PPO's reward does: the RM only ever saw finished replies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence


@dataclass
class BestOfNConfig:
    policy: str = "smollm2"  # the model that samples (the SFT checkpoint)
    reward_model: str = ""  # heads.ScalarModel checkpoint
    ns: list[int] = field(default_factory=lambda: [4, 16])  # the n of each best-of-n; max(ns) are sampled
    temperature: float = 0.7  # as PPO's rollouts
    top_p: float = 1.0
    max_new_tokens: int = 64
    max_prompt_len: int = 256
    nonending_penalty: float = 0.0  # added to the score of a reply that ran out of tokens
    batch_size: int = 32
    dtype: str = "float32"  # weights for sampling; autocast for RM scoring
    seed: int = 0


def sample_seed(seed: int, prompt: int, sample: int) -> int:
    """The seed of sample ``sample`` of prompt ``prompt``: independent of n and of batching."""
    return (seed * 1000003 + prompt) * 4099 + sample


def select_best(scores: Sequence[Sequence[float]], ns: Sequence[int]) -> dict[int, list[int]]:
    """For each n, per prompt the index of the highest score among the first n (first on a tie)."""
    out = {}
    for n in ns:
        out[n] = [max(range(min(n, len(row))), key=lambda j: (row[j], -j)) for row in scores]
    return out


def sample_replies(model: Any, tok: Any, prompt_ids: list[list[int]], cfg: BestOfNConfig) -> list[list[Any]]:
    """(P, max(ns)) Completions: every prompt sampled max(ns) times with per-sample seeds."""
    from chatrlhf.engine import Engine, SamplingParams
    from chatrlhf.train_utils import generate_with_progress

    n = max(cfg.ns)
    flat = [ids for ids in prompt_ids for _ in range(n)]
    params = [SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                             seed=sample_seed(cfg.seed, p, j)) for p in range(len(prompt_ids)) for j in range(n)]
    engine = Engine(model, tok, max_batch_size=cfg.batch_size)
    comps = generate_with_progress(engine, flat, params, desc=f"best-of-{n}: sampling")
    return [comps[p * n: (p + 1) * n] for p in range(len(prompt_ids))]


def best_of_n(convs: Sequence[Any], cfg: BestOfNConfig) -> dict[str, Any]:
    """Sample, score with the RM and select. Returns ``samples`` (P, N) Completions, ``scores``
    (P, N) RM scores (penalty included), ``best`` {n: (P,) index} and ``selected`` {n: (P,)
    Completion}, and ``prompt_ids`` (P,) token ids."""
    import torch

    from chatrlhf.chat_format import render_prompt
    from chatrlhf.evaluate import load_rm, rm_scores
    from chatrlhf.models import load_model
    from chatrlhf.train_utils import device

    model, tok = load_model(cfg.policy, dtype=torch.bfloat16 if cfg.dtype in ("bf16", "bfloat16") else torch.float32)
    model.to(device())
    prompt_ids = [render_prompt(c.messages, tok, max_length=cfg.max_prompt_len) for c in convs]
    samples = sample_replies(model, tok, prompt_ids, cfg)
    del model
    rm = load_rm(cfg.reward_model)
    n = max(cfg.ns)
    flat = rm_scores(rm, [ids for ids in prompt_ids for _ in range(n)], [c for row in samples for c in row], cfg)
    flat = [s + (0.0 if c.finish_reason == "stop" else cfg.nonending_penalty)
            for s, c in zip(flat, (c for row in samples for c in row))]
    scores = [flat[p * n: (p + 1) * n] for p in range(len(convs))]
    best = select_best(scores, cfg.ns)
    selected = {k: [samples[p][j] for p, j in enumerate(idx)] for k, idx in best.items()}
    return {"samples": samples, "scores": scores, "best": best, "selected": selected, "prompt_ids": prompt_ids}
