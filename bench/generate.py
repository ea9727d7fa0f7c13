"""Tokens/s of chatrlhf's engine and of HF `generate`, side by side, in one run.

    python bench/generate.py                 # embedded SmolLM2, fp32, 2 threads, batch 1 8 32
    python bench/generate.py --batches 8 --new 64 --repeats 3

Both generate exactly --new tokens per row (EOS ignored) from the same chat prompts (~41 tokens,
different lengths, left-padded), greedy. Run it alone: on 2 cores any other busy process distorts it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default=None, help="model spec (default: embedded SmolLM2)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per cell (median)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from chatrlhf.chat_format import render_prompt
    from chatrlhf.engine import Engine, SamplingParams
    from chatrlhf.models import load_model

    model, tok = load_model(args.model)
    questions = [
        "What is the capital of France and why is it famous?",
        "Write a short poem about the sea.",
        "Explain photosynthesis to a ten year old child in simple words.",
        "How many legs does a spider have?",
        "Give me three tips for learning a new language quickly.",
        "What is 17 times 23?",
        "Translate 'good morning' into Spanish.",
        "Why is the sky blue?",
    ]
    engine = Engine(model, tok, max_batch_size=max(args.batches))
    params = SamplingParams(max_new_tokens=args.new, temperature=0, ignore_eos=True)

    def ours(prompts):
        res = engine.generate(prompts, params)
        assert all(len(r.token_ids) == args.new for r in res)

    def hf(prompts):
        T = max(map(len, prompts))
        ids = torch.tensor([[tok.pad_token_id] * (T - len(p)) + p for p in prompts])
        am = (torch.arange(T)[None] >= torch.tensor([T - len(p) for p in prompts])[:, None]).long()
        with torch.inference_mode():
            out = model.generate(
                ids, attention_mask=am, max_new_tokens=args.new, min_new_tokens=args.new,
                do_sample=False, pad_token_id=tok.pad_token_id,
            )
        assert out.shape[1] == T + args.new

    print(f"model={args.model or 'SmolLM2-135M-Instruct'} fp32 threads={args.threads} "
          f"new_tokens={args.new} repeats={args.repeats}")
    print(f"{'batch':>5} {'prompt_len':>10} {'engine tok/s':>13} {'HF generate tok/s':>18} {'speed-up':>9}")
    for b in args.batches:
        prompts = [render_prompt([{"role": "user", "content": questions[i % len(questions)]}], tok)
                   for i in range(b)]
        ours(prompts[:1]), hf(prompts[:1])  # warm-up (first-call allocations, kernels)
        rates = {}
        for name, fn in (("ours", ours), ("hf", hf)):
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                fn(prompts)
                times.append(time.perf_counter() - t0)
            rates[name] = b * args.new / statistics.median(times)
        plen = statistics.mean(map(len, prompts))
        print(f"{b:>5} {plen:>10.0f} {rates['ours']:>13.1f} {rates['hf']:>18.1f} "
              f"{rates['ours'] / rates['hf']:>8.2f}x", flush=True)


if __name__ == "__main__":
    main()
