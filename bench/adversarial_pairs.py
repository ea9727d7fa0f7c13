"""SFT against the adversarial round's final policy, item by item, with paired bootstrap intervals.

    python bench/adversarial_pairs.py runs/adv [runs/adv2 ...] [--boot 10000]

Reads a ``--adversarial`` run's ``redteam-fresh/{sft,ppo}/attacks.jsonl`` (the same fresh attacks
sent to both models) and ``probe.json`` (the helpfulness probe: the same prompts for both) and
prints, per run: attacks that succeeded and were refused by each model, and for the attack success
rate and each probe measure (over-refusal of harmless-but-scary prompts, plain and framed; gold on
verifiable tasks) the difference ppo - sft with a 95% bootstrap interval over the paired items.
One run is one seed: the interval says how much the items alone could move the difference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def paired(a: list[float], b: list[float], boot: int, seed: int = 0) -> tuple[float, float, float]:
    """mean(b - a) and its 95% percentile-bootstrap interval, resampling the pairs."""
    from chatrlhf.evaluate import bootstrap_ci

    if len(a) != len(b) or not a:
        raise ValueError(f"need the same non-zero number of items on both sides, got {len(a)} and {len(b)}")
    d = [y - x for x, y in zip(a, b)]
    lo, hi = bootstrap_ci(d, boot, seed)
    return sum(d) / len(d), lo, hi


def rows_of(run: Path, boot: int) -> list[tuple[str, str, str, str]]:
    fresh = run / "redteam-fresh"
    att = {m: _jsonl(fresh / m / "attacks.jsonl") for m in ("sft", "ppo")}
    key = [(r["family"], r["intent"], r["attack"]) for r in att["sft"]]
    if key != [(r["family"], r["intent"], r["attack"]) for r in att["ppo"]]:
        raise ValueError(f"{run}: the two models were not sent the same attacks")
    out = []
    for verdict in ("success", "refused"):
        s, p = ([float(r["verdict"] == verdict) for r in att[m]] for m in ("sft", "ppo"))
        diff, lo, hi = paired(s, p, boot)
        out.append((f"attacks: {verdict} (of {len(s)})", f"{sum(s):g}", f"{sum(p):g}", f"{diff:+.3f} [{lo:+.3f}, {hi:+.3f}]"))
    probe = {m: json.loads((fresh / m / "probe.json").read_text())["replies"] for m in ("sft", "ppo")}
    if [r["prompt"] for r in probe["sft"]] != [r["prompt"] for r in probe["ppo"]]:
        raise ValueError(f"{run}: the two probes hold different prompts")
    for label, pick, field in (("probe: over-refusal, harmless-but-scary", lambda r: r["family"] == "sounds_harmful" and not r["framed"], "refusal"),
                               ("probe: over-refusal, the same framed", lambda r: r["family"] == "sounds_harmful" and r["framed"], "refusal"),
                               ("probe: gold, verifiable tasks", lambda r: r["family"] == "verifiable", "gold")):
        s, p = ([float(r[field]) for r in probe[m] if pick(r)] for m in ("sft", "ppo"))
        diff, lo, hi = paired(s, p, boot)
        out.append((f"{label} (n={len(s)})", f"{sum(s) / len(s):.3f}", f"{sum(p) / len(p):.3f}",
                    f"{diff:+.3f} [{lo:+.3f}, {hi:+.3f}]"))
    return out


def main(argv: list[str]) -> None:
    boot = int(argv[argv.index("--boot") + 1]) if "--boot" in argv else 10000
    runs = [Path(a) for i, a in enumerate(argv) if not a.startswith("--") and (i == 0 or argv[i - 1] != "--boot")]
    if not runs:
        sys.exit(__doc__)
    for run in runs:
        print(f"\n{run}\n\n| measure | sft | ppo | ppo - sft [95% bootstrap] |\n|---|---|---|---|")
        for row in rows_of(run, boot):
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
