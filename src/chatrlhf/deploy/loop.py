"""One round of improvement from product feedback: ``chatrlhf loop``.

Consumes a Store (``LoopConfig.db``) whose registry serves a version, the feedback that arrived
since the previous round (``deploy.feedback``), and the pipeline run directory the served lineage
came from (its held-out prompts, demonstrations, train prompts and earlier rankings). Produces::

    <loop_dir>/
      state.json           the watermark of the feedback consumed, every round's rankings, decisions
      round-N/
        context.json       what this round started from: served version, SFT, run directory
        feedback/          rankings.jsonl, ratings.jsonl (new), prompts.jsonl, summary.json (counts by source)
        reward/            RM from the lineage's SFT on earlier + every loop round's rankings, and
                           every round's single thumbs, pointwise (``pointwise``)
        ppo/               PPO from the served version's weights, KL-anchored to SFT
        eval/              current vs candidate vs SFT on the run's held-out prompts
        decision/          DONE after registration and the gates; decision.md (also in round-N/)
        timings.json       wall seconds per stage

The candidate ``<prefix>-rN`` (kind ``loop``, parent = the served version) and its reward model
``<prefix>-rN-rm`` (kind ``rm``, parent = SFT) are registered; the gates (``deploy.gates``) compare
candidate and current on this round's evaluation, and the candidate is promoted or rejected.

Stages are the pipeline's (``pipeline.Runner``: a ``DONE`` manifest per stage), so a killed round
resumes where it stopped, with the feedback it had collected. The watermark moves when a round
finishes, whatever the decision: a rejected candidate's rankings still train every later round's
RM (``state.json`` keeps them), so no feedback is lost. Too little new feedback (fewer than
``min_rankings`` rankings and, with ``pointwise``, fewer than ``min_ratings`` thumbs) fails before
anything is written.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from chatrlhf.deploy.gates import GateConfig
from chatrlhf.evaluate import EvalConfig
from chatrlhf.ppo import PPOConfig
from chatrlhf.reward import RewardConfig

# sections of a pipeline preset (tiny, cpu, gpu) that a loop reads
PRESET_KEYS = ("seed", "threads", "outside_data", "reward", "ppo", "eval")
SIGNALS = ("all", "thumbs")  # LoopConfig.signal


@dataclass
class LoopConfig:
    loop_dir: str = "runs/loop"  # state.json and round-N/ directories
    db: str = ""  # store URL or SQLite path ("" = $CHATRLHF_DB or the user data dir)
    base_run: str = ""  # pipeline run directory of the served lineage ("" = found from the registry)
    prefix: str = ""  # candidate names <prefix>-rN ("" = the loop directory's name)
    min_rankings: int = 8  # fewer new rankings than this (and fewer ratings than min_ratings): fail, change nothing
    min_ratings: int = 32  # with pointwise: this many new thumbs are enough for a round without rankings
    # every thumb also trains the RM pointwise (reward.rating_loss), not only the few that pair
    pointwise: bool = True
    # "all": every source below, and the RM also learns the served RM's rankings. "thumbs": only
    # what users' thumbs pair (regenerations, same contexts), nothing earlier: an update trained to
    # win thumbs, as the one that made ChatGPT sycophantic (the gates must catch it; docs/deploy.md).
    signal: str = "all"
    same_prompt: bool = True  # also pair replies to the same exact context across conversations
    workspace: bool = True  # include trainer workspace rankings
    promote: bool = True  # False: register and decide, but leave what is served alone
    actor: str = "loop"  # kept in the deployment log
    seed: int = 0
    threads: int = 0
    outside_data: str = ""  # public data written by people, for the outside gates ("" = skip)
    gates: GateConfig = field(default_factory=GateConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


class LoopError(RuntimeError):
    """A loop round that cannot run; the message says why and what to do."""


def load(preset: str | None = "cpu", overrides: list[str] | tuple[str, ...] = ()) -> LoopConfig:
    """Defaults <- the preset's reward/ppo/eval sections (and seed, threads) <- dotted overrides."""
    from omegaconf import OmegaConf

    from chatrlhf.config import preset_path

    cfg = OmegaConf.structured(LoopConfig)
    if preset:
        p = OmegaConf.load(preset_path(preset))
        cfg = OmegaConf.merge(cfg, {k: p[k] for k in PRESET_KEYS if k in p})
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


