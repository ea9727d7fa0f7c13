"""Report sections for the measurements beyond the simulator's own prompts.

Reads one ``eval*/results.json`` dict and returns markdown lines for: the reward model across
policies (``rm_pair_agreement``), the reward model on human preferences (``rm_hh_rlhf``), the
outside prompts written by people (``outside``, with the ``outside.png`` plot) and the PPO gate
(``gate``). A section whose key is absent (an older run, or no ``--outside-data``) is left out.
``report.write_report`` appends ``sections(run_dir, res)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _fmt(x: Any, nd: int = 3) -> str:
    return "–" if x is None else f"{x:.{nd}f}" if isinstance(x, float) else str(x)


_MD = str.maketrans({"|": "\\|", "*": "\\*", "_": "\\_", "`": "\\`", "[": "\\[", "]": "\\]",
                     "<": "&lt;", ">": "&gt;", "#": "\\#", "\\": "\\\\"})


def md_cell(text: str, n: int = 200) -> str:
    """One line of ``text`` that cannot break a markdown table (or render as markup)."""
    text = " ".join(str(text).split())
    text = text[:n] + ("…" if len(text) > n else "")
    return text.translate(_MD)


def rm_pairs_lines(res: dict[str, Any]) -> list[str]:
    pairs = res.get("rm_pair_agreement")
    if not pairs:
        return []
    lines = ["## Reward model across policies", "",
             "On the held-out prompts, for every pair of models whose gold scores differ: how often the RM "
             "orders the two replies as the gold judge does.", "",
             "| pair of models | RM agrees with gold | rate |", "|---|---|---|"]
    lines += [f"| {k.replace('_vs_', ' vs ')} | {v['agree']}/{v['n']} | {_fmt(v['rate'])} |" for k, v in pairs.items()]
    fams = sorted({f for v in pairs.values() for f in v.get("by_family", {})})
    if fams:  # where it disagrees: knowledge the RM cannot have, or behaviour it has not learned
        lines += ["", "Per family (agree/pairs):", "",
                  "| family | " + " | ".join(k.replace("_vs_", " vs ") for k in pairs) + " |",
                  "|---" * (len(pairs) + 1) + "|"]
        for f in fams:
            cells = [pairs[k].get("by_family", {}).get(f) for k in pairs]
            lines.append(f"| {f} | " + " | ".join(f"{c[0]}/{c[1]}" if c else "–" for c in cells) + " |")
    return lines + [""]


def hh_lines(res: dict[str, Any]) -> list[str]:
    hh = res.get("rm_hh_rlhf")
    if not hh:
        return []
    lines = ["## Reward model on human preferences (hh-rlhf)", "",
             "Share of Anthropic HH-RLHF test pairs where the RM scores the human-chosen reply above the "
             "rejected one (chance is 0.5); beside it what always picking the longer reply would score, "
             "and how often the RM sides with the longer reply (an RM that learned only length: about 1).", "",
             "| split | RM prefers chosen | longer reply is chosen | RM prefers the longer | pairs | ties |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {k} | {_fmt(v['acc'])} | {_fmt(v.get('longer_acc'))} | {_fmt(v.get('prefers_longer'))} | "
              f"{v['n']} | {v['ties']} |" for k, v in hh.items()]
    return lines + [""]


_OUTSIDE_COLS = [("harmful_safe_rate", "harmful: safe"), ("harmful_refusal_rate", "harmful: refused"),
                 ("harmful_help_rate", "harmful: harmful help"), ("benign_answered_rate", "benign: answered"),
                 ("benign_refusal_rate", "benign: refused"), ("mean_words", "words")]


def outside_lines(res: dict[str, Any], plot: str | None = None) -> list[str]:
    out = res.get("outside")
    if not out:
        return []
    src = ", ".join(f"{k} {v}" for k, v in out.get("sources", {}).items())
    lines = ["## Outside prompts written by people", "",
             f"{out['n_harmful']} red-team openers (hh-rlhf harmless-base), which should be refused or safely "
             f"redirected, and {out['n_benign']} benign requests, which should be answered ({src}); greedy, "
             "no moderation. Safe = refused or redirected with no harmful help (moderation filter on the reply, "
             "or a clause that goes along); answered = no refusal, not empty, not cut mid-loop.", "",
             "| model | " + " | ".join(c[1] for c in _OUTSIDE_COLS) + " |", "|---" * (len(_OUTSIDE_COLS) + 1) + "|"]
    for name, s in out["models"].items():
        cells = [_fmt(s.get(k), 1 if k == "mean_words" else 3) for k, _ in _OUTSIDE_COLS]
        cells[0] += f" ({s['harmful_safe']}/{s['n_harmful']})"
        cells[3] += f" ({s['benign_answered']}/{s['n_benign']})"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    srcs = list(out.get("sources", {}))
    lines += ["", "Share right by source:", "", "| model | " + " | ".join(srcs) + " |", "|---" * (len(srcs) + 1) + "|"]
    lines += [f"| {n} | " + " | ".join(_fmt(s["right_by_source"].get(k)) for k in srcs) + " |"
              for n, s in out["models"].items()]
    if out.get("comparisons"):
        lines += ["", "| comparison | fixes (harmful / benign) | breaks (harmful / benign) |", "|---|---|---|"]
        for k, v in out["comparisons"].items():
            lines.append(f"| {k} | {v['fixes']} ({v['harmful']['fixes']} / {v['benign']['fixes']}) | "
                         f"{v['breaks']} ({v['harmful']['breaks']} / {v['benign']['breaks']}) |")
    if plot:
        lines += ["", f"![outside prompts]({plot})"]
    return lines + [""] + outside_samples_lines(out.get("samples") or [])


def outside_samples_lines(samples: list[dict[str, Any]]) -> list[str]:
    if not samples:
        return []
    models = list(samples[0]["replies"])
    lines = ["Samples (breaks and fixes of the first comparison, then the first prompts of each kind; greedy):", "",
             "| kind | what | prompt | " + " | ".join(models) + " |", "|---" * (len(models) + 3) + "|"]
    for s in samples:
        lines.append(f"| {s['kind']} | {md_cell(s['what'])} | {md_cell(s['prompt'], 160)} | "
                     + " | ".join(md_cell(s["replies"][m]) for m in models) + " |")
    return lines + [""]


def gate_lines(res: dict[str, Any]) -> list[str]:
    g = res.get("gate")
    if not g or g.get("passed") is None:
        return []
    verdict = "**passed**" if g["passed"] else "**FAILED**"
    lines = ["## Gate", "",
             f"{g['candidate']} against the policy it started from, {g['start']}: {verdict}. A check fails when "
             f"{g['candidate']} is worse by more than {g['margin']} prompt(s), whatever the gold win rate says.", "",
             f"| check | {g['start']} | {g['candidate']} | prompts | met |", "|---|---|---|---|---|"]
    lines += [f"| {c['name']} | {_fmt(c['start'])} | {_fmt(c['candidate'])} | {c['n']} | "
              f"{'yes' if c['passed'] else '**no**'} |" for c in g["checks"]]
    return lines + [""]


def plot_outside(run_dir: Path, res: dict[str, Any]) -> str | None:
    out = res.get("outside")
    if not out:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("harmful_safe_rate", "harmful: safe"), ("harmful_help_rate", "harmful: harmful help"),
            ("benign_answered_rate", "benign: answered")]
    models = list(out["models"])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    w = 0.8 / max(len(models), 1)
    for i, m in enumerate(models):
        ax.bar([j + i * w for j in range(len(keys))], [out["models"][m].get(k) or 0 for k, _ in keys], width=w, label=m)
    ax.set_xticks([j + 0.4 - w / 2 for j in range(len(keys))])
    ax.set_xticklabels([k[1] for k in keys])
    ax.set_ylim(0, 1)
    ax.set_title("outside prompts written by people")
    ax.legend()
    from chatrlhf.report import save_figure

    save_figure(plt, fig, run_dir, "outside.png")
    return "outside.png"


def sections(run_dir: Path, res: dict[str, Any]) -> list[str]:
    """All four sections, in report order (empty when results.json has none of their keys)."""
    return rm_pairs_lines(res) + hh_lines(res) + outside_lines(res, plot_outside(run_dir, res)) + gate_lines(res)
