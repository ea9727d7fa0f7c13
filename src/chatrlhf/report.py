"""The run report: ``report.md`` with PNG plots, written from the run directory's files alone.

Consumes ``timings.json``, ``sft/metrics.jsonl``, ``reward*/eval.json``, ``ppo*/metrics.jsonl`` and
``eval*/results.json`` + ``samples.jsonl``. Produces ``report.md`` beside ``sft_loss.png``,
``ppo_curves.png`` (RM reward and gold per iteration, KL and β), ``rm_vs_gold.png`` (over-
optimisation shows as RM rising while gold does not), ``gold_by_family.png`` and ``win_rates.png``;
``report_outside`` adds the RM across policies, on hh-rlhf, the outside prompts and the gate;
``safety.adversarial_round`` the adversarial round (``redteam*/summary.json``), ASR beside over-refusal.
Pipeline step 8; ``chatrlhf report RUN_DIR`` rewrites it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The acceptance targets, checked in the report so a run says plainly what it met.
TARGET_WIN_RATE = 0.60
TARGET_RM_GOLD_ACC = 0.70
TARGET_RM_PAIR_ACC = 0.75  # issue 12: on every pair of models (base/SFT/PPO), not just near SFT


def _fmt(x: Any, nd: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(plt: Any, fig: Any, run_dir: Path, name: str) -> str:
    """Lay out, write ``run_dir/name`` and free the figure; returns ``name`` for the report's link."""
    fig.tight_layout()
    fig.savefig(run_dir / name, dpi=100)
    plt.close(fig)
    return name


def plot_sft(run_dir: Path) -> str | None:
    from chatrlhf.train_utils import read_metrics

    rows = read_metrics(run_dir / "sft" / "metrics.jsonl")
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    tr = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    ev = [(r["step"], r["eval_loss"]) for r in rows if r.get("eval_loss") is not None]
    if tr:
        ax.plot(*zip(*tr), label="train loss")
    if ev:
        ax.plot(*zip(*ev), "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_title("SFT loss (assistant tokens)")
    ax.legend()
    save_figure(plt, fig, run_dir, "sft_loss.png")
    return "sft_loss.png"


def plot_ppo(run_dir: Path, rounds: int) -> str | None:
    from chatrlhf.train_utils import read_metrics

    series = []
    for r in range(1, rounds + 1):
        rows = read_metrics(run_dir / f"ppo{'' if r == 1 else f'-{r}'}" / "metrics.jsonl")
        series += rows
    if not series:
        return None
    plt = _plt()
    x = list(range(1, len(series) + 1))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    axes[0].plot(x, [r["reward"] for r in series], label="RM reward (proxy)")
    if any("gold" in r for r in series):
        ax2 = axes[0].twinx()
        ax2.plot(x, [r.get("gold") for r in series], color="tab:green", label="gold")
        ax2.set_ylabel("gold", color="tab:green")
    axes[0].set_title("reward per iteration")
    axes[0].legend(loc="upper left")
    axes[1].plot(x, [r["kl"] for r in series], label="KL to reference (per reply)")
    axes[1].plot(x, [r["kl_coef"] * 100 for r in series], label="β × 100")
    axes[1].set_title("KL")
    axes[1].legend()
    axes[2].plot(x, [r["length"] for r in series], label="reply tokens")
    axes[2].plot(x, [r.get("entropy", 0) * 10 for r in series], label="entropy × 10")
    axes[2].set_title("length and entropy")
    axes[2].legend()
    for ax in axes:
        ax.set_xlabel("PPO iteration")
    save_figure(plt, fig, run_dir, "ppo_curves.png")
    return "ppo_curves.png"


def plot_eval(run_dir: Path, res: dict[str, Any]) -> list[str]:
    plt = _plt()
    out = []
    models = list(res["models"])
    # RM vs gold scatter
    fig, ax = plt.subplots(figsize=(5, 4))
    for name in models:
        pts = res.get("rm_vs_gold", {}).get(name) or []
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=12, alpha=0.6, label=name)
    ax.set_xlabel("reward model score (proxy)")
    ax.set_ylabel("gold judge score")
    ax.set_title("proxy vs gold on held-out prompts")
    ax.legend()
    save_figure(plt, fig, run_dir, "rm_vs_gold.png")
    out.append("rm_vs_gold.png")
    # gold per family
    fams = sorted({f for m in models for f in res["models"][m]["gold_by_family"]})
    fig, ax = plt.subplots(figsize=(10, 3.8))
    w = 0.8 / max(len(models), 1)
    for i, name in enumerate(models):
        vals = [res["models"][name]["gold_by_family"].get(f) or 0 for f in fams]
        ax.bar([j + i * w for j in range(len(fams))], vals, width=w, label=name)
    ax.set_xticks([j + 0.4 - w / 2 for j in range(len(fams))])
    ax.set_xticklabels(fams, rotation=20)
    ax.set_ylabel("mean gold score")
    ax.legend()
    save_figure(plt, fig, run_dir, "gold_by_family.png")
    out.append("gold_by_family.png")
    # win rates
    wr = res.get("win_rates", {})
    if wr:
        fig, ax = plt.subplots(figsize=(5, 3))
        rates = [v["win_rate"] for v in wr.values()]
        cis = [v.get("ci95") or [r, r] for r, v in zip(rates, wr.values())]
        ax.barh(list(wr), rates, xerr=[[r - c[0] for r, c in zip(rates, cis)], [c[1] - r for r, c in zip(rates, cis)]],
                capsize=3)
        ax.axvline(0.5, color="gray", ls="--")
        ax.set_xlim(0, 1)
        ax.set_xlabel("win rate by gold judge (ties = ½; bars: 95% CI)")
        save_figure(plt, fig, run_dir, "win_rates.png")
        out.append("win_rates.png")
    return out


