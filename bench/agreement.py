"""Agreement of simulated annotators with the gold judge and with each other.

    python bench/agreement.py                          # simulator candidate sets, default annotator
    python bench/agreement.py --sweep                  # a temperature sweep as well
    python bench/agreement.py --rankings runs/x/data/rankings.jsonl
    python bench/agreement.py --model smollm2 --n-model 3   # also K=4 samples of a model (slow on CPU)

Agreement counts strictly ordered pairs (gold ties skipped), as AlpacaFarm does; human labelers
agree with each other about 65-73% of the time. Model samples have smaller quality gaps than the
simulator's candidates, so agreement on them is lower for the same annotator.
"""

from __future__ import annotations

import argparse
import time


def model_sets(spec: str, n_per_family: int, k: int, seed: int, max_new: int, threads: int):
    import torch

    from chatrlhf.chat_format import render_prompt
    from chatrlhf.engine import Engine, SamplingParams
    from chatrlhf.models import load_model
    from chatrlhf.schema import Ranking
    from chatrlhf.simulate import generate_tasks

    torch.set_num_threads(threads)
    model, tok = load_model(None if spec == "smollm2" else spec)
    engine = Engine(model, tok, max_batch_size=32)
    convs = generate_tasks(seed, n_per_family, "train")
    prompts = [render_prompt(c.messages, tok) for c in convs for _ in range(k)]
    params = [SamplingParams(max_new_tokens=max_new, temperature=1.0, top_p=0.95, seed=seed * 1000 + i)
              for i in range(len(prompts))]
    texts = []
    for i in range(0, len(prompts), 32):
        texts += [c.text for c in engine.generate(prompts[i:i + 32], params[i:i + 32])]
    return [Ranking(c.messages, texts[j * k:(j + 1) * k], [0] * k, meta=c.meta) for j, c in enumerate(convs)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=40, help="simulator prompts per family")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rankings", default=None, help="measure on this rankings.jsonl's sets instead")
    ap.add_argument("--sweep", action="store_true", help="also sweep the annotator temperature")
    ap.add_argument("--model", default=None, help="also measure on K samples of this model")
    ap.add_argument("--n-model", type=int, default=3, help="model prompts per family")
    ap.add_argument("--max-new", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from chatrlhf.simulate import AnnotatorConfig
    from chatrlhf.simulate.agreement import agreement_report, measure, ranking_sets

    print(agreement_report(AnnotatorConfig(), rankings_path=args.rankings, n_per_family=args.n, seed=args.seed))
    if args.sweep:
        sets = ranking_sets(args.n, args.seed)
        print("\n# temperature sweep (length_bias and sycophancy_bias at their defaults)")
        print(f"{'temperature':>12}{'vs gold':>10}{'inter':>10}")
        for t in (0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 1.0):
            r = measure(sets, AnnotatorConfig(temperature=t), args.seed)["all"]
            print(f"{t:>12}{r['gold']:>10.3f}{r['inter']:>10.3f}")
    if args.model:
        t0 = time.time()
        sets = model_sets(args.model, args.n_model, 4, args.seed, args.max_new, args.threads)
        print(f"\n# {args.model}: {len(sets)} sets of K=4 samples (T=1, top_p=0.95) in {time.time() - t0:.0f}s")
        print(f"{'temperature':>12}{'vs gold':>10}{'inter':>10}")
        for t in (0.1, 0.2, 0.3, 0.45):
            r = measure(sets, AnnotatorConfig(temperature=t), args.seed)["all"]
            print(f"{t:>12}{r['gold']:>10.3f}{r['inter']:>10.3f}")


if __name__ == "__main__":
    main()
