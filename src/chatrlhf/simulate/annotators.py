"""Simulated annotators (K-wise rankings) and a simulated chat user (thumbs up/down).

Consumes a conversation prefix, candidate replies and the prefix's ``meta``; produces
``schema.Ranking`` records and +1/-1 ratings, exactly what human labelers produce in the workspace
and the chat UI. Both start from the gold judge and add the distortions real raters show:

- Bradley-Terry / Plackett-Luce noise: utility ``u_i = gold_i + biases``; a ranking is sampled by
  sorting ``u_i / temperature + Gumbel noise`` (the Gumbel-max form of Plackett-Luce, whose pairwise
  marginals are Bradley-Terry: P(i > j) = sigmoid((u_i - u_j) / temperature)).
- length bias: ``length_bias * log2(1 + words)``, a preference for longer replies;
- sycophancy bias: ``sycophancy_bias`` added to replies that agree with or flatter the user.

Helpers report agreement with gold and between annotators over strictly ordered pairs, the
measure AlpacaFarm and InstructGPT report (humans agree about 65-73% of the time).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from chatrlhf.schema import Message, Ranking
from chatrlhf.simulate.judge import agrees_with_user, flatters, is_refusal, judge

Judge = Callable[[list[Message], str, dict[str, Any]], Any]


@dataclass
class AnnotatorConfig:
    name: str = "sim"
    # Bradley-Terry temperature on the gold scale [0, 1]; larger = noisier rankings. Agreement
    # depends on how far apart the replies are (bench/agreement.py): with the defaults, about 84%
    # with gold and 74% between annotators on simulator candidate sets (wide gaps), about 70% and
    # 55% on samples of the base model (narrow gaps). Human labelers agree 65-73% of the time on
    # policy samples, which lie between the two.
    temperature: float = 0.25
    # Utility added per doubling of the reply's word count.
    length_bias: float = 0.05
    # Utility added to a reply that agrees with or flatters the user.
    sycophancy_bias: float = 0.15
    # A set whose best gold score is below this is marked all_unacceptable.
    unacceptable_below: float = 0.3


class Annotator:
    """Ranks K completions like a (noisy, biased) human labeler would."""

    def __init__(self, cfg: AnnotatorConfig | None = None):
        self.cfg = cfg or AnnotatorConfig()

    def utility(self, reply: str, gold: float) -> float:
        """Biased, noise-free utility of a reply whose gold score is ``gold``."""
        u = gold + self.cfg.length_bias * math.log2(1 + len(reply.split()))
        if agrees_with_user(reply) or flatters(reply):
            u += self.cfg.sycophancy_bias
        return u

    def rank(self, prefix: list[Message], completions: Sequence[str], meta: dict[str, Any],
             rng: random.Random) -> Ranking:
        scores = [judge(prefix, c, meta) for c in completions]
        util = [self.utility(c, s.total) for c, s in zip(completions, scores)]
        t = max(self.cfg.temperature, 1e-6)
        # Gumbel-max sampling of a Plackett-Luce ranking; -log(-log U) is a standard Gumbel draw.
        keyed = [u / t - math.log(-math.log(rng.random() or 1e-12)) for u in util]
        order = sorted(range(len(completions)), key=lambda i: -keyed[i])
        ranks = [0] * len(completions)
        first_rank: dict[str, int] = {}
        for r, i in enumerate(order):
            # Identical texts tie: a labeler cannot prefer a reply over itself.
            ranks[i] = first_rank.setdefault(completions[i], r)
        flags = {i: ["harmful"] for i, s in enumerate(scores)
                 if meta.get("family") == "harmful" and s.criteria.get("harmless", 1.0) < 0.35}
        flags.update({i: flags.get(i, []) + ["over_refusal"] for i, c in enumerate(completions)
                      if meta.get("family") not in ("harmful", None) and is_refusal(c)})
        return Ranking(prefix=list(prefix), completions=list(completions), ranks=ranks,
                       annotator=self.cfg.name,
                       all_unacceptable=max(s.total for s in scores) < self.cfg.unacceptable_below,
                       flags=flags, meta=dict(meta))


@dataclass
class UserConfig:
    # Gold score at which a thumbs-up is a coin flip.
    threshold: float = 0.6
    temperature: float = 0.1
    # Added to a reply that agrees with or flatters the user: thumbs reward sycophancy.
    flattery_bias: float = 0.0


class SimulatedUser:
    """Gives +1/-1 on a served reply, from the gold score plus an optional flattery bias, and
    picks between two replies side by side on the same utility."""

    def __init__(self, cfg: UserConfig | None = None):
        self.cfg = cfg or UserConfig()

    def utility(self, messages: list[Message], reply: str, meta: dict[str, Any]) -> float:
        """Gold score minus the threshold, plus the flattery bias: > 0 leans towards a thumbs-up,
        and of two replies side by side the higher one is preferred (Bradley-Terry)."""
        u = judge(messages, reply, meta).total - self.cfg.threshold
        if agrees_with_user(reply) or flatters(reply):
            u += self.cfg.flattery_bias
        return u

    def p_up(self, messages: list[Message], reply: str, meta: dict[str, Any]) -> float:
        u = self.utility(messages, reply, meta)
        return 1.0 / (1.0 + math.exp(-u / max(self.cfg.temperature, 1e-6)))

    def p_prefers_first(self, messages: list[Message], a: str, b: str, meta: dict[str, Any]) -> float:
        """P(a is picked over b) = sigmoid((u_a - u_b) / temperature), the thumbs' own scale."""
        d = self.utility(messages, a, meta) - self.utility(messages, b, meta)
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, d / max(self.cfg.temperature, 1e-6)))))

    def thumbs(self, messages: list[Message], reply: str, meta: dict[str, Any], rng: random.Random) -> int:
        return 1 if rng.random() < self.p_up(messages, reply, meta) else -1


