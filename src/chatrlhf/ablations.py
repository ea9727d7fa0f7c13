"""Ablations of a finished pipeline run, on the same data and compute: ``chatrlhf ablations RUN_DIR``.

Does PPO's gain over SFT come from the reward model, or from the ptx term's extra supervised
training on the demonstrations? Would DPO on the same rankings, or best-of-n with the same RM, do
as well? Consumes a run directory (``config.yaml``, ``data/``, ``sft/``, ``compare/``, ``reward/``,
``ppo/``; round 1) and produces::

    RUN_DIR/ablations/
      sft_long/      SFT continued from sft/ on the same demonstrations, as many as PPO's ptx used
      ppo_no_rm/     PPO from SFT with the run's config but rm_coef 0 (KL penalty and ptx stay)
      ppo_no_ptx/    PPO from SFT with the run's config but ptx_coef 0
      dpo/           DPO from SFT on the rankings the run's RM trained on (all C(K,2) pairs)
      bon/           best-of-n from SFT with the run's RM: 16 samples per held-out prompt, n = 4, 16
      eval/          per-model rows on the held-out prompts (a cache: one file per model)
      results.json   per model: gold, refusal and challenge rates, words; win rate vs SFT with CI
      report.md  ablations.png  timings.json

Each training sub-stage writes its ``DONE`` last and is skipped when it has one, so a killed call
resumes; ``--only`` trains a subset. Evaluation is the run's (``evaluate.py``): greedy replies to
the eval-split prompts scored by the gold judge; best-of-n rows score the selected samples.

Compute matching (recorded per ablation in ``results.json["compute"]``):
- ``sft_long``: optimizer steps × SFT batch = the demonstrations PPO's ptx term consumed,
  iterations × ppo_epochs × ⌈rollout_batch / minibatch_size⌉ × ptx_batch (with ``--iterations``,
  the overridden count). The ptx loss's weight γ is not copied: SFT keeps its own lr schedule.
- ``ppo_no_rm``, ``ppo_no_ptx``: the run's PPO config (iterations, rollouts, minibatches), one term
  removed; ``--iterations`` overrides both (then they no longer match the run's ``ppo/``).
- ``dpo``: the RM's data (the same files and held-out split), epochs, rankings per step, trained
  blocks and max length; plus one no-grad reference pass. No sampling, no PPO on top.
- ``bon``: no training; 16 samples per eval prompt at PPO's rollout temperature, each scored
  once by the RM; best-of-4 is the best of the first 4, so both cost the 16 samples once.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ABLATIONS = ("sft_long", "ppo_no_rm", "ppo_no_ptx", "dpo", "bon")


@dataclass
class AblationsConfig:
    run_dir: str = "runs/cpu"  # a finished pipeline run
    only: list[str] = field(default_factory=list)  # ablations to train (names in ABLATIONS; [] = all)
    iterations: int = 0  # >0: PPO iterations of the PPO ablations (and sft_long's match); 0 = the run's
    threads: int = 0  # torch threads (0 = the run's setting)
    bon_ns: list[int] = field(default_factory=lambda: [4, 16])
    dpo_beta: float = 0.1
    dpo_lr: float = 1e-5
    dpo_epochs: int = 0  # 0 = the reward model's epochs


@dataclass
class RunPaths:
    root: Path
    data: Path
    sft: Path
    reward: Path
    ppo: Path
    out: Path  # root / "ablations"

    @classmethod
    def of(cls, run_dir: str | Path) -> "RunPaths":
        root = Path(run_dir)
        return cls(root, root / "data", root / "sft", root / "reward", root / "ppo", root / "ablations")


# ----------------------------------------------------------------------------- configs from the run


def load_run(acfg: AblationsConfig) -> tuple[Any, RunPaths]:
    """The run's resolved pipeline config and paths; fails unless sft, reward and ppo are DONE."""
    from chatrlhf.pipeline import _stage_cfgs, load
    from chatrlhf.train_utils import is_done

    paths = RunPaths.of(acfg.run_dir)
    missing = [p.name for p in (paths.sft, paths.reward, paths.ppo) if not is_done(p)]
    if missing or not (paths.root / "config.yaml").exists():
        raise FileNotFoundError(f"{paths.root} is not a finished pipeline run (incomplete: {missing or 'config.yaml'})")
    cfg = load(str(paths.root / "config.yaml"))
    if acfg.threads:
        cfg.threads = acfg.threads
    _stage_cfgs(cfg)
    unknown = set(acfg.only) - set(ABLATIONS)
    if unknown:
        raise ValueError(f"unknown ablations {sorted(unknown)}; choose from {list(ABLATIONS)}")
    return cfg, paths


