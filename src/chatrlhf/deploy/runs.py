"""Register a pipeline run directory's outputs as model versions, with lineage and provenance.

Consumes a run directory written by ``chatrlhf pipeline`` (see ``chatrlhf.pipeline``) and a Store.
Produces one version per finished stage, named ``<prefix>-<stage>``::

    base  ->  sft  ->  ppo1  ->  ppo2 ...      (parent links: each PPO round starts from the last)
              sft  ->  rm1, rm2 ...            (each round's reward model, trained from SFT)

Each version's ``meta`` holds ``config`` (its section of the run's ``config.yaml``, less the input
and output paths the pipeline fills in), ``data`` (``{file: sha256}`` of the training data files
the stage read, relative to the run directory: the stage's ``inputs.json`` where it has one, so an
adversarial round's red-team files are there too) and ``eval`` (``gates.metrics_from_run``: its
evaluation, with ``win_rate_vs`` keyed by version name);
a PPO version names its reward model in ``meta["reward_model"]``. Only stages with a ``DONE``
manifest are registered. Running it again after more rounds finished adds the new versions and
refreshes the meta of the others (an evaluation written since is picked up).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from chatrlhf.deploy import registry
from chatrlhf.deploy.gates import metrics_from_run


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def data_hashes(run_dir: Path, files: list[str]) -> dict[str, str]:
    """``{file: sha256}`` of those of ``files`` (relative to ``run_dir``) that exist."""
    return {f: sha256_file(run_dir / f) for f in files if (run_dir / f).is_file()}


def stage_inputs(run_dir: Path, stage_dir: str, guess: list[str]) -> dict[str, str]:
    """``{file: sha256}`` of what the stage trained on: what the pipeline recorded as it started
    (``train_utils.read_inputs``: every file, red-team data included, hashed as read; paths inside
    the run directory relative to it), else ``data_hashes`` of ``guess`` (runs from before the record)."""
    from chatrlhf.train_utils import read_inputs

    recorded = read_inputs(run_dir / stage_dir)
    if recorded is None:
        return data_hashes(run_dir, guess)
    out: dict[str, str] = {}
    for files in recorded.values():
        for f, sha in files.items():
            p = Path(f).resolve()
            out[str(p.relative_to(run_dir)) if p.is_relative_to(run_dir) else str(p)] = sha
    return out


def _suffix(r: int) -> str:
    return "" if r == 1 else f"-{r}"  # as pipeline.suffix: round 1's stage dirs have none


def _done(run_dir: Path, stage_dir: str) -> bool:
    return (run_dir / stage_dir / "DONE").exists()


def _eval(run_dir: Path, stage: str, prefix: str) -> dict[str, Any]:
    m = metrics_from_run(run_dir, stage)
    if m is None:
        return {}
    m["win_rate_vs"] = {f"{prefix}-{k}": w for k, w in m["win_rate_vs"].items()}
    return m


# Fields the pipeline fills in as each stage starts: config.yaml holds their defaults, not what ran.
# The version records them better: its path, its parent and (for inputs) its data hashes.
PATH_FIELDS = ("model", "data", "instructions", "rankings", "ratings", "demos", "policy", "reference", "reward_model",
               "prompts", "ptx_data", "out_dir")


def _section(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in (cfg.get(name) or {}).items() if k not in PATH_FIELDS}


def _rounds(run_dir: Path) -> int:
    r = 0
    while (run_dir / f"reward{_suffix(r + 1)}").is_dir() or (run_dir / f"ppo{_suffix(r + 1)}").is_dir():
        r += 1
    return r


def plan(run_dir: str | Path, prefix: str) -> list[dict[str, Any]]:
    """The versions ``register_run`` adds, parents first: dicts of register()'s arguments."""
    import yaml

    run = Path(run_dir).resolve()
    cfg_path = run / "config.yaml"
    if not cfg_path.exists():
        raise registry.RegistryError(f"{run} has no config.yaml: not a pipeline run directory")
    cfg = yaml.safe_load(cfg_path.read_text()) or {}
    run_wide = {k: cfg.get(k) for k in ("base_model", "seed", "labels")}
    distilled = ["distill/general_demos.jsonl"]
    sft_data = ["data/sft_dialogs.jsonl", "data/sft_instructions.jsonl", *distilled]
    out = [{"name": f"{prefix}-base", "path": str(cfg.get("base_model", "")), "kind": "base", "parent": None,
            "meta": {"config": {"base_model": cfg.get("base_model")}, "data": {}, "eval": _eval(run, "base", prefix)}}]
    if not _done(run, "sft"):
        return out
    out.append({"name": f"{prefix}-sft", "path": str(run / "sft"), "kind": "sft", "parent": f"{prefix}-base",
                "meta": {"config": {**run_wide, "sft": _section(cfg, "sft"), "distill": _section(cfg, "distill")},
                         "data": data_hashes(run, sft_data),
                         "eval": _eval(run, "sft", prefix)}})
    parent = f"{prefix}-sft"
    rankings = ["data/rankings.jsonl"] if cfg.get("sim_rankings", True) else []
    for r in range(1, _rounds(run) + 1):
        s = _suffix(r)
        if cfg.get("labels", "sim") == "sim" or r == 1:  # as the pipeline: an external file once
            rankings.append(f"compare{s}/rankings.jsonl")
        if not _done(run, f"reward{s}"):
            break
        rm = f"{prefix}-rm{r}"
        rm_eval = run / f"reward{s}" / "eval.json"
        rm_scores = {}
        if rm_eval.exists():
            rm_scores = {k: v for k, v in json.loads(rm_eval.read_text()).items() if not isinstance(v, (dict, list))}
        out.append({"name": rm, "path": str(run / f"reward{s}"), "kind": "rm", "parent": f"{prefix}-sft",
                    "meta": {"config": {**run_wide, "reward": _section(cfg, "reward")},
                             "data": stage_inputs(run, f"reward{s}", [*rankings, "data/demos.jsonl"]),
                             "eval": rm_scores}})
        if not _done(run, f"ppo{s}"):
            break
        name = f"{prefix}-ppo{r}"
        out.append({"name": name, "path": str(run / f"ppo{s}"), "kind": "ppo", "parent": parent,
                    "meta": {"config": {**run_wide, "ppo": _section(cfg, "ppo")}, "reward_model": rm,
                             "data": stage_inputs(run, f"ppo{s}", ["data/ppo_prompts.jsonl", "data/demos.jsonl", *distilled]),
                             "eval": _eval(run, f"ppo{r}", prefix)}})
        parent = name
    return out


def register_run(store: Any, run_dir: str | Path, *, prefix: str | None = None) -> list[Any]:
    """Register (or refresh the meta of) every finished stage of ``run_dir``; returns the versions,
    parents first. ``prefix`` defaults to the run directory's name."""
    prefix = prefix or Path(run_dir).resolve().name
    versions = []
    for v in plan(run_dir, prefix):
        mv = store.get_model_version(v["name"])
        if mv is None:
            mv = registry.register(store, v["name"], v["path"], kind=v["kind"], parent=v["parent"], meta=v["meta"])
        elif mv.path != v["path"]:
            raise registry.RegistryError(f"model version {v['name']!r} exists with another path: {mv.path} "
                                         f"(choose another --prefix)")
        else:
            mv = store.update_model_meta(v["name"], v["meta"])
        versions.append(mv)
    return versions
