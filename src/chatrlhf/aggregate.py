"""Inter-annotator agreement and rank aggregation for K-wise rankings of one completion set.

Consumes rank vectors (``ranks[i]`` = rank of completion ``i``, 0 best, equal = tie, as in
``schema.Ranking``) and produces:

- ``agreement(tasks)``: pairwise agreement, overall and per annotator. For every task, every two
  annotators who both ranked it and every pair of completions, they agree when they order the pair
  the same way or both tie it. An annotator's score counts the pairs they share with anyone else.
- ``ranked_pairs(rank_vectors)``: Tideman's ranked pairs; a Condorcet winner always comes first and
  the result never contains a cycle.
- ``bradley_terry(rank_vectors)``: Bradley–Terry strengths fitted by Hunter's (2004) MM
  iterations; a tie counts as half a win for each side.
- ``aggregate(rank_vectors, method)``: either, as one rank vector with ties.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Hashable, Mapping, Sequence

import numpy as np

Ranks = Sequence[int]


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


@dataclass
class Agreement:
    overall: float | None  # None when no two annotators share a task
    per_annotator: dict[Hashable, float] = field(default_factory=dict)
    pairs: int = 0  # (annotator pair, item pair) comparisons behind ``overall``
    per_annotator_pairs: dict[Hashable, int] = field(default_factory=dict)


def agreement(tasks: Mapping[Hashable, Mapping[Hashable, Ranks]]) -> Agreement:
    """``tasks[task_id][annotator] = ranks``; see the module docstring for the definition."""
    agree_n, total_n = 0, 0
    per_agree: dict[Hashable, int] = {}
    per_total: dict[Hashable, int] = {}
    for by_annotator in tasks.values():
        for a, b in combinations(sorted(by_annotator, key=str), 2):
            ra, rb = by_annotator[a], by_annotator[b]
            if len(ra) != len(rb):
                raise ValueError(f"annotators {a!r} and {b!r} ranked different numbers of items")
            for i, j in combinations(range(len(ra)), 2):
                same = _sign(ra[i] - ra[j]) == _sign(rb[i] - rb[j])
                agree_n += same
                total_n += 1
                for who in (a, b):
                    per_agree[who] = per_agree.get(who, 0) + same
                    per_total[who] = per_total.get(who, 0) + 1
    return Agreement(
        overall=agree_n / total_n if total_n else None,
        per_annotator={w: per_agree[w] / per_total[w] for w in per_total},
        pairs=total_n,
        per_annotator_pairs=dict(per_total),
    )


def preference_matrix(rank_vectors: Sequence[Ranks]) -> np.ndarray:
    """``P[i, j]`` = number of rankings that put ``i`` strictly above ``j``."""
    k = _common_k(rank_vectors)
    p = np.zeros((k, k), dtype=np.int64)
    for ranks in rank_vectors:
        r = np.asarray(ranks)
        p += r[:, None] < r[None, :]
    return p


def _common_k(rank_vectors: Sequence[Ranks]) -> int:
    if not rank_vectors:
        raise ValueError("need at least one ranking to aggregate")
    ks = {len(r) for r in rank_vectors}
    if len(ks) != 1:
        raise ValueError(f"rankings cover different numbers of items: {sorted(ks)}")
    return ks.pop()


def _reaches(edges: set[tuple[int, int]], src: int, dst: int) -> bool:
    seen, todo = {src}, [src]
    while todo:
        u = todo.pop()
        if u == dst:
            return True
        for a, b in edges:
            if a == u and b not in seen:
                seen.add(b)
                todo.append(b)
    return False


def _layers(k: int, edges: set[tuple[int, int]]) -> list[int]:
    """Ranks from a DAG: items with no remaining predecessor share the next rank."""
    ranks, left, level = [0] * k, set(range(k)), 0
    while left:
        top = {i for i in left if not any(b == i and a in left for a, b in edges)}
        for i in top:
            ranks[i] = level
        left -= top
        level += 1
    return ranks


def ranked_pairs(rank_vectors: Sequence[Ranks]) -> list[int]:
    """Tideman: lock majorities from strongest to weakest unless one would close a cycle.

    Pairs are sorted by margin (then by winning votes, then by index, so the result is
    deterministic); pairs with a zero margin are never locked and so may come out tied.
    """
    p = preference_matrix(rank_vectors)
    k = len(p)
    majorities = [(int(p[i, j] - p[j, i]), int(p[i, j]), i, j)
                  for i in range(k) for j in range(k) if p[i, j] > p[j, i]]
    majorities.sort(key=lambda m: (-m[0], -m[1], m[2], m[3]))
    locked: set[tuple[int, int]] = set()
    for _, _, i, j in majorities:
        if not _reaches(locked, j, i):
            locked.add((i, j))
    return _layers(k, locked)


def bradley_terry(rank_vectors: Sequence[Ranks], *, prior: float = 0.0, iters: int = 500,
                  tol: float = 1e-10) -> np.ndarray:
    """Bradley–Terry log-strengths (mean 0) by MM: ``w_i <- W_i / sum_j n_ij / (w_i + w_j)``.

    ``prior`` adds that many tied virtual comparisons between every pair, which keeps the estimate
    finite when an item never wins or never loses (the plain MLE then diverges).
    """
    k = _common_k(rank_vectors)
    p = preference_matrix(rank_vectors).astype(float)
    ties = np.zeros((k, k))
    for ranks in rank_vectors:
        r = np.asarray(ranks)
        ties += r[:, None] == r[None, :]
    np.fill_diagonal(ties, 0.0)
    wins = p + 0.5 * ties + 0.5 * prior * (1 - np.eye(k))  # (K, K) wins of i over j
    n = wins + wins.T  # (K, K) comparisons between i and j
    w_total = wins.sum(axis=1)  # (K,)
    w = np.ones(k)
    for _ in range(iters):
        denom = (n / (w[:, None] + w[None, :])).sum(axis=1)
        new = np.where(denom > 0, w_total / np.where(denom > 0, denom, 1.0), w)
        new = np.maximum(new, 1e-300)  # an item with no wins at all tends to 0; keep logs finite
        new /= np.exp(np.log(new).mean())
        if np.max(np.abs(new - w)) < tol:
            w = new
            break
        w = new
    return np.log(w)


def scores_to_ranks(scores: Sequence[float], tol: float = 1e-6) -> list[int]:
    """Dense ranks, highest score first; scores within ``tol`` of each other tie."""
    levels: list[float] = []
    for s in sorted(scores, reverse=True):
        if not levels or levels[-1] - s > tol:
            levels.append(s)
    return [next(n for n, lv in enumerate(levels) if lv - s <= tol) for s in scores]


def aggregate(rank_vectors: Sequence[Ranks], method: str = "ranked_pairs") -> list[int]:
    """Several rankings of one completion set -> one rank vector (ties allowed)."""
    if method == "ranked_pairs":
        return ranked_pairs(rank_vectors)
    if method == "bradley_terry":
        return scores_to_ranks(bradley_terry(rank_vectors, prior=0.1).tolist())
    raise ValueError(f"unknown aggregation method {method!r}: use ranked_pairs or bradley_terry")