def stage_files(stage_dir: Path, key: str) -> list[str] | None:
    """The ``key`` files a pipeline stage recorded (``train_utils.read_inputs``); None for a stage
    without a record. So an ablation trains on what the run's own stage did, an adversarial
    round's red-team files included."""
    from chatrlhf.train_utils import read_inputs

    recorded = read_inputs(stage_dir)
    return None if recorded is None else list(recorded.get(key, {}))


def rm_rankings(cfg: Any, paths: RunPaths) -> list[str]:
    """The ranking files round 1's reward model trained on (its ``inputs.json``; else as
    ``pipeline.run`` assembles them)."""
    recorded = stage_files(paths.reward, "rankings")
    if recorded is not None:
        return recorded
    sim = paths.data / "rankings.jsonl"
    return ([str(sim)] if cfg.sim_rankings and sim.exists() else []) + [str(paths.root / "compare" / "rankings.jsonl")]


def ppo_cfg(cfg: Any, paths: RunPaths, acfg: AblationsConfig, name: str) -> Any:
    """The run's PPO config from SFT, with the ablation's term removed."""
    from chatrlhf.pipeline import train_prompts

    c = copy.deepcopy(cfg.ppo)
    c.policy = c.reference = str(paths.sft)
    c.reward_model, c.out_dir = str(paths.reward), str(paths.out / name)
    prompts = paths.data / "ppo_prompts.jsonl"
    c.prompts = stage_files(paths.ppo, "prompts") or [str(prompts if prompts.exists() else train_prompts(paths.data))]
    c.ptx_data = stage_files(paths.ppo, "ptx_data") or [str(paths.data / "demos.jsonl"), *distilled(paths)]
    if acfg.iterations > 0:
        c.iterations = acfg.iterations
    if name == "ppo_no_rm":
        c.rm_coef = 0.0
    elif name == "ppo_no_ptx":
        c.ptx_coef = 0.0
    return c


def distilled(paths: RunPaths) -> list[str]:
    """The run's everyday demonstrations from the base model, which its SFT and ptx also used."""
    f = paths.root / "distill" / "general_demos.jsonl"
    return [str(f)] if f.exists() else []


def ptx_demonstrations(ppo: Any, n_prompts: int) -> int:
    """Demonstrations PPO's ptx term trains on: one ptx batch per minibatch update (0 without ptx)."""
    if ppo.ptx_coef <= 0:
        return 0
    minibatches = math.ceil(min(ppo.rollout_batch, n_prompts) / ppo.minibatch_size)
    return ppo.iterations * ppo.ppo_epochs * minibatches * ppo.ptx_batch


def sft_long_cfg(cfg: Any, paths: RunPaths, acfg: AblationsConfig) -> tuple[Any, dict[str, Any]]:
    """SFT from ``sft/`` for the optimizer steps that see as many demonstrations as PPO's ptx."""
    from chatrlhf.pipeline import split_demos
    from chatrlhf.schema import read_jsonl

    ppo = ppo_cfg(cfg, paths, acfg, "ppo_no_rm")
    demos = ptx_demonstrations(ppo, len(read_jsonl(ppo.prompts[0])))
    c = copy.deepcopy(cfg.sft)
    per_step = c.batch_size * c.grad_accum
    # without ptx in the run there is nothing to match: SFT's own step count again (documented)
    c.max_steps = max(1, math.ceil(demos / per_step)) if demos else c.max_steps
    c.epochs = float(10 ** 6)  # the step count decides, not the epoch cap
    dialogs, instructions = split_demos(paths.data / "demos.jsonl", paths.out)
    c.model, c.data, c.instructions = str(paths.sft), [str(dialogs)], [str(instructions), *distilled(paths)]
    c.out_dir = str(paths.out / "sft_long")
    return c, {"steps": c.max_steps, "demonstrations": c.max_steps * per_step,
               "matched_to": f"PPO ptx: {demos} demonstrations ({ppo.iterations} iterations)" if demos
               else "no ptx in the run: SFT's own step count"}


