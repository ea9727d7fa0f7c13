"""Learning from rankings: what the reward model and DPO share.

A ranking of K replies (``schema.Ranking``) is one batch element for both: the reward model scores
each reply with its head, DPO with the implicit reward β(log π − log π_ref), and the same K-wise
Bradley-Terry loss turns the K scores into C(K,2) pairwise terms. Both hold out the same prompts
(by hash) and measure the same agreement with the gold judge. Pure functions only.

A single thumbs rating (``schema.Rating``) has no alternative to compare with; the reward model
learns it pointwise (``rating_loss``): the probability of a thumbs-up is σ(r).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    import torch

    from chatrlhf.schema import Ranking


def ranking_loss(
    scores: "torch.Tensor",  # (K,) reward of each completion
    ranks: Sequence[int],  # (K,) 0 = best, equal = tie
    unacceptable: Sequence[bool] = (),  # (K,) completions that no annotator would accept
    tie_mode: str = "skip",
    unacceptable_weight: float = 0.0,
) -> "torch.Tensor":
    """The K-wise loss of one ranking (a scalar).

    - Strict pairs i ≻ j contribute -log σ(r_i - r_j); the sum is divided by C(K,2) whatever the
      number of ties, as in InstructGPT, so a ranking full of ties weighs less than a decisive one.
    - Ties: "skip" adds nothing; "half" adds -½(log σ(d) + log σ(-d)) per tied pair, the
      Bradley-Terry likelihood of a coin flip, which pulls tied scores together.
    - Unacceptable completions (the ranking's "all unacceptable" flag, or a per-completion flag)
      carry information the order cannot: even the best of a bad set is bad. Each such completion
      adds w · softplus(r_i) = -w · log σ(-r_i), pushing it below 0, the score a normalised
      demonstration gets on average.
    """
    import torch
    import torch.nn.functional as F

    K = scores.shape[0]
    r = torch.as_tensor(list(ranks), device=scores.device)
    d = scores[:, None] - scores[None, :]  # (K, K): d[i, j] = r_i - r_j
    better = r[:, None] < r[None, :]  # (K, K) i strictly preferred to j
    total = -(F.logsigmoid(d) * better).sum()
    if tie_mode == "half":
        tied = (r[:, None] == r[None, :]) & torch.triu(torch.ones(K, K, dtype=torch.bool, device=scores.device), 1)
        total = total - 0.5 * ((F.logsigmoid(d) + F.logsigmoid(-d)) * tied).sum()
    elif tie_mode != "skip":
        raise ValueError(f"tie_mode must be 'skip' or 'half', got {tie_mode!r}")
    loss = total / (K * (K - 1) / 2)
    if unacceptable_weight > 0 and any(unacceptable):
        u = torch.as_tensor(list(unacceptable), dtype=torch.bool, device=scores.device)
        loss = loss + unacceptable_weight * F.softplus(scores[u]).mean()
    return loss


def rating_loss(scores: "torch.Tensor", ratings: Sequence[int]) -> "torch.Tensor":
    """Mean −log p(rating) with p(up) = σ(r), over (N,) scores and their ±1 ratings: a thumbs-up
    pushes its score up, a thumbs-down down. It fixes the head's offset, which the pairwise terms
    leave free, so σ(raw score) also says how likely a user is to like the reply (the saved RM's
    normalisation bias shifts its ``scores`` afterwards; ``raw_scores`` keep this meaning)."""
    import torch
    import torch.nn.functional as F

    y = torch.as_tensor([float(r > 0) for r in ratings], device=scores.device)
    return F.binary_cross_entropy_with_logits(scores, y)


def rating_auc(scores: Sequence[float], ratings: Sequence[int]) -> float | None:
    """How often a thumbed-up reply scores above a thumbed-down one (ties count half); None
    without both kinds. Unlike accuracy at 0 it does not depend on the offset."""
    up = [s for s, r in zip(scores, ratings) if r > 0]
    down = [s for s, r in zip(scores, ratings) if r <= 0]
    if not up or not down:
        return None
    hits = sum((u > d) + 0.5 * (u == d) for u in up for d in down)
    return hits / (len(up) * len(down))


def pair_accuracy(scores: Sequence[float], prefs: Sequence[float], higher_is_better: bool) -> tuple[int, int]:
    """(agreeing pairs, strict pairs): how often the scores order a pair as ``prefs`` does.

    ``prefs`` are ranks (lower better) or gold scores (higher better); equal prefs give no pair,
    equal scores count as a miss.
    """
    hit = n = 0
    for i in range(len(scores)):
        for j in range(len(scores)):
            a, b = (prefs[i], prefs[j]) if higher_is_better else (prefs[j], prefs[i])
            if a > b:
                n += 1
                hit += scores[i] > scores[j]
    return hit, n


def split_heldout(rankings: Sequence[Any], frac: float) -> tuple[list[Any], list[Any]]:
    """Deterministic split by prompt, so no held-out prompt was seen in training (even by a 2nd
    round). Rankings and ratings alike: anything with a ``prefix``."""
    train, held = [], []
    for rk in rankings:
        key = "\x1e".join(m["content"] for m in rk.prefix).encode()
        u = int(hashlib.sha256(key).hexdigest()[:8], 16) / 0xFFFFFFFF
        (held if u < frac else train).append(rk)
    return train, held


def gold_scores(rk: "Ranking") -> list[float] | None:
    """Gold score of each completion: recorded at labelling time, else from the simulator's judge
    when the ranking carries a simulated task, else None (human data has no gold)."""
    if rk.meta.get("gold") is not None:
        return list(rk.meta["gold"])
    if "task" not in rk.meta:
        return None
    try:
        from chatrlhf.simulate import judge
    except ImportError:
        return None
    return [float(judge(rk.prefix, c, rk.meta).total) for c in rk.completions]
