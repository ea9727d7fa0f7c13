"""PPO's rollouts (pipeline step 6, part 1): the model the engine samples from, the vLLM backend,
one sampled reply per prompt, and, under ``accelerate launch``, the processes' shares gathered
back into the whole batch. Split from ``ppo`` to keep the loop readable."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatrlhf.ppo import Models, PPOConfig
    from chatrlhf.ppo_core import Experience


def refresh_gen_model(models: Models, cfg: PPOConfig) -> Any:
    """The model the engine samples from: the policy's current weights, in ``rollout_dtype``."""
    import torch

    policy = models.policy
    merged = hasattr(policy, "merge_and_unload")
    if cfg.rollout_dtype == "float32" and not merged:
        return policy
    dtype = torch.bfloat16 if cfg.rollout_dtype in ("bf16", "bfloat16") else torch.float32
    if merged:  # LoRA: fold the adapter into a plain copy the engine's fast path understands
        gen = copy.deepcopy(policy).merge_and_unload().to(dtype)
        return gen.eval()
    if models.gen_model is None:
        models.gen_model = copy.deepcopy(policy).to(dtype).eval().requires_grad_(False)
    with torch.no_grad():
        for dst, src in zip(models.gen_model.parameters(), policy.parameters()):
            dst.copy_(src)
    return models.gen_model


def vllm_rollouts(models: Models, cfg: PPOConfig, current: Any = None) -> Any:
    """The vLLM rollout backend holding the policy's current weights (LoRA merged): started from
    the policy's checkpoint directory on first use, then refreshed in place."""
    import dataclasses

    from chatrlhf.models import resolve_model_dir
    from chatrlhf.vllm_backend import VLLMRollouts

    rollouts = current
    if rollouts is None:
        dtype = "bfloat16" if cfg.rollout_dtype in ("bf16", "bfloat16") else "float32"
        rollouts = VLLMRollouts(resolve_model_dir(cfg.policy), dtype=dtype,
                                gpu_memory_utilization=cfg.vllm_gpu_memory, seed=cfg.seed)
    # rollout_dtype float32: the policy itself (no copy), or under LoRA a merged copy
    plain = refresh_gen_model(models, dataclasses.replace(cfg, rollout_dtype="float32"))
    rollouts.load_weights(plain.state_dict().items())
    return rollouts


def generate_rollouts(models: Models, cfg: PPOConfig, batch: list[tuple[Any, list[int]]], rows: list[int],
                      it: int, vllm: Any = None) -> tuple[list[Any], Any]:
    """Step 1: one sampled reply (an engine ``Completion``) to each prompt ``batch[row]``, ``row``
    in ``rows``, from the current policy. A row's seed is its index in the iteration's whole batch
    (and the engine draws each row from its own generator), so which tokens a prompt gets does not
    depend on how the batch is split over processes. Returns the completions and the vLLM backend
    (``rollout_backend: vllm``; started once, on first use, then given back here each iteration)."""
    from chatrlhf.engine import Engine, SamplingParams

    if cfg.rollout_backend == "vllm":  # its log-probs are not used: make_experience recomputes them
        engine = vllm = vllm_rollouts(models, cfg, vllm)
    else:
        engine = Engine(refresh_gen_model(models, cfg), models.tokenizer, max_batch_size=cfg.rollout_batch)
    params = [SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                             seed=(cfg.seed * 100003 + it) * 1009 + row) for row in rows]
    return engine.generate([batch[row][1] for row in rows], params), vllm


def gather_rollouts(acc: Any, rows: list[int], exp: "Experience", completions: list[Any],
                    pad_id: int) -> tuple["Experience", list[Any]]:
    """Every process's experience and completions (its ``rows`` of the batch), as the whole batch
    in row order on every process: what one process would have built. One process: unchanged.
    With frozen lower blocks their states travel too, (B, P+R, H) floats per iteration."""
    if acc.num_processes == 1:
        return exp, completions
    import torch
    from accelerate.utils import gather_object

    from chatrlhf.ppo_core import concat_experiences
    from chatrlhf.train_utils import device

    # pickled through the CPU: a CUDA tensor would be unpickled on its sender's device
    parts = gather_object([(rows, exp.to("cpu"), completions)])
    order = [r for part_rows, _, _ in parts for r in part_rows]
    merged = concat_experiences([e for _, e, _ in parts], pad_id)
    inverse = torch.argsort(torch.tensor(order))  # gathered position of each batch row
    comps = [c for _, _, part in parts for c in part]
    return merged.select(inverse).to(device()), [comps[i] for i in inverse.tolist()]


# ----------------------------------------------------------------------------- experience