# ----------------------------------------------------------------------------- state and lineage


def read_state(loop_dir: Path) -> dict[str, Any]:
    path = loop_dir / "state.json"
    state = json.loads(path.read_text()) if path.exists() else {}
    return {"watermark": {}, "rounds": [], "open": None, **state}


def run_dir_of(store: Any, name: str) -> Path | None:
    """The pipeline run directory of ``name``'s lineage: a ``meta["run_dir"]``, or the parent of a
    version's path that holds a ``config.yaml`` (what ``register-run`` registers), newest first."""
    from chatrlhf.deploy import registry

    for mv in reversed(registry.lineage(store, name)):
        if mv.meta.get("run_dir"):
            return Path(mv.meta["run_dir"])
        parent = Path(mv.path).parent
        if mv.path and (parent / "config.yaml").exists():
            return parent
    return None


def earlier_rankings(store: Any, current: Any, run_dir: Path) -> list[str]:
    """The rankings the served version's reward model was trained on (not counting the loop's own,
    which ``state.json`` keeps): from its RM's meta, else the run directory's pipeline layout."""
    rm_name = current.meta.get("reward_model")
    rm = store.get_model_version(rm_name) if rm_name else None
    if rm is not None and "base_rankings" in rm.meta:  # a loop round's RM
        return list(rm.meta["base_rankings"])
    if rm is not None:
        files = [str(run_dir / k) for k in rm.meta.get("data", {}) if k.endswith("rankings.jsonl")]
    else:
        files = [str(run_dir / "data" / "rankings.jsonl"), *map(str, sorted(run_dir.glob("compare*/rankings.jsonl")))]
    return [f for f in files if Path(f).is_file()]


def context(store: Any, cfg: LoopConfig) -> dict[str, Any]:
    """What a round starts from; raises ``LoopError`` when something is missing."""
    from chatrlhf.deploy import registry

    served = registry.current(store)
    if served is None:
        raise LoopError("nothing is served: register and promote a version first "
                        "(chatrlhf models register-run RUN_DIR; chatrlhf models promote NAME --no-gate --report ...)")
    current = registry.get(store, served.version)
    sft = next((mv for mv in reversed(registry.lineage(store, current.name)) if mv.kind == "sft"), None)
    if sft is None:
        raise LoopError(f"the lineage of {current.name!r} has no version of kind 'sft' to start the RM from "
                        f"and anchor PPO to")
    run_dir = Path(cfg.base_run) if cfg.base_run else run_dir_of(store, current.name)
    if run_dir is None:
        raise LoopError(f"cannot find the pipeline run directory of {current.name!r}: pass --base-run RUN_DIR")
    prompts = run_dir / "data" / "prompts.jsonl"
    if not prompts.is_file():
        raise LoopError(f"{run_dir} has no data/prompts.jsonl (held-out and train prompts): not a pipeline run")
    return {"current": current.name, "current_path": current.path, "sft": sft.name, "sft_path": sft.path,
            "run_dir": str(run_dir.resolve()), "earlier_rankings": earlier_rankings(store, current, run_dir)}


# ----------------------------------------------------------------------------- stages


def write_feedback(out: Path, fb: Any) -> dict[str, Any]:
    from chatrlhf.schema import write_jsonl
    from chatrlhf.train_utils import mark_done, write_json

    shas = {"rankings.jsonl": write_jsonl(out / "rankings.jsonl", fb.rankings),
            "ratings.jsonl": write_jsonl(out / "ratings.jsonl", fb.ratings),
            "prompts.jsonl": write_jsonl(out / "prompts.jsonl", fb.prompts)}
    summary = {**fb.counts, "watermark": fb.watermark.as_dict(), "sha256": shas}
    write_json(out / "summary.json", summary)
    mark_done(out, {"stage": "feedback", "rankings": fb.counts["rankings"]})
    return summary


