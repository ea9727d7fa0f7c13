"""Gold scores per family: ideal demonstrations, each adversarial strategy, and a model's replies.

    python bench/gold_scores.py                      # embedded SmolLM2 (base), 10 eval prompts/family
    python bench/gold_scores.py --n 4 --split train  # quicker
    python bench/gold_scores.py --model runs/x/ppo   # any policy checkpoint
    python bench/gold_scores.py --no-model           # simulator strategies only (no torch)

The model answers greedily (max 96 new tokens) through chatrlhf's engine and chat format. Also
prints the model's rates on the shared detectors: refusals of harmful and of harmless-but-scary
requests, and false-premise challenges. ``--samples-out`` saves the model's replies as JSONL.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections import defaultdict


def model_replies(model_spec, convs, max_new: int, threads: int, batch: int) -> list[str]:
    import torch

    from chatrlhf.chat_format import render_prompt
    from chatrlhf.engine import Engine, SamplingParams
    from chatrlhf.models import load_model

    torch.set_num_threads(threads)
    model, tok = load_model(model_spec)
    engine = Engine(model, tok, max_batch_size=batch)
    prompts = [render_prompt(c.messages, tok) for c in convs]
    params = SamplingParams(max_new_tokens=max_new, temperature=0.0)
    out = []
    for i in range(0, len(prompts), batch):
        out += [c.text for c in engine.generate(prompts[i:i + batch], params)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=10, help="prompts per family")
    ap.add_argument("--split", default="eval", choices=["train", "eval"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=None, help="model spec (default: embedded SmolLM2)")
    ap.add_argument("--no-model", action="store_true", help="skip the model column")
    ap.add_argument("--max-new", type=int, default=96)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--samples-out", default=None, help="write the model's replies here (JSONL)")
    ap.add_argument("--samples-in", default=None, help="re-score replies saved by --samples-out")
    args = ap.parse_args()

    from chatrlhf.simulate import FAMILIES, generate_tasks, judge
    from chatrlhf.simulate.adversarial import ADVERSARIAL, hedged_answer, verbose_ideal, wrong_answer
    from chatrlhf.simulate.judge import challenges_premise, is_refusal
    from chatrlhf.simulate.tasks import ideal_reply

    convs = generate_tasks(args.seed, args.n, args.split)
    rng = random.Random(args.seed)
    strategies = {"ideal": ideal_reply, **ADVERSARIAL, "wrong": wrong_answer, "verbose": verbose_ideal,
                  "hedged": hedged_answer}
    columns = list(strategies)
    table: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for c in convs:
        for name, fn in strategies.items():
            reply = fn(c, rng)
            if reply is not None:  # a strategy that does not apply (no ideal for general)
                table[c.meta["family"]][name].append(judge(c.messages, reply, c.meta).total)

    replies = None
    label = "model" if args.model else "base"
    if args.samples_in:
        saved = {json.dumps(r["messages"]): r["reply"] for r in map(json.loads, open(args.samples_in))}
        replies = [saved[json.dumps(c.messages)] for c in convs]
        columns.insert(1, label)
        for c, r in zip(convs, replies):
            table[c.meta["family"]][label].append(judge(c.messages, r, c.meta).total)
    elif not args.no_model:
        t0 = time.time()
        replies = model_replies(args.model, convs, args.max_new, args.threads, args.batch)
        columns.insert(1, label)
        for c, r in zip(convs, replies):
            table[c.meta["family"]][label].append(judge(c.messages, r, c.meta).total)
        print(f"# {len(convs)} model replies in {time.time() - t0:.0f}s ({args.model or 'embedded SmolLM2'})")
        if args.samples_out:
            with open(args.samples_out, "w") as f:
                for c, r in zip(convs, replies):
                    f.write(json.dumps({"messages": c.messages, "reply": r, "meta": c.meta}) + "\n")

    short = {"refuse_everything": "refuse", "buried_answer": "buried", "repeat_question": "repeat",
             "wrapped_in_refusal": "wrapped", "keyword_stuffing": "stuffing"}
    print(f"# gold score (mean over {args.n} {args.split} prompts per family; 0 = worst, 1 = ideal)")
    print(f"{'family':<15}" + "".join(f"{short.get(c, c):>9}" for c in columns))
    for fam in [*FAMILIES, "ALL"]:
        rows = table[fam] if fam != "ALL" else {c: [x for f in FAMILIES for x in table[f][c]] for c in columns}
        print(f"{fam:<15}" + "".join(f"{statistics.mean(rows[c]):9.2f}" if rows[c] else f"{'-':>9}"
                                     for c in columns))

    if replies is not None:
        by_fam = defaultdict(list)
        for c, r in zip(convs, replies):
            by_fam[c.meta["family"]].append((c, r))
        rate = lambda fam, f: sum(f(c, r) for c, r in by_fam[fam]) / max(1, len(by_fam[fam]))  # noqa: E731
        print(f"# model detector rates: harmful refused {rate('harmful', lambda c, r: is_refusal(r)):.2f}, "
              f"harmless-but-scary refused {rate('sounds_harmful', lambda c, r: is_refusal(r)):.2f}, "
              f"false premise challenged {rate('false_premise', lambda c, r: challenges_premise(r, c.meta)):.2f}")


if __name__ == "__main__":
    main()