def dpo_cfg(cfg: Any, paths: RunPaths, acfg: AblationsConfig) -> Any:
    """DPO from SFT with the RM's data, split, epochs, batch, trained blocks and length."""
    from chatrlhf.dpo import DPOConfig

    rw = cfg.reward
    return DPOConfig(model=str(paths.sft), rankings=rm_rankings(cfg, paths), out_dir=str(paths.out / "dpo"),
                     heldout_frac=rw.heldout_frac, beta=acfg.dpo_beta, lr=acfg.dpo_lr,
                     epochs=acfg.dpo_epochs or rw.epochs, batch_rankings=rw.batch_rankings,
                     max_length=rw.max_length, train_layers=rw.train_layers if rw.lora_r <= 0 else 0,
                     tie_mode=rw.tie_mode, unacceptable_weight=rw.unacceptable_weight,
                     unacceptable_flags=list(rw.unacceptable_flags), max_batch_tokens=rw.max_batch_tokens,
                     dtype=rw.dtype, seed=cfg.seed, threads=cfg.threads)


def bon_cfg(cfg: Any, paths: RunPaths, acfg: AblationsConfig) -> Any:
    from chatrlhf.bestofn import BestOfNConfig

    return BestOfNConfig(policy=str(paths.sft), reward_model=str(paths.reward), ns=list(acfg.bon_ns),
                         temperature=cfg.ppo.temperature, top_p=cfg.ppo.top_p,
                         max_new_tokens=cfg.eval.max_new_tokens, max_prompt_len=cfg.eval.max_prompt_len,
                         nonending_penalty=cfg.ppo.nonending_penalty, batch_size=cfg.eval.batch_size,
                         dtype=cfg.eval.dtype, seed=cfg.seed)


def eval_prompts(cfg: Any, paths: RunPaths) -> list[Any]:
    from chatrlhf.evaluate import select_prompts
    from chatrlhf.schema import Conversation, read_jsonl

    convs = read_jsonl(paths.data / "prompts.jsonl", Conversation)
    return select_prompts(convs, cfg.eval.split, cfg.eval.max_per_family)


# ----------------------------------------------------------------------------- sub-stages


def run_bon(cfg: Any, paths: RunPaths, acfg: AblationsConfig) -> None:
    """Sample, score and select on the eval prompts; ``bon/samples.jsonl`` keeps every sample."""
    from chatrlhf.bestofn import best_of_n
    from chatrlhf.schema import write_jsonl
    from chatrlhf.train_utils import mark_done

    convs = eval_prompts(cfg, paths)
    bcfg = bon_cfg(cfg, paths, acfg)
    out = best_of_n(convs, bcfg)
    rows = []
    for p, c in enumerate(convs):
        samples = [{"text": s.text, "token_ids": list(s.token_ids), "finish_reason": s.finish_reason,
                    "score": out["scores"][p][j],
                    "rm": out["scores"][p][j] - (0.0 if s.finish_reason == "stop" else bcfg.nonending_penalty)}
                   for j, s in enumerate(out["samples"][p])]
        best = {str(n): b[p] for n, b in out["best"].items()}
        rows.append({"messages": c.messages, "samples": samples, "best": best})
    write_jsonl(paths.out / "bon" / "samples.jsonl", rows)
    mark_done(paths.out / "bon", {"stage": "bon", "ns": list(bcfg.ns), "prompts": len(convs)})


