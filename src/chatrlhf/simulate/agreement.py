"""Agreement report: how often simulated annotators agree with the gold judge and with each other.

Consumes an ``AnnotatorConfig`` and ranking sets (fresh simulator candidate sets, or the prefixes
and completions of an existing rankings.jsonl, e.g. one over policy samples); produces a plain-text
table, overall and per family. Agreement counts strictly ordered pairs, as in AlpacaFarm; humans
agree with each other about 65-73% of the time.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

from chatrlhf.schema import Ranking, read_jsonl
from chatrlhf.simulate.annotators import (
    Annotator, AnnotatorConfig, agreement_with_gold, gold_ranks, inter_annotator_agreement,
)
from chatrlhf.simulate.export import RANKED_FAMILIES, candidate_set
from chatrlhf.simulate.families import FAMILIES
from chatrlhf.simulate.tasks import generate_tasks


def ranking_sets(n_per_family: int, seed: int, k: int = 4) -> list[Ranking]:
    """Unranked simulator candidate sets (ranks all 0) to be ranked by annotators."""
    rng = random.Random(f"{seed}:agreement")
    out = []
    for conv in generate_tasks(seed, n_per_family, "train", RANKED_FAMILIES):
        texts, names = candidate_set(conv, k, rng)
        out.append(Ranking(conv.messages, texts, [0] * len(texts), meta={**conv.meta, "strategies": names}))
    return out


def measure(sets: list[Ranking], cfg: AnnotatorConfig, seed: int) -> dict[str, dict[str, float]]:
    """Agreement figures, overall ("all") and per family, for two independent annotators."""
    rng_a, rng_b = random.Random(f"{seed}:a"), random.Random(f"{seed}:b")
    ann = Annotator(cfg)
    a = [ann.rank(s.prefix, s.completions, s.meta, rng_a) for s in sets]
    b = [ann.rank(s.prefix, s.completions, s.meta, rng_b) for s in sets]
    gold = [gold_ranks(s) for s in sets]
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(sets):
        groups["all"].append(i)
        groups[s.meta.get("family", "?")].append(i)
    out = {}
    for name, idx in groups.items():
        ga = agreement_with_gold([a[i] for i in idx], gold=[gold[i] for i in idx])
        gb = agreement_with_gold([b[i] for i in idx], gold=[gold[i] for i in idx])
        out[name] = {"gold": (ga + gb) / 2, "inter": inter_annotator_agreement([a[i] for i in idx],
                                                                                [b[i] for i in idx]),
                     "sets": len(idx)}
    return out


def agreement_report(cfg: AnnotatorConfig, rankings_path: str | Path | None = None,
                     n_per_family: int = 30, seed: int = 0) -> str:
    if rankings_path:
        sets = read_jsonl(rankings_path, Ranking)
        source = f"{rankings_path} ({len(sets)} sets)"
        file_gold = agreement_with_gold(sets)
    else:
        sets = ranking_sets(n_per_family, seed)
        source = f"simulator candidate sets ({len(sets)} sets, K=4)"
        file_gold = None
    res = measure(sets, cfg, seed)
    lines = [f"annotator: temperature={cfg.temperature} length_bias={cfg.length_bias} "
             f"sycophancy_bias={cfg.sycophancy_bias}", f"ranking sets: {source}"]
    if file_gold is not None:
        lines.append(f"the file's own annotator vs gold: {file_gold:.3f}")
    lines.append(f"{'family':<16}{'sets':>6}{'vs gold':>10}{'inter':>10}")
    order = ["all"] + [f for f in FAMILIES if f in res] + sorted(set(res) - set(FAMILIES) - {"all"})
    for name in order:
        r = res[name]
        lines.append(f"{name:<16}{r['sets']:>6}{r['gold']:>10.3f}{r['inter']:>10.3f}")
    return "\n".join(lines)