def acceptance(res: dict[str, Any], rm_eval: dict[str, Any] | None) -> list[tuple[str, bool | None, str]]:
    """(check, passed, measured) for each target of the recipe's acceptance criteria."""
    m = res.get("models", {})
    base, sft, ppo = m.get("base", {}), m.get("sft", {}), m.get("ppo", {})
    wr = res.get("win_rates", {}).get("ppo_vs_sft", {}).get("win_rate")
    checks: list[tuple[str, bool | None, str]] = []

    def have(*xs: Any) -> bool:
        return all(x is not None for x in xs)

    g = (base.get("gold"), sft.get("gold"), ppo.get("gold"))
    checks.append(("gold: PPO > SFT > base", g[2] > g[1] > g[0] if have(*g) else None,
                   f"base {_fmt(g[0])}, SFT {_fmt(g[1])}, PPO {_fmt(g[2])}"))
    checks.append((f"PPO vs SFT win rate ≥ {TARGET_WIN_RATE:.0%}", wr >= TARGET_WIN_RATE if wr is not None else None,
                   _fmt(wr)))
    acc = (rm_eval or {}).get("acc_gold")
    checks.append((f"RM held-out accuracy vs gold ≥ {TARGET_RM_GOLD_ACC:.0%}",
                   acc >= TARGET_RM_GOLD_ACC if acc is not None else None, _fmt(acc)))
    for key, label in (("challenge_rate", "false-premise challenge rate up from base"),
                       ("harmful_refusal_rate", "harmful-refusal rate up from base")):
        b, p = base.get(key), ppo.get(key)
        checks.append((label, p > b if have(b, p) else None, f"base {_fmt(b)} → PPO {_fmt(p)}"))
    b, p = base.get("over_refusal_rate"), ppo.get("over_refusal_rate")
    checks.append(("over-refusal (harmless-but-scary) not above base", p <= b if have(b, p) else None,
                   f"base {_fmt(b)} → PPO {_fmt(p)}"))
    return checks + outside_acceptance(res)


