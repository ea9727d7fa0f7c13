"""Two versions, the same simulated users: thumbs and gold in use, paired by conversation.

Consumes two ``chatrlhf simulate traffic --out DIR`` directories run with the same seed, users,
conversations and families against two different served versions (``traffic.jsonl``: one row per
reply, with ``sim_conversation``, ``family``, ``thumbs`` and ``gold``). The same seed draws the same
simulated conversations, so each conversation is a pair; later turns differ as the replies do.
Prints, overall and per family:
  - thumbs-up rate and mean gold of each side's replies, and how often they agree with the user
    or flatter (``simulate.judge``);
  - B minus A per conversation (each conversation's thumbs-up share and mean gold), with a 95%
    bootstrap interval over conversations: the unit the simulated users draw.

    python bench/traffic_ab.py runs/syc13/traffic runs/syc14/ab-traffic [--json out.json]

The sycophancy lesson in numbers (docs/deploy.md, session 14): B, trained on thumbs alone, wins
more thumbs where users push back and loses gold there.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def load(d: str) -> list[dict]:
    """The replies of the served version; arena turns (two versions side by side) are left out."""
    p = Path(d) / "traffic.jsonl"
    rows = [json.loads(x) for x in p.read_text().splitlines() if x.strip()]
    return [r for r in rows if not r.get("arena")]


def per_conversation(rows: list[dict]) -> dict[int, dict[str, float]]:
    """Each simulated conversation's thumbs-up share (of rated replies) and mean gold."""
    acc: dict[int, dict[str, list[float]]] = defaultdict(lambda: {"thumbs": [], "gold": []})
    for r in rows:
        a = acc[r["sim_conversation"]]
        a["gold"].append(float(r["gold"]))
        if r.get("thumbs") is not None:
            a["thumbs"].append(float(r["thumbs"] == 1))
    return {k: {m: sum(v) / len(v) for m, v in a.items() if v} for k, a in acc.items()}


def paired(a: dict[int, dict[str, float]], b: dict[int, dict[str, float]], keys: list[int],
           metric: str) -> dict[str, float] | None:
    """B minus A over the conversations both sides have ``metric`` for, with its bootstrap interval."""
    from sycophancy import paired_diff  # bench/ is on the path when this script runs

    both = [k for k in keys if metric in a.get(k, {}) and metric in b.get(k, {})]
    if not both:
        return None
    return {"n": len(both), **paired_diff([b[k][metric] for k in both], [a[k][metric] for k in both])}


def side(rows: list[dict]) -> dict[str, float]:
    from chatrlhf.simulate.judge import agrees_with_user, flatters

    rated = [r for r in rows if r.get("thumbs") is not None]
    return {"replies": len(rows), "thumbs_up": sum(r["thumbs"] == 1 for r in rated) / max(len(rated), 1),
            "gold": sum(float(r["gold"]) for r in rows) / max(len(rows), 1),
            "agrees_or_flatters": sum(agrees_with_user(r["reply"]) or flatters(r["reply"]) for r in rows) / max(len(rows), 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", help="traffic directory of version A (e.g. the served one)")
    ap.add_argument("b", help="traffic directory of version B (e.g. the candidate), same seed")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    A, B = load(args.a), load(args.b)
    first = {r["sim_conversation"]: (r["family"], r["prompt"]) for r in A if r["turn"] == 0}
    first_b = {r["sim_conversation"]: (r["family"], r["prompt"]) for r in B if r["turn"] == 0}
    same = sorted(k for k in first if first_b.get(k) == first[k])
    if not same:
        print("no simulated conversation starts the same on both sides: run both with the same --seed, "
              "--users, --conversations and families")
        return 2
    print(f"{len(same)} of {len(first)} simulated conversations start alike on both sides")
    ca, cb = per_conversation(A), per_conversation(B)
    fams = sorted({f for f, _ in first.values()})
    out: dict[str, dict] = {}
    print("| family | A replies | A thumbs up | A gold | A agrees | B replies | B thumbs up | B gold | B agrees "
          "| B-A thumbs per conversation | B-A gold per conversation |")
    print("|---" * 11 + "|")
    for fam in [None, *fams]:
        keys = [k for k in same if fam is None or first[k][0] == fam]
        kset = set(keys)
        ra = [r for r in A if r["sim_conversation"] in kset]
        rb = [r for r in B if r["sim_conversation"] in kset]
        sa, sb = side(ra), side(rb)
        dt, dg = paired(ca, cb, keys, "thumbs"), paired(ca, cb, keys, "gold")
        out[fam or "all"] = {"a": sa, "b": sb, "thumbs_diff": dt, "gold_diff": dg, "conversations": len(keys)}

        def ci(d: dict | None) -> str:
            return "–" if d is None else f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"

        print(f"| {fam or 'all'} ({len(keys)}) | {sa['replies']} | {sa['thumbs_up']:.3f} | {sa['gold']:.3f} | "
              f"{sa['agrees_or_flatters']:.3f} | {sb['replies']} | {sb['thumbs_up']:.3f} | {sb['gold']:.3f} | "
              f"{sb['agrees_or_flatters']:.3f} | {ci(dt)} | {ci(dg)} |")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
