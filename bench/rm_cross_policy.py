"""RM-vs-gold agreement per pair of models, re-scored offline.

    python bench/rm_cross_policy.py --rm RUN/reward RUN_A [RUN_B ...] [--hh ../shared/data]

Each RUN's eval/samples.jsonl holds every evaluated model's greedy reply and gold score per held-out
prompt. The replies are scored again with the reward model ``--rm`` (any RM directory), so RM
variants can be compared on the same replies without generating anything. Prints, per pair of
models, how often the RM orders two replies as gold does (prompts where gold differs), summed over
the runs given; with ``--hh`` also the hh-rlhf test-pair accuracy. ``--json`` writes the figures.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def rescore(rm_dir: str, runs: list[str]) -> dict[str, dict[str, float]]:
    from chatrlhf.evaluate import load_rm, rm_pair_agreement
    from chatrlhf.reward import encode_reply, score_ids
    from chatrlhf.train_utils import pad_id_of

    rm, tok = load_rm(rm_dir)
    total: dict[str, list[int]] = {}
    for run in runs:
        rows = [json.loads(line) for line in open(Path(run) / "eval" / "samples.jsonl")]
        models = [k for k in rows[0] if isinstance(rows[0][k], dict) and "gold" in rows[0][k]]
        seqs = [encode_reply(r["messages"], r[m]["reply"], tok, 1024) for r in rows for m in models]
        scores = iter(score_ids(rm, seqs, pad_id_of(tok), "float32"))
        per_model: dict[str, list[dict]] = {m: [] for m in models}
        for r in rows:
            for m in models:
                per_model[m].append({"gold": r[m]["gold"], "rm": next(scores)})
        for pair, v in rm_pair_agreement(per_model).items():
            t = total.setdefault(pair, [0, 0])
            t[0] += v["agree"]
            t[1] += v["n"]
    return {k: {"agree": a, "n": n, "rate": a / n if n else None} for k, (a, n) in total.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("runs", nargs="+", help="run directories with eval/samples.jsonl")
    ap.add_argument("--rm", required=True, help="reward model directory")
    ap.add_argument("--hh", default="", help="data directory with hh-rlhf (optional)")
    ap.add_argument("--hh-pairs", type=int, default=200)
    ap.add_argument("--json", default="", help="write the figures here")
    a = ap.parse_args(argv)
    for run in a.runs:
        if not (Path(run) / "eval" / "samples.jsonl").exists():
            print(f"error: {run}/eval/samples.jsonl not found (run the pipeline's eval stage first)", file=sys.stderr)
            return 2
    out: dict = {"rm": a.rm, "runs": a.runs, "pairs": rescore(a.rm, a.runs)}
    print(f"RM {a.rm}")
    for pair, v in out["pairs"].items():
        print(f"  {pair:<14} {v['agree']:>4}/{v['n']:<4} {v['rate']:.3f}" if v["n"] else f"  {pair:<14} no pairs")
    if a.hh:
        from chatrlhf.evaluate import EvalConfig, load_rm, rm_hh_rlhf

        out["hh_rlhf"] = rm_hh_rlhf(load_rm(a.rm), a.hh, a.hh_pairs, EvalConfig())
        for split, v in out["hh_rlhf"].items():
            print(f"  hh-rlhf {split:<15} {v['wins']:>4}/{v['n']:<4} {v['acc']:.3f}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