def merge_loop_rankings(files: list[str], out: Path, cls: Any = None) -> str:
    """Every loop round's rankings (or ratings: ``cls=schema.Rating``) in one file, a later
    version of a set (same ``loop_key``) replacing the earlier one; returns its sha256. A ratings
    file that does not exist (a round from before ratings were kept) adds nothing; a missing
    rankings file is an error."""
    from chatrlhf.schema import Ranking, Rating, read_jsonl, write_jsonl

    by_key: dict[str, Any] = {}
    for f in files:
        if cls is Rating and not Path(f).is_file():
            continue
        for r in read_jsonl(f, cls or Ranking):
            by_key.pop(r.meta["loop_key"], None)  # re-inserted last: a newer set keeps file order
            by_key[r.meta["loop_key"]] = r
    return write_jsonl(out, by_key.values())


def train_prompts(run_dir: Path, out: Path) -> Path:
    """The run's train-split prompts (PPO never sees a held-out prompt)."""
    from chatrlhf.schema import Conversation, read_jsonl, write_jsonl

    write_jsonl(out, [c for c in read_jsonl(run_dir / "data" / "prompts.jsonl", Conversation)
                      if c.meta.get("split", "train") == "train"])
    return out


def version_eval(results: dict[str, Any], key: str, names: dict[str, str]) -> dict[str, Any]:
    """``gates.metrics_from_results`` for one model of the round's evaluation, ``win_rate_vs`` by
    version name."""
    from chatrlhf.deploy.gates import metrics_from_results

    m = metrics_from_results(results, key)
    m["win_rate_vs"] = {names[k]: w for k, w in m["win_rate_vs"].items() if k in names}
    return m


def register_and_gate(store: Any, cfg: LoopConfig, ctx: dict[str, Any], rd: Path, n: int,
                      rm_rankings: list[str], log: Callable[[str], None]) -> dict[str, Any]:
    """Register the round's RM and candidate, run the gates, promote or reject; the decision."""
    from chatrlhf.deploy import gates, registry
    from chatrlhf.deploy.runs import sha256_file
    from chatrlhf.train_utils import mark_done, read_json

    prefix = cfg.prefix or Path(cfg.loop_dir).resolve().name
    cand, rm = f"{prefix}-r{n}", f"{prefix}-r{n}-rm"
    results = read_json(rd / "eval" / "results.json")
    names = {"current": ctx["current"], "candidate": cand, "sft": ctx["sft"]}
    cand_eval, cur_eval = version_eval(results, "candidate", names), version_eval(results, "current", names)
    common = {"run_dir": ctx["run_dir"], "loop": {"round": n, "dir": str(rd)}}
    rm_eval = {k: v for k, v in read_json(rd / "reward" / "eval.json").items() if not isinstance(v, (dict, list))}
    registry.register(store, rm, str(rd / "reward"), kind="rm", parent=ctx["sft"], meta={
        **common, "config": {"reward": _section(cfg.reward)}, "eval": rm_eval,
        "base_rankings": [] if cfg.signal == "thumbs" else ctx["earlier_rankings"], "data": {f: sha256_file(Path(f)) for f in rm_rankings}})
    prompts = [str(rd / "feedback" / "prompts.jsonl"), str(rd / "train_prompts.jsonl")]
    mv = registry.register(store, cand, str(rd / "ppo"), kind="loop", parent=ctx["current"], meta={
        **common, "reward_model": rm, "eval": cand_eval, "eval_current": cur_eval,
        "feedback": read_json(rd / "feedback" / "summary.json"),
        "config": {"loop": {k: v for k, v in asdict(cfg).items() if k not in ("reward", "ppo", "eval")},
                   "ppo": _section(cfg.ppo), "eval": _section(cfg.eval)},
        "data": {f: sha256_file(Path(f)) for f in [*prompts, *cfg.ppo.ptx_data]}})
    if "gate" in mv.meta:  # decided before the round was killed: keep that decision
        passed, report = mv.meta["gate"]["promote"], mv.meta["gate"]["report"]
    else:
        served = registry.current(store)
        if served is None or served.version != ctx["current"]:
            raise LoopError(f"the served version changed from {ctx['current']!r} to "
                            f"{served.version if served else None!r} during the round; {cand!r} was evaluated "
                            f"against {ctx['current']!r}: gate it by hand (chatrlhf models promote {cand})")
        cand_in = {**cand_eval, "head_to_head_win_rate": cand_eval["win_rate_vs"].get(ctx["current"])}
        d = gates.gate_and_promote(store, cand, cfg.gates, actor=cfg.actor, dry_run=not cfg.promote,
                                   note=f"chatrlhf loop round {n} ({rd})", metrics=(cand_in, cur_eval))
        passed, report = d.promote, d.report()
    promoted = passed and cfg.promote
    if not cfg.promote:
        verdict = f"would be {'promoted' if passed else 'refused'} (dry run: still serving {ctx['current']})"
    else:
        verdict = "promoted" if promoted else f"refused, still serving {ctx['current']}"
    text = f"# Loop round {n}: {cand} vs {ctx['current']}: {verdict}\n\n{report}"
    for p in (rd / "decision.md", rd / "decision" / "decision.md"):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    log(text.rstrip())
    out = {"candidate": cand, "reward_model": rm, "current": ctx["current"], "promoted": promoted}
    mark_done(rd / "decision", out)
    return out


