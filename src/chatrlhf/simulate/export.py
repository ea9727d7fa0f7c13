"""The simulate stage: write a run's data files from the simulator alone.

Consumes a ``SimulateConfig``; produces, under ``out_dir`` (a run's ``data/`` folder):

- ``demos.jsonl``     ``Conversation`` demonstrations (train split) ending on the ideal reply;
- ``prompts.jsonl``   ``Conversation`` prompts of both splits (``meta.split`` says which);
- ``rankings.jsonl``  ``Ranking`` records over simulator-made candidates (ideal, wrong, verbose,
                      adversarial...), ranked by a simulated annotator, so a reward model can be
                      trained before any policy exists (skipped when ``ranking_prompts_per_family=0``);
- ``manifest.json``   the config, record counts and each file's sha256.

Deterministic under ``seed``. A directory whose manifest matches the config is left as it is, so a
resumed pipeline skips this stage. Run it with ``chatrlhf simulate --out runs/<id>/data``.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from chatrlhf.schema import Conversation, Ranking, write_jsonl
from chatrlhf.simulate.adversarial import CANDIDATES
from chatrlhf.simulate.annotators import Annotator, AnnotatorConfig
from chatrlhf.simulate.families import FAMILIES, NO_IDEAL_FAMILIES
from chatrlhf.simulate.tasks import generate_tasks, make_demos

# How often each candidate strategy enters a ranking set: mostly realistic replies, some attacks.
CANDIDATE_WEIGHTS = {"ideal": 3.0, "flattering": 1.0, "verbose": 1.5, "hedged": 1.0, "wrong": 3.0,
                     "refuse_everything": 1.0, "buried_answer": 0.7, "repeat_question": 0.7, "empty": 0.3,
                     "wrapped_in_refusal": 0.7, "keyword_stuffing": 0.5,
                     # cave_right applies to one family in nine: weighted up to appear there.
                     "needless_clarify": 1.0, "cave_right": 4.0, "wrong_disclaimer": 1.0,
                     # Help after a refusal or disclaimer (issue 12): harmful family only, weighted up.
                     "refuse_then_comply": 2.0, "disclaimer_then_comply": 2.0, "fictional_wrapper": 1.5,
                     "clarify_harmful": 1.5,
                     # long, confident and wrong, as the base model answers (compare's "sim" slots too)
                     "long_wrong": 1.0}
# Bumped whenever the same config would now produce different files (new candidate strategies,
# templates...), so a resumed run does not keep data made by older simulator code.
SIMULATOR_VERSION = 4
# Families the simulator ranks candidates for: without an ideal reply, every candidate it could
# write is a bad one, which would teach the reward model nothing about a good answer.
RANKED_FAMILIES = tuple(f for f in FAMILIES if f not in NO_IDEAL_FAMILIES)
# Prompts for RL are drawn from a different seed stream than demonstrations.
PROMPT_SEED_OFFSET = 1_000_003


@dataclass
class SimulateConfig:
    seed: int = 0
    out_dir: str = "runs/sim/data"
    # Demonstrations per family (train split).
    demos_per_family: int = 60
    # Where a family needs another count, e.g. {"sounds_harmful": 80}: harmless requests with scary
    # words are answered in many ways while every refusal shares one shape, so a small model trained
    # on equal counts learns "scary word -> refuse" (see docs/training.md).
    family_demos: dict[str, int] = field(default_factory=dict)
    # Train prompts per family (for reward-model sampling and PPO rollouts).
    train_prompts_per_family: int = 40
    # Held-out prompts per family (eval split: unseen templates and entities).
    eval_prompts_per_family: int = 20
    # Prompts per family with a ranked candidate set in rankings.jsonl; 0 writes no rankings.
    ranking_prompts_per_family: int = 20
    # Completions per ranking (K).
    k: int = 4
    annotator: AnnotatorConfig = field(default_factory=AnnotatorConfig)


def candidate_set(conv: Conversation, k: int, rng: random.Random, weights: dict[str, float] | None = None,
                  avoid: Sequence[str] = (), tries_per: int = 50) -> tuple[list[str], list[str]]:
    """Up to ``k`` distinct candidate replies for a prompt (none in ``avoid``) and the strategy that
    made each, drawn by ``weights`` (default ``CANDIDATE_WEIGHTS``) in at most ``tries_per * k`` draws."""
    weights = weights or CANDIDATE_WEIGHTS
    names = list(weights)
    texts: list[str] = []
    used: list[str] = []
    for _ in range(tries_per * k):
        if len(texts) == k:
            break
        name = rng.choices(names, weights=[weights[n] for n in names])[0]
        text = CANDIDATES[name](conv, rng)
        if text is not None and text not in texts and text not in avoid:
            texts.append(text)
            used.append(name)
    return texts, used


def make_rankings(seed: int, n_per_family: int, k: int, annotator: Annotator,
                  split: str = "train") -> list[Ranking]:
    """Rankings by ``annotator`` over simulator candidates for ``n_per_family`` prompts per family
    (of ``RANKED_FAMILIES``)."""
    rng = random.Random(f"{seed}:rankings:{split}")
    out = []
    for conv in generate_tasks(seed + 2 * PROMPT_SEED_OFFSET, n_per_family, split, RANKED_FAMILIES):
        texts, names = candidate_set(conv, k, rng)
        ranking = annotator.rank(conv.messages, texts, conv.meta, rng)
        ranking.meta["strategies"] = names
        out.append(ranking)
    return out


def _config_dict(cfg: SimulateConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    d.pop("out_dir")  # where the files go does not change what they contain
    return d


def run(cfg: SimulateConfig, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Write the data files and return the manifest (see the module docstring)."""
    out = Path(out_dir or cfg.out_dir)
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if (old.get("config") == _config_dict(cfg) and old.get("simulator_version") == SIMULATOR_VERSION
                and all((out / f).exists() for f in old["files"])):
            return old
    out.mkdir(parents=True, exist_ok=True)
    demos = make_demos(cfg.seed, cfg.demos_per_family, "train", counts=cfg.family_demos)
    prompts = (generate_tasks(cfg.seed + PROMPT_SEED_OFFSET, cfg.train_prompts_per_family, "train")
               + generate_tasks(cfg.seed + PROMPT_SEED_OFFSET, cfg.eval_prompts_per_family, "eval"))
    files = {"demos.jsonl": (demos, write_jsonl(out / "demos.jsonl", demos)),
             "prompts.jsonl": (prompts, write_jsonl(out / "prompts.jsonl", prompts))}
    if cfg.ranking_prompts_per_family > 0:
        rankings = make_rankings(cfg.seed, cfg.ranking_prompts_per_family, cfg.k, Annotator(cfg.annotator))
        files["rankings.jsonl"] = (rankings, write_jsonl(out / "rankings.jsonl", rankings))
    elif (out / "rankings.jsonl").exists():
        (out / "rankings.jsonl").unlink()  # stale: from a run with another config
    manifest = {
        "stage": "simulate",
        "simulator_version": SIMULATOR_VERSION,
        "config": _config_dict(cfg),
        "families": list(FAMILIES),
        "files": {name: {"records": len(recs), "sha256": sha} for name, (recs, sha) in files.items()},
    }
    tmp = manifest_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(manifest_path)
    return manifest
