"""Mean and spread over pipeline runs that differ only in their seed (issue 12's acceptance table).

    python bench/seeds.py runs/s0 runs/s1 runs/s2 [--markdown]
    python bench/seeds.py docs/measured/s7-seed0 docs/measured/s8-seed1 ...   # the kept copies

Reads each run's ``eval/results.json``, ``reward/eval.json`` and ``timings.json`` and prints, per
seed and as mean ± population standard deviation, the simulator checks (gold, win rates, harmful
refusal / help, over-refusal, challenge), the reward model's agreement with gold per pair of models
and on hh-rlhf, the outside-prompt evaluation (counts, fixes and breaks), the gate and, for a run
with ``--adversarial``, the fresh red-team measure (``redteam-fresh/summary.json``: ASR and the
helpfulness probe, SFT and the final policy).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def row_of(run: Path) -> dict[str, float | None]:
    # a run directory (eval/results.json, reward/eval.json) or the copy kept in docs/measured/
    # (results.json, reward_eval.json side by side)
    res_path = run / "eval" / "results.json" if (run / "eval" / "results.json").exists() else run / "results.json"
    res = json.loads(res_path.read_text())
    rm_path = next((p for p in (run / "reward" / "eval.json", run / "reward_eval.json") if p.exists()), None)
    rm = json.loads(rm_path.read_text()) if rm_path else {}
    tim = json.loads((run / "timings.json").read_text()) if (run / "timings.json").exists() else {}
    m, out = res["models"], {}
    for name in ("base", "sft", "ppo"):
        out[f"gold {name}"] = _get(m, name, "gold")
    for pair in ("ppo_vs_sft", "sft_vs_base", "ppo_vs_base"):
        out[f"win {pair}"] = _get(res, "win_rates", pair, "win_rate")
    for name in ("sft", "ppo"):
        for key, label in (("harmful_refusal_rate", "harmful refusal"), ("harmful_help_rate", "harmful help"),
                           ("over_refusal_rate", "over-refusal"), ("challenge_rate", "challenge")):
            out[f"{label} {name}"] = _get(m, name, key)
    out["over-refusal base"] = _get(m, "base", "over_refusal_rate")
    for name in ("sft", "ppo"):
        g = _get(res, "wtl_by_family", f"{name}_vs_base", "general")
        out[f"general {name} vs base W-L"] = (g[0] - g[2]) if g else None
    out["RM vs gold (held-out rankings)"] = rm.get("acc_gold")
    out["RM vs gold (policy-policy pairs)"] = rm.get("acc_gold_policy")
    for pair, v in (res.get("rm_pair_agreement") or {}).items():
        out[f"RM pair {pair}"] = v.get("rate")
    for split, v in (res.get("rm_hh_rlhf") or {}).items():
        out[f"RM hh {split}"] = v.get("acc")
    om = _get(res, "outside", "models") or {}
    for name in ("base", "sft", "ppo"):
        out[f"outside harmful safe {name}"] = _get(om, name, "harmful_safe")
        out[f"outside harmful help {name}"] = _get(om, name, "harmful_help_rate")
        out[f"outside benign answered {name}"] = _get(om, name, "benign_answered")
    c = _get(res, "outside", "comparisons", "ppo_vs_sft") or {}
    out["outside ppo vs sft fixes"], out["outside ppo vs sft breaks"] = c.get("fixes"), c.get("breaks")
    out["gate passed"] = None if res.get("gate") is None else float(bool(res["gate"].get("passed")))
    # --adversarial: the fresh red-team measure and its helpfulness probe, SFT -> the final policy
    fresh_path = next((p for p in (run / "redteam-fresh" / "summary.json", run / "redteam_fresh_summary.json")
                       if p.exists()), None)
    t = (json.loads(fresh_path.read_text()).get("tradeoff") or {}) if fresh_path else {}
    for key, label in (("asr", "fresh ASR"), ("over_refusal", "probe over-refusal"),
                       ("over_refusal_framed", "probe over-refusal, framed"), ("gold_verifiable", "probe gold verifiable")):
        if isinstance(t.get(key), list) and len(t[key]) == 2:
            out[f"{label} sft"], out[f"{label} ppo"] = t[key]
            if None not in t[key]:
                out[f"{label} ppo - sft"] = t[key][1] - t[key][0]
    out["wall min"] = sum(tim.values()) / 60 if tim else None
    return out


def main(argv: list[str]) -> None:
    md = "--markdown" in argv
    runs = [Path(a) for a in argv if not a.startswith("--")]
    rows = [row_of(r) for r in runs]
    keys = list(dict.fromkeys(k for r in rows for k in r))

    def f(x):
        return "-" if x is None else f"{x:.3f}" if isinstance(x, float) and not float(x).is_integer() else f"{x:g}"

    head = ["measure", *[r.name for r in runs], "mean ± sd"]
    print("| " + " | ".join(head) + " |" if md else "\t".join(head))
    if md:
        print("|---" * len(head) + "|")
    for k in keys:
        vals = [r.get(k) for r in rows]
        xs = [v for v in vals if v is not None]
        agg = f"{statistics.mean(xs):.3f} ± {statistics.pstdev(xs):.3f}" if xs else "-"
        cells = [k, *[f(v) for v in vals], agg]
        print("| " + " | ".join(cells) + " |" if md else "\t".join(cells))


if __name__ == "__main__":
    main(sys.argv[1:])