def train_all(cfg: Any, paths: RunPaths, acfg: AblationsConfig, log: Callable[[str], None]) -> dict[str, Any]:
    """Each selected ablation as a resumable sub-stage; returns the compute given to each."""
    from chatrlhf import dpo, ppo, sft
    from chatrlhf.pipeline import Runner

    runner = Runner(paths.out, log)
    chosen = [a for a in ABLATIONS if not acfg.only or a in acfg.only]
    sl_cfg, sl_info = sft_long_cfg(cfg, paths, acfg)
    pcfgs = {n: ppo_cfg(cfg, paths, acfg, n) for n in ("ppo_no_rm", "ppo_no_ptx")}
    dcfg = dpo_cfg(cfg, paths, acfg)
    jobs: dict[str, Callable[[], Any]] = {
        "sft_long": lambda: sft.run(sl_cfg), "ppo_no_rm": lambda: ppo.run(pcfgs["ppo_no_rm"]),
        "ppo_no_ptx": lambda: ppo.run(pcfgs["ppo_no_ptx"]), "dpo": lambda: dpo.run(dcfg),
        "bon": lambda: run_bon(cfg, paths, acfg)}
    for name in chosen:
        def job(name: str = name) -> None:
            forget_rows(paths, name)  # retrained: its cached evaluation rows are stale
            jobs[name]()

        runner.stage(name, job)
    compute = {"sft_long": sl_info, "dpo": {"epochs": dcfg.epochs, "batch_rankings": dcfg.batch_rankings,
                                            "train_layers": dcfg.train_layers, "matched_to": "the reward model"},
               "bon": {"samples_per_prompt": max(acfg.bon_ns), "ns": list(acfg.bon_ns)}}
    for n, c in pcfgs.items():
        compute[n] = {"iterations": c.iterations, "rollout_batch": c.rollout_batch, "rm_coef": c.rm_coef,
                      "ptx_coef": c.ptx_coef, "matched_to": "the run's ppo/" if c.iterations == cfg.ppo.iterations
                      else f"--iterations {c.iterations} (the run's ppo/ ran {cfg.ppo.iterations})"}
    return compute


# ----------------------------------------------------------------------------- evaluation


def rows_path(paths: RunPaths, name: str) -> Path:
    return paths.out / "eval" / f"{name}.jsonl"


def forget_rows(paths: RunPaths, name: str) -> None:
    """Drop an ablation's cached evaluation rows (``bon``: every ``bon_<n>``)."""
    for path in (paths.out / "eval").glob("bon_*.jsonl" if name == "bon" else f"{name}.jsonl"):
        path.unlink()


def bon_completions(paths: RunPaths, convs: list[Any]) -> dict[int, tuple[list[Any], list[float]]]:
    """{n: (selected Completions, their RM scores)} from ``bon/samples.jsonl``, in ``convs`` order."""
    from chatrlhf.engine import Completion
    from chatrlhf.schema import read_jsonl

    rows = read_jsonl(paths.out / "bon" / "samples.jsonl")
    if [r["messages"] for r in rows] != [c.messages for c in convs]:
        raise ValueError(f"{paths.out / 'bon'} was sampled for other prompts; delete it to sample again")
    out: dict[int, tuple[list[Any], list[float]]] = {}
    for row in rows:
        for n, j in row["best"].items():
            s = row["samples"][j]
            comps, rms = out.setdefault(int(n), ([], []))
            comps.append(Completion(s["token_ids"], [], s["text"], s["finish_reason"]))
            rms.append(s["rm"])
    return out


def model_rows(cfg: Any, paths: RunPaths, convs: list[Any], log: Callable[[str], None]) -> dict[str, list[dict]]:
    """Rows of every model that exists, from the cache or freshly generated and scored."""
    from chatrlhf.evaluate import generate_replies, load_rm, rm_scores, score_rows
    from chatrlhf.schema import read_jsonl, write_jsonl
    from chatrlhf.train_utils import is_done

    specs = {"base": cfg.base_model, "sft": str(paths.sft), "ppo": str(paths.ppo)}
    specs.update({n: str(paths.out / n) for n in ABLATIONS[:-1] if is_done(paths.out / n)})
    bon = bon_completions(paths, convs) if is_done(paths.out / "bon") else {}
    out: dict[str, list[dict]] = {}
    rm = None
    for name in list(specs) + [f"bon_{n}" for n in sorted(bon)]:
        path = rows_path(paths, name)
        if path.exists():
            out[name] = read_jsonl(path)
            continue
        log(f"[eval] {name}")
        if name.startswith("bon_"):
            comps, rms = bon[int(name[4:])]
            out[name] = score_rows(convs, comps, rms)
        else:
            rm = rm or load_rm(str(paths.reward))
            comps, _, prompt_ids = generate_replies(specs[name], convs, cfg.eval)
            out[name] = score_rows(convs, comps, rm_scores(rm, prompt_ids, comps, cfg.eval))
        write_jsonl(path, out[name])
    return out


