"""The bundled moderation model against the pattern filter, side by side.

    python bench/moderation.py                                   # held-out split only
    python bench/moderation.py --outside-data ../shared/data --json docs/measured/s10-moderation/moderation.json
    python bench/moderation.py --model runs/moderation           # another trained model

Consumes a trained model directory (default: the one shipped in the package,
``safety.moderation_model.BUNDLED_DIR``) and, with ``--outside-data``, a directory laid out like
../shared/data. Prints, for the model and for the pattern filter (its nine categories mapped onto
OpenAI's 13 by ``OLD_TO_NEW``):
  - per-category and any-flag precision / recall / F1 on the held-out split the model's own config
    rebuilds (``moderation_model.evaluate``: simulator eval templates, every fifth seed);
  - the false-positive rate on held-out harmless-but-scary prompts and on all held-out harmless texts;
  - p50 / p90 milliseconds per message, one message at a time on ``--threads`` torch threads;
  - with ``--outside-data``: the share of hh-rlhf harmless-base red-team first human turns flagged
    (not a recall: many red-team openers are harmless on their own, e.g. "What are you?"), and the
    share of benign outside prompts (oasst, mt-bench, self-instruct) flagged, a false-positive rate.
Outside texts are counted, never written out (they stay outside the repository).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any, Callable, Sequence


def outside_texts(data_dir: str, min_words: int = 4, max_chars: int = 500) -> dict[str, list[str]]:
    """Every usable outside prompt by source (the loaders of ``chatrlhf.outside_eval``; the same
    length filters as its sample, but all prompts rather than a sample)."""
    from chatrlhf import outside_eval as oe

    root = Path(data_dir)
    raw = {
        "hh-rlhf red-team": oe.hh_first_turns(root / "hh-rlhf" / "harmless-base" / "test.jsonl.gz"),
        "oasst": oe.oasst_prompts(root / "oasst-sample" / "prompt_lottery_en_250_text.jsonl"),
        "mt-bench": oe.mt_bench_first_turns(root / "mt-bench" / "question.jsonl"),
        "self-instruct": oe.self_instruct_prompts(root / "self-instruct" / "user_oriented_instructions.jsonl"),
    }
    return {k: [t for t in v if len(t) <= max_chars and len(t.split()) >= min_words] for k, v in raw.items()}


def flag_rates(flagged: Callable[[Sequence[str]], list[bool]], texts: dict[str, list[str]]) -> dict[str, Any]:
    """Share flagged per source, the benign sources pooled as ``benign (all)``."""
    per = {src: flagged(ts) for src, ts in texts.items()}
    out = {src: {"flag_rate": round(sum(f) / max(len(f), 1), 4), "n": len(f)} for src, f in per.items()}
    benign = [x for src, f in per.items() if src != "hh-rlhf red-team" for x in f]
    out["benign (all)"] = {"flag_rate": round(sum(benign) / max(len(benign), 1), 4), "n": len(benign)}
    return out


def pattern_latency(texts: Sequence[str], n: int) -> dict[str, float]:
    from chatrlhf.moderation import moderate
    from chatrlhf.safety.moderation_model import latency

    return latency(moderate, texts, n)  # the same timing loop as the model's


def run(model_dir: str | None, outside_data: str | None, threads: int, latency_n: int) -> dict[str, Any]:
    import numpy as np
    import torch

    from chatrlhf.moderation import moderate
    from chatrlhf.safety import moderation_model as mm

    torch.set_num_threads(threads)
    d = Path(model_dir) if model_dir else mm.BUNDLED_DIR
    model = mm.ModerationModel.load(d)
    known = mm.ModerationModelConfig.__dataclass_fields__
    cfg = mm.ModerationModelConfig(**{k: v for k, v in model.info.get("config", {}).items() if k in known})
    rows = mm.build_dataset(cfg)
    t0 = time.perf_counter()
    held = mm.evaluate(model, rows, latency_n)
    test_texts = [r.text for r in rows if r.split == "test"]
    held["pattern_filter"]["latency_ms"] = pattern_latency(test_texts, latency_n)
    out: dict[str, Any] = {
        "model_dir": "bundled (chatrlhf/safety/moderation_default)" if model_dir is None else str(d), "threads": threads, "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s)",
        "held_out": held,
    }
    if outside_data:
        texts = outside_texts(outside_data)
        T = np.array([model.thresholds[c] for c in mm.CATEGORIES])

        def model_flags(ts: Sequence[str]) -> list[bool]:
            return [bool(x) for x in (model.scores(list(ts)) >= T).any(1)] if ts else []

        out["outside"] = {
            "model": flag_rates(model_flags, texts),
            "pattern_filter": flag_rates(lambda ts: [moderate(t).flagged for t in ts], texts),
            "note": "hh-rlhf: share of red-team first human turns flagged (not a recall); "
                    "benign sources: share flagged (false positives)",
        }
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def print_report(m: dict[str, Any]) -> None:
    h, base = m["held_out"], m["held_out"]["pattern_filter"]
    print(f"held-out split: {h['test_rows']} rows; model {m['model_dir']}; {m['machine']}")
    print(f"{'category':<24}{'model P':>8}{'R':>7}{'F1':>7}   {'pattern P':>9}{'R':>7}{'F1':>7}{'n':>6}")
    for c, v in [*h["per_category"].items(), ("any (flagged)", h["any_flag"])]:
        b = base["any_flag"] if c == "any (flagged)" else base["per_category"][c]
        print(f"{c:<24}{v['precision']:>8.3f}{v['recall']:>7.3f}{v['f1']:>7.3f}   "
              f"{b['precision']:>9.3f}{b['recall']:>7.3f}{b['f1']:>7.3f}{v['support']:>6}")
    print(f"FP rate, harmless-but-scary (n={h['sounds_harmful_n']}): model {h['sounds_harmful_fp_rate']:.3f}, "
          f"pattern {base['sounds_harmful_fp_rate']:.3f}")
    print(f"FP rate, all harmless (n={h['harmless_n']}): model {h['harmless_fp_rate']:.3f}, "
          f"pattern {base['harmless_fp_rate']:.3f}")
    lm, lp = h["latency_ms"], base["latency_ms"]
    print(f"latency per message, ms: model p50 {lm['p50']} p90 {lm['p90']}; "
          f"pattern p50 {lp['p50']} p90 {lp['p90']} (n={lm['n']})")
    if "outside" in m:
        o = m["outside"]
        print(f"{'outside source':<22}{'n':>6}{'model':>8}{'pattern':>9}   (share flagged)")
        for src, v in o["model"].items():
            print(f"{src:<22}{v['n']:>6}{v['flag_rate']:>8.3f}{o['pattern_filter'][src]['flag_rate']:>9.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="model directory (default: the bundled one)")
    ap.add_argument("--outside-data", default=None, metavar="DIR", help="e.g. ../shared/data")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the server's per call)")
    ap.add_argument("--latency-n", type=int, default=200, help="messages timed one at a time")
    ap.add_argument("--json", default=None, metavar="OUT", help="also write the figures here")
    a = ap.parse_args()
    m = run(a.model, a.outside_data, a.threads, a.latency_n)
    print_report(m)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(m, indent=2) + "\n")
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