# ---------------------------------------------------------------- agreement
def _pair_orders(ranks: Sequence[float]) -> dict[tuple[int, int], int]:
    """For each index pair i < j with a strict order: +1 if i is better, -1 if j is."""
    out = {}
    for i in range(len(ranks)):
        for j in range(i + 1, len(ranks)):
            if ranks[i] != ranks[j]:
                out[(i, j)] = 1 if ranks[i] < ranks[j] else -1
    return out


def gold_ranks(ranking: Ranking, judge_fn: Judge = judge) -> list[float]:
    """Gold "ranks" of a ranking's completions (lower is better, equal scores tie)."""
    return [-judge_fn(ranking.prefix, c, ranking.meta).total for c in ranking.completions]


def agreement_with_gold(rankings: Iterable[Ranking], judge_fn: Judge = judge,
                        gold: Sequence[Sequence[float]] | None = None) -> float:
    """Share of pairs the annotator ordered the same way as the gold judge (gold ties skipped).

    ``gold[i]`` may give ranking i's gold ranks (``gold_ranks``) when they are already known.
    """
    agree = total = 0
    for n, r in enumerate(rankings):
        gold_order = _pair_orders(gold[n] if gold is not None else gold_ranks(r, judge_fn))
        mine = _pair_orders(r.ranks)
        for pair, g in gold_order.items():
            if pair in mine:
                total += 1
                agree += mine[pair] == g
    return agree / total if total else float("nan")


def inter_annotator_agreement(a: Sequence[Ranking], b: Sequence[Ranking]) -> float:
    """Share of pairs two annotators ordered the same way; ``a[i]`` and ``b[i]`` rank the same set."""
    agree = total = 0
    for ra, rb in zip(a, b, strict=True):
        if ra.completions != rb.completions:
            raise ValueError("inter-annotator agreement needs both annotators to rank the same completions")
        oa, ob = _pair_orders(ra.ranks), _pair_orders(rb.ranks)
        for pair, v in oa.items():
            if pair in ob:
                total += 1
                agree += ob[pair] == v
    return agree / total if total else float("nan")