def _section(c: Any) -> dict[str, Any]:
    from chatrlhf.deploy.runs import PATH_FIELDS

    return {k: v for k, v in asdict(c).items() if k not in PATH_FIELDS}


# ----------------------------------------------------------------------------- the round


def run_loop(cfg: LoopConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """One round (or the rest of an interrupted one); returns its summary (see the module docstring)."""
    from chatrlhf import evaluate, ppo, reward
    from chatrlhf.config import to_yaml
    from chatrlhf.deploy import feedback
    from chatrlhf.pipeline import Runner
    from chatrlhf.store import Store
    from chatrlhf.train_utils import is_done, read_json, setup_torch, write_json

    loop_dir = Path(cfg.loop_dir)
    store = Store(cfg.db or None)
    try:
        store.upgrade()
        state = read_state(loop_dir)
        n = state["open"] or len(state["rounds"]) + 1
        rd = loop_dir / f"round-{n}"
        # 1-2. new feedback as rankings; checked before anything is written
        if cfg.signal not in SIGNALS:
            raise LoopError(f"signal must be one of {SIGNALS}, not {cfg.signal!r}")
        thumbs_only = cfg.signal == "thumbs"
        if not is_done(rd / "feedback"):
            ctx = context(store, cfg)
            fb = feedback.collect(store, feedback.Watermark(**state["watermark"]), same_prompt=cfg.same_prompt,
                                  workspace=cfg.workspace and not thumbs_only, arena=not thumbs_only)
            enough_ratings = cfg.pointwise and len(fb.ratings) >= cfg.min_ratings
            if len(fb.rankings) < cfg.min_rankings and not enough_ratings:
                raise LoopError(f"too little new feedback: {len(fb.rankings)} new rankings "
                                f"({json.dumps(fb.counts['by_source'])}; {fb.counts['unpaired_thumbs']} thumbs "
                                f"without a pair) since the last round, min_rankings={cfg.min_rankings}"
                                + (f", and {len(fb.ratings)} thumbs, min_ratings={cfg.min_ratings}" if cfg.pointwise else "")
                                + "; nothing was changed")
            write_json(rd / "context.json", ctx)
            (rd / "config.yaml").write_text(to_yaml(cfg))
            runner = Runner(rd, log)
            runner.stage("feedback", lambda: write_feedback(rd / "feedback", fb))
            state["open"] = n
            write_json(loop_dir / "state.json", state)
        else:
            log(f"[round-{n}] resuming")
        ctx = read_json(rd / "context.json")
        runner = Runner(rd, log)
        setup_torch(cfg.seed, cfg.threads)
        for c in (cfg.reward, cfg.ppo, cfg.eval):
            c.seed = cfg.seed
            c.threads = cfg.threads or c.threads
        run_dir = Path(ctx["run_dir"])
        demos = run_dir / "data" / "demos.jsonl"
        # 3. the RM from SFT on the served RM's rankings plus every loop round's (newest set wins)
        loop_files = [*(r["rankings"] for r in state["rounds"]), str(rd / "feedback" / "rankings.jsonl")]
        rm_rankings = [*([] if thumbs_only else ctx["earlier_rankings"]), str(rd / "loop_rankings.jsonl")]
        rating_files = [str(Path(r["rankings"]).with_name("ratings.jsonl")) for r in state["rounds"]]
        rating_files.append(str(rd / "feedback" / "ratings.jsonl"))
        rm_ratings = [str(rd / "loop_ratings.jsonl")] if cfg.pointwise else []

        def do_reward() -> None:
            from chatrlhf.schema import Rating

            merge_loop_rankings(loop_files, rd / "loop_rankings.jsonl")
            if cfg.pointwise:
                merge_loop_rankings(rating_files, rd / "loop_ratings.jsonl", Rating)
            cfg.reward.model, cfg.reward.out_dir = ctx["sft_path"], str(rd / "reward")
            cfg.reward.rankings, cfg.reward.demos = list(rm_rankings), str(demos) if demos.exists() else ""
            cfg.reward.ratings = list(rm_ratings)
            reward.run(cfg.reward)

        runner.stage("reward", do_reward)
        # 4. PPO from the served weights, anchored to SFT, on feedback prompts + the run's train prompts
        cfg.ppo.ptx_data = [str(p) for p in (demos, run_dir / "distill" / "general_demos.jsonl") if p.exists()]

        def do_ppo() -> None:
            cfg.ppo.policy, cfg.ppo.reference = ctx["current_path"], ctx["sft_path"]
            cfg.ppo.reward_model, cfg.ppo.out_dir = str(rd / "reward"), str(rd / "ppo")
            cfg.ppo.prompts = [str(rd / "feedback" / "prompts.jsonl"),
                               str(train_prompts(run_dir, rd / "train_prompts.jsonl"))]
            ppo.run(cfg.ppo)

        runner.stage("ppo", do_ppo)

        # 5. candidate vs current vs SFT on the run's held-out prompts
        def do_eval() -> None:
            cfg.eval.models = {"current": ctx["current_path"], "candidate": str(rd / "ppo"), "sft": ctx["sft_path"]}
            cfg.eval.prompts, cfg.eval.reward_model = [str(run_dir / "data" / "prompts.jsonl")], str(rd / "reward")
            cfg.eval.out_dir = str(rd / "eval")
            cfg.eval.outside_data = cfg.outside_data or cfg.eval.outside_data
            cfg.eval.gate = "candidate:current"
            first = ["candidate:current", "candidate:sft", "current:sft"]
            cfg.eval.comparisons = [*first, *[c for c in cfg.eval.comparisons if c not in first]]
            evaluate.run(cfg.eval)

        runner.stage("eval", do_eval)
        # 6. register, gate, promote or keep
        decision: dict[str, Any] = {}
        # a round whose RM was trained before ratings were kept (resumed across the upgrade) has none
        rm_data = [*rm_rankings, *(f for f in rm_ratings if Path(f).is_file())]
        runner.stage("decision", lambda: decision.update(register_and_gate(store, cfg, ctx, rd, n, rm_data, log)))
        decision = decision or {k: v for k, v in read_json(rd / "decision" / "DONE").items() if k != "finished_at"}
        summary = read_json(rd / "feedback" / "summary.json")
        state["rounds"].append({"round": n, "rankings": str(rd / "feedback" / "rankings.jsonl"), **decision})
        state["watermark"], state["open"] = summary["watermark"], None
        write_json(loop_dir / "state.json", state)
        return {"round": n, "dir": str(rd), **decision, "feedback": {k: v for k, v in summary.items() if k != "sha256"},
                "decision_md": (rd / "decision.md").read_text(), "timings": runner.timings}
    finally:
        store.dispose()
