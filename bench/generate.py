"""Tokens/s of chatrlhf's engine and of HF `generate`, side by side, in one run.

    python bench/generate.py                 # embedded SmolLM2, fp32, 2 threads, batch 1 8 32
    python bench/generate.py --batches 8 --new 64 --repeats 3
    python bench/generate.py --dtype fp32 bf16 int8 --batches 1 8 32

Both generate exactly --new tokens per row (EOS ignored) from the same chat prompts (~41 tokens,
different lengths, left-padded), greedy. Batch 1 is single-stream decoding (chat). Each timed run
of the engine is followed by one of HF, so a busy machine slows both alike; still, run it alone
when you can: on 2 cores any other busy process distorts it.

--dtype, for each of: the engine's ``weights`` ("model" for fp32) against HF ``generate`` on
the same model in that dtype: fp32 as loaded, bf16 via ``.to(torch.bfloat16)`` (everything in
bf16; the engine keeps activations and the KV cache in fp32), int8 via
``torch.ao.quantization.quantize_dynamic`` on its Linear layers (int8 activations too; the
engine's int8 is weight-only, see engine.py).
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
    ap.add_argument("--dtype", nargs="+", default=["fp32"], choices=["fp32", "bf16", "int8"])
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
    params = SamplingParams(max_new_tokens=args.new, temperature=0, ignore_eos=True)

    def ours(engine, prompts):
        res = engine.generate(prompts, params)
        assert all(len(r.token_ids) == args.new for r in res)

    def hf(hf_model, prompts):
        T = max(map(len, prompts))
        ids = torch.tensor([[tok.pad_token_id] * (T - len(p)) + p for p in prompts])
        am = (torch.arange(T)[None] >= torch.tensor([T - len(p) for p in prompts])[:, None]).long()
        with torch.inference_mode():
            out = hf_model.generate(
                ids, attention_mask=am, max_new_tokens=args.new, min_new_tokens=args.new,
                do_sample=False, pad_token_id=tok.pad_token_id,
            )
        assert out.shape[1] == T + args.new

    print(f"model={args.model or 'SmolLM2-135M-Instruct'} threads={args.threads} "
          f"new_tokens={args.new} repeats={args.repeats}")
    print(f"{'dtype':>5} {'batch':>5} {'prompt_len':>10} {'engine tok/s':>13} {'HF generate tok/s':>18} "
          f"{'speed-up':>9}")
    for dtype in args.dtype:
        engine = Engine(model, tok, max_batch_size=max(args.batches),
                        weights="model" if dtype == "fp32" else dtype)
        hf_model = hf_in(model, dtype)
        for b in args.batches:
            prompts = [render_prompt([{"role": "user", "content": questions[i % len(questions)]}], tok)
                       for i in range(b)]
            ours(engine, prompts[:1]), hf(hf_model, prompts[:1])  # warm-up (allocations, packing)
            times: dict[str, list[float]] = {"ours": [], "hf": []}
            for _ in range(args.repeats):  # alternate, so both see the same machine load
                for name, run in (("ours", lambda: ours(engine, prompts)), ("hf", lambda: hf(hf_model, prompts))):
                    t0 = time.perf_counter()
                    run()
                    times[name].append(time.perf_counter() - t0)
            rates = {k: b * args.new / statistics.median(v) for k, v in times.items()}
            plen = statistics.mean(map(len, prompts))
            print(f"{dtype:>5} {b:>5} {plen:>10.0f} {rates['ours']:>13.1f} {rates['hf']:>18.1f} "
                  f"{rates['ours'] / rates['hf']:>8.2f}x", flush=True)


def hf_in(model, dtype: str):
    """The HF model for the comparison in ``dtype`` (a copy unless fp32)."""
    import copy

    if dtype == "fp32":
        return model
    if dtype == "bf16":
        return copy.deepcopy(model).to(torch.bfloat16).eval()
    return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)


if __name__ == "__main__":
    main()