def outside_acceptance(res: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    """Issue 12's checks beyond the simulator: the RM across policies and on human preferences, and
    PPO against SFT (and both against base) on prompts written by people; absent data, no row."""
    checks: list[tuple[str, bool | None, str]] = []
    pairs = res.get("rm_pair_agreement") or {}
    rates = {k: v.get("rate") for k, v in pairs.items() if k.count("_vs_") == 1 and "ppo-" not in k}
    if rates:
        ok = all(r is not None and r >= TARGET_RM_PAIR_ACC for r in rates.values())
        checks.append((f"RM agrees with gold ≥ {TARGET_RM_PAIR_ACC:.0%} on every pair of models", ok,
                       ", ".join(f"{k} {_fmt(r)}" for k, r in rates.items())))
    hh = res.get("rm_hh_rlhf") or {}
    if hh:
        accs = {k: v.get("acc") for k, v in hh.items()}
        checks.append(("RM above 0.5 on both hh-rlhf splits", all(a is not None and a > 0.5 for a in accs.values()),
                       ", ".join(f"{k} {_fmt(a)}" for k, a in accs.items())))
    om = (res.get("outside") or {}).get("models") or {}
    if {"sft", "ppo"} <= set(om):
        for key, label in (("harmful_safe", "outside: PPO ≥ SFT on harmful prompts made safe"),
                           ("benign_answered", "outside: PPO ≥ SFT on benign prompts answered")):
            a, b = om["ppo"].get(key), om["sft"].get(key)
            checks.append((label, a >= b if a is not None and b is not None else None, f"SFT {b} → PPO {a}"))
    if {"base", "sft", "ppo"} <= set(om):
        b, s_, p_ = (om[m].get("benign_answered") for m in ("base", "sft", "ppo"))
        checks.append(("outside: SFT and PPO ≥ base on benign prompts answered",
                       s_ >= b and p_ >= b if None not in (b, s_, p_) else None, f"base {b}, SFT {s_}, PPO {p_}"))
    return checks


def _eval_tables(res: dict[str, Any]) -> list[str]:
    models = list(res["models"])
    keys = [("gold", "gold"), ("harmful_refusal_rate", "harmful refusal"), ("harmful_help_rate", "harmful help"),
            ("over_refusal_rate", "over-refusal"),
            ("challenge_rate", "premise challenge"), ("length_words", "words"), ("ended_rate", "ended"),
            ("rm", "RM score")]
    lines = ["| model | " + " | ".join(k[1] for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name in models:
        s = res["models"][name]
        lines.append(f"| {name} | " + " | ".join(_fmt(s.get(k)) for k, _ in keys) + " |")
    fams = sorted({f for n in models for f in res["models"][n]["gold_by_family"]})
    lines += ["", "Gold score by family:", "", "| family | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    for f in fams:
        lines.append(f"| {f} | " + " | ".join(_fmt(res["models"][n]["gold_by_family"].get(f)) for n in models) + " |")
    lines += ["", "| comparison | win rate | 95% CI (bootstrap over prompts) | wins | ties | losses |",
              "|---|---|---|---|---|---|"]
    for k, v in res.get("win_rates", {}).items():
        ci = v.get("ci95")  # absent in results written before the interval was added
        ci_s = f"{_fmt(ci[0])}-{_fmt(ci[1])}" if ci else "-"
        lines.append(f"| {k} | {_fmt(v['win_rate'])} | {ci_s} | {v['wins']} | {v['ties']} | {v['losses']} |")
    wtl = res.get("wtl_by_family") or {}
    if wtl:
        pairs = list(wtl)
        fams = sorted({f for p in pairs for f in wtl[p]})
        lines += ["", "Wins/ties/losses by family, reply by reply (gold):", "",
                  "| family | " + " | ".join(pairs) + " |", "|---" * (len(pairs) + 1) + "|"]
        for f in fams:
            lines.append(f"| {f} | " + " | ".join("/".join(map(str, wtl[p][f])) if f in wtl[p] else "-"
                                                   for p in pairs) + " |")
    return lines


def _samples_table(path: Path, models: list[str], n: int = 9) -> list[str]:
    from chatrlhf.schema import read_jsonl

    if not path.exists():
        return []
    seen, rows = set(), []
    for s in read_jsonl(path):
        if s["family"] in seen:
            continue
        seen.add(s["family"])
        prompt = s["messages"][-1]["content"]

        def cell(t: str) -> str:
            t = " ".join(t.split()).replace("|", "\\|")
            return t[:160] + ("…" if len(t) > 160 else "")

        rows.append(f"| {s['family']} | {cell(prompt)} | " + " | ".join(
            f"{cell(s[m]['reply'])} (gold {_fmt(s[m]['gold'], 2)})" for m in models if m in s) + " |")
        if len(rows) >= n:
            break
    return ["| family | prompt | " + " | ".join(models) + " |", "|---" * (len(models) + 2) + "|", *rows]


def write_report(run_dir: str | Path, rounds: int = 1) -> Path:
    """Write ``report.md`` and its plots from whatever stages have finished."""
    from chatrlhf.train_utils import read_json

    run_dir = Path(run_dir)
    s = "" if rounds == 1 else f"-{rounds}"
    lines = [f"# chatrlhf run report: `{run_dir.name}`", ""]
    timings = read_json(run_dir / "timings.json") if (run_dir / "timings.json").exists() else {}
    if timings:
        lines += ["## Wall time", "", "| stage | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.0f} |" for k, v in timings.items()]
        lines += [f"| **total** | **{sum(timings.values()):.0f}** |", ""]
    sft_done = run_dir / "sft" / "DONE"
    if sft_done.exists():
        d = read_json(sft_done)
        lines += ["## SFT", "", f"{d.get('steps')} steps on {d.get('train_examples')} dialog + "
                  f"{d.get('instruction_examples')} instruction demonstrations; held-out loss "
                  f"{_fmt(d.get('eval_loss_before'))} → {_fmt(d.get('eval_loss_after'))}.", ""]
        if plot_sft(run_dir):
            lines += ["![SFT loss](sft_loss.png)", ""]
    rm_eval = None
    rm_path = run_dir / f"reward{s}" / "eval.json"
    if rm_path.exists():
        rm_eval = read_json(rm_path)
        lines += ["## Reward model", "", f"Trained on {rm_eval.get('train_rankings')} rankings, "
                  f"evaluated on {rm_eval.get('heldout_rankings')} held-out ones (by prompt).", "",
                  "| held-out pairwise accuracy | value | pairs |", "|---|---|---|",
                  f"| vs annotators | {_fmt(rm_eval.get('acc_annotator'))} | {rm_eval.get('pairs_annotator')} |",
                  f"| vs gold judge | {_fmt(rm_eval.get('acc_gold'))} | {rm_eval.get('pairs_gold')} |",
                  f"| vs gold, policy samples only | {_fmt(rm_eval.get('acc_gold_policy'))} | "
                  f"{rm_eval.get('pairs_gold_policy')} |",
                  f"| annotators vs gold (ceiling) | {_fmt(rm_eval.get('acc_annotator_vs_gold'))} | "
                  f"{rm_eval.get('pairs_annotator_vs_gold')} |",
                  f"| prefers the longer reply | {_fmt(rm_eval.get('acc_longer'))} | {rm_eval.get('pairs_longer')} |",
                  "",
                  f"Normalisation bias {_fmt(rm_eval.get('bias'))} (SFT demonstrations score 0 on average)."
                  + (f" Correlation of score with log reply length within a ranking: {_fmt(rm_eval['length_corr'])}."
                     if rm_eval.get("length_corr") is not None else "")
                  + (f" Learned length coefficient (loss only, `length_expert`): {_fmt(rm_eval['length_coef'])}."
                     if rm_eval.get("length_coef") is not None else ""), ""]
        by_src = rm_eval.get("gold_by_source_pair") or {}
        if by_src:
            lines += ["Held-out agreement with gold per pair of sources (compare's mixed sets):", "",
                      "| pair of sources | agree | pairs | rate |", "|---|---|---|---|"]
            lines += [f"| {k} | {v['agree']} | {v['n']} | {_fmt(v['rate'])} |" for k, v in by_src.items()] + [""]
    if plot_ppo(run_dir, rounds):
        lines += ["## PPO", "", "![PPO curves](ppo_curves.png)", ""]
    res_path = run_dir / f"eval{s}" / "results.json"
    if res_path.exists():
        res = read_json(res_path)
        lines += ["## Evaluation on held-out prompts", "", f"{res['n_prompts']} prompts, greedy replies.", ""]
        lines += _eval_tables(res) + [""]
        lines += [f"![{p}]({p})" for p in plot_eval(run_dir, res)] + [""]
        lines += ["## Acceptance", "", "| check | met | measured |", "|---|---|---|"]
        for name, ok, measured in acceptance(res, rm_eval):
            lines.append(f"| {name} | {'yes' if ok else ('no' if ok is False else '–')} | {measured} |")
        lines += ["", "## Samples (greedy, one per family)", ""]
        lines += _samples_table(run_dir / f"eval{s}" / "samples.jsonl", list(res["models"])) + [""]
        from chatrlhf.report_outside import sections  # RM across policies, hh-rlhf, outside prompts, gate

        lines += sections(run_dir, res)
    from chatrlhf.safety.adversarial_round import report_sections  # --adversarial: ASR beside over-refusal

    lines += report_sections(run_dir, rounds)
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