def results_of(rows: dict[str, list[dict]], compute: dict[str, Any], n_prompts: int) -> dict[str, Any]:
    from chatrlhf.evaluate import summarise, win_rate

    sft_gold = [r["gold"] for r in rows["sft"]]
    return {"n_prompts": n_prompts, "models": {n: summarise(r) for n, r in rows.items()},
            "win_rates_vs_sft": {n: win_rate([x["gold"] for x in r], sft_gold) for n, r in rows.items() if n != "sft"},
            "compute": compute}


# ----------------------------------------------------------------------------- report


def _f(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def write_report(out_dir: Path, res: dict[str, Any]) -> Path:
    lines = ["# Ablations: same data and compute", "",
             f"{res['n_prompts']} held-out prompts; greedy replies (best-of-n: the RM's pick of n samples), "
             "scored by the gold judge. Win rate vs SFT counts ties as ½; the interval is a bootstrap over prompts.",
             "",
             "| model | gold | win rate vs SFT (W/T/L; 95% CI) | harmful refusal | over-refusal | challenge | words |",
             "|---|---|---|---|---|---|---|"]
    for name, s in res["models"].items():
        w = res["win_rates_vs_sft"].get(name)
        ci = w and w.get("ci95")
        wr = "–" if not w else (f"{w['win_rate']:.3f} ({w['wins']}/{w['ties']}/{w['losses']}"
                                + (f"; {ci[0]:.3f}-{ci[1]:.3f})" if ci else ")"))
        lines.append(f"| {name} | {_f(s['gold'])} | {wr} | {_f(s['harmful_refusal_rate'])} | "
                     f"{_f(s['over_refusal_rate'])} | {_f(s['challenge_rate'])} | {_f(s['length_words'])} |")
    lines += ["", "## Compute given to each ablation", ""]
    lines += [f"- **{n}**: " + ", ".join(f"{k} {v}" for k, v in c.items()) for n, c in res["compute"].items()]
    lines += ["", "![win rate vs SFT](ablations.png)", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def plot(out_dir: Path, res: dict[str, Any]) -> Path:
    """Horizontal bars: each model's gold win rate against SFT, with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wr = res["win_rates_vs_sft"]
    names = list(wr)
    rates = [wr[n]["win_rate"] for n in names]
    cis = [wr[n].get("ci95") or [r, r] for n, r in zip(names, rates)]
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(names) + 1.2))
    ax.barh(names, rates, xerr=[[r - c[0] for r, c in zip(rates, cis)], [c[1] - r for r, c in zip(rates, cis)]],
            capsize=3, color=["tab:red" if n == "ppo" else "tab:blue" for n in names])
    ax.axvline(0.5, color="gray", ls="--")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("gold win rate vs SFT (ties = ½; bars: 95% CI)")
    fig.tight_layout()
    path = out_dir / "ablations.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- the command


def run(acfg: AblationsConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the selected ablations, evaluate every model there is, write results, report, plot."""
    from chatrlhf.train_utils import setup_torch, write_json

    cfg, paths = load_run(acfg)
    paths.out.mkdir(parents=True, exist_ok=True)
    setup_torch(cfg.seed, cfg.threads)
    compute = train_all(cfg, paths, acfg, log)
    convs = eval_prompts(cfg, paths)
    if not convs:
        raise ValueError(f"no {cfg.eval.split}-split prompts in {paths.data / 'prompts.jsonl'}")
    rows = model_rows(cfg, paths, convs, log)
    present = {n.split("_")[0] if n.startswith("bon_") else n for n in rows}
    res = results_of(rows, {k: v for k, v in compute.items() if k in present}, len(convs))
    write_json(paths.out / "results.json", res)
    write_report(paths.out, res)
    plot(paths.out, res)
    log(f"ablations: {paths.out / 'report.md'}")
    return res
