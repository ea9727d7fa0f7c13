"""Topic clusters of simulated traffic against the simulator's task families (purity).

    python bench/topic_purity.py runs/loop/traffic/traffic.jsonl [more traffic.jsonl ...]

Reads each conversation's first user message and its family from ``chatrlhf simulate traffic``'s
``traffic.jsonl``, clusters the messages with the monitoring page's own code
(``deploy.topics.summarize``: MiniLM embeddings, HDBSCAN, the minimum-size rule), and prints each
shown topic's label, size and family counts, then purity (the share of clustered conversations
in their topic's majority family) and the share left in "other".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("traffic", nargs="+", help="traffic.jsonl files")
    ap.add_argument("--min-size", type=int, default=10, help="the minimum-size rule")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    from chatrlhf.deploy.topics import EmbeddingCache, TopicConfig, summarize

    first: dict[tuple[str, int], tuple[str, str]] = {}
    for path in a.traffic:
        for line in Path(path).read_text().splitlines():
            r = json.loads(line)
            key = (path, r["conversation"])
            if r.get("turn") == 0 and key not in first:
                first[key] = (r["prompt"], r["family"])
    # the family rides in the "version" slot, so each topic's by_version counts families
    items = [(i, text, fam) for i, (text, fam) in enumerate(first.values())]
    out = summarize(items, TopicConfig(min_cluster_size=a.min_size), EmbeddingCache())
    shown = sum(t["count"] for t in out["topics"])
    majority = sum(max(t["by_version"].values()) for t in out["topics"])
    families = sorted({f for _, _, f in items})
    print(f"{len(items)} conversations, {len(families)} families, {len(out['topics'])} topics shown "
          f"(minimum size {a.min_size}), {out['other']} in 'other' ({out['other_share']:.0%})")
    for t in out["topics"]:
        fam, n = max(t["by_version"].items(), key=lambda kv: kv[1])
        print(f"  {t['count']:4d}  {t['label'][:40]:40s}  majority {fam} {n}/{t['count']}  {t['by_version']}")
    purity = majority / shown if shown else float("nan")
    print(f"purity {purity:.3f} over the {shown} clustered conversations")
    if a.json:
        Path(a.json).write_text(json.dumps({**out, "purity": purity, "families": families}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
