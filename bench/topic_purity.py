"""Topic clusters of simulated traffic against the simulator's task families (purity).

    python bench/topic_purity.py runs/loop/traffic/traffic.jsonl [more traffic.jsonl ...]
    python bench/topic_purity.py --plan 8x62 --seed 0          # the conversations a traffic run would hold
    python bench/topic_purity.py --plan 8x62 --turns first     # the opening messages alone

Reads each conversation's user turns and its family, either from ``chatrlhf simulate traffic``'s
``traffic.jsonl`` or, with ``--plan USERSxCONVERSATIONS``, from the simulator's plan of such a
run (the user turns are fixed before any request, so no server is needed). It clusters them with
the monitoring page's own code (``deploy.topics.summarize``: MiniLM embeddings, HDBSCAN, the
minimum-size rule) and prints each shown topic's label, size and family counts, then purity (the
share of clustered conversations in their topic's majority family), the share left in "other",
and coverage (the share of all conversations in their topic's majority family).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def from_traffic(paths: list[str]) -> list[tuple[tuple[str, ...], str]]:
    convs: dict[tuple[str, int], tuple[dict[int, str], str]] = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            r = json.loads(line)
            if r.get("channel") == "v1":  # one request holds the whole prompt; the store sees its own conversation
                continue
            turns, _ = convs.setdefault((path, r["sim_conversation"]), ({}, r["family"]))
            turns.setdefault(r["turn"], r["prompt"])
    return [(tuple(t for _, t in sorted(turns.items())), fam) for turns, fam in convs.values()]


def from_plan(spec: str, seed: int) -> list[tuple[tuple[str, ...], str]]:
    from chatrlhf.simulate.traffic import TrafficConfig, plan

    users, conversations = (int(x) for x in spec.lower().split("x"))
    return [(tuple(m["content"] for m in p.messages if m["role"] == "user"), p.meta["family"])
            for p in plan(TrafficConfig(users=users, conversations=conversations, seed=seed))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("traffic", nargs="*", help="traffic.jsonl files")
    ap.add_argument("--plan", default="", help="USERSxCONVERSATIONS: the simulator's plan instead of files")
    ap.add_argument("--seed", type=int, default=0, help="with --plan: the traffic seed")
    ap.add_argument("--turns", choices=["all", "first"], default="all")
    ap.add_argument("--min-size", type=int, default=10, help="the minimum-size rule")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    if bool(a.plan) == bool(a.traffic):
        ap.error("give traffic.jsonl files or --plan, not both")
    from chatrlhf.deploy.topics import EmbeddingCache, TopicConfig, summarize

    convs = from_plan(a.plan, a.seed) if a.plan else from_traffic(a.traffic)
    # the family rides in the "version" slot, so each topic's by_version counts families
    items = [(i, turns, fam) for i, (turns, fam) in enumerate(convs)]
    out = summarize(items, TopicConfig(min_cluster_size=a.min_size, turns=a.turns), EmbeddingCache())
    shown = sum(t["count"] for t in out["topics"])
    majority = sum(max(t["by_version"].values()) for t in out["topics"])
    families = sorted({f for _, _, f in items})
    print(f"{len(items)} conversations, {len(families)} families, {len(out['topics'])} topics shown "
          f"(minimum size {a.min_size}, turns={a.turns}), {out['other']} in 'other' ({out['other_share']:.0%})")
    for t in out["topics"]:
        fam, n = max(t["by_version"].items(), key=lambda kv: kv[1])
        print(f"  {t['count']:4d}  {t['label'][:40]:40s}  majority {fam} {n}/{t['count']}  {t['by_version']}")
    purity = majority / shown if shown else float("nan")
    coverage = majority / len(items) if items else float("nan")
    print(f"purity {purity:.3f} over the {shown} clustered conversations; coverage {coverage:.3f}")
    if a.json:
        Path(a.json).write_text(json.dumps({**out, "purity": purity, "coverage": coverage, "turns": a.turns,
                                            "families": families}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
