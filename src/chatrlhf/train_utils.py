"""Small helpers the training stages share: padding, mixed precision, metrics files, stage markers
and progress bars. Nothing here knows about a particular stage.

A stage directory is complete when it holds a ``DONE`` file, written atomically as the stage's last
act; a run killed at any point before that reruns the stage when started again.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

if TYPE_CHECKING:
    import torch

DONE = "DONE"


# ----------------------------------------------------------------------------- stage markers


def is_done(stage_dir: str | Path) -> bool:
    return (Path(stage_dir) / DONE).exists()


def mark_done(stage_dir: str | Path, info: dict[str, Any] | None = None) -> None:
    """Write the stage's manifest last and atomically: its presence means every output is there."""
    write_json(Path(stage_dir) / DONE, {"finished_at": time.time(), **(info or {})})


INPUTS = "inputs.json"


def write_inputs(stage_dir: str | Path, **files: Sequence[str]) -> None:
    """``inputs.json``: the data files a stage is about to train on, by role (``rankings``,
    ``prompts``, ``ptx_data``...), with their sha256, None for a file that does not exist (written
    before the stage runs, so its ``DONE`` stays the last write)."""
    import hashlib

    Path(stage_dir).mkdir(parents=True, exist_ok=True)
    write_json(Path(stage_dir) / INPUTS, {k: {p: hashlib.sha256(Path(p).read_bytes()).hexdigest()
                                              if Path(p).exists() else None for p in v} for k, v in files.items()})


def read_inputs(stage_dir: str | Path) -> dict[str, dict[str, str]] | None:
    """What ``write_inputs`` recorded, less the files that did not exist (the stage trained on
    nothing from them); None for a stage without the file (written before it existed)."""
    path = Path(stage_dir) / INPUTS
    if not path.is_file():
        return None
    return {k: {f: sha for f, sha in files.items() if sha is not None} for k, files in read_json(path).items()}


def write_json(path: str | Path, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=float))
    os.replace(tmp, path)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


class MetricsLog:
    """Append-only JSONL of per-step metrics; opened fresh (truncated) when a stage starts."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def log(self, **row: Any) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({k: _plain(v) for k, v in row.items()}) + "\n")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    return v


# ----------------------------------------------------------------------------- torch helpers


def adamw(params: Any, acc: Any = None, **kw: Any) -> Any:
    """``torch.optim.AdamW`` over ``params`` (tensors or param groups), fused where PyTorch has the
    kernel: one pass over each tensor instead of about ten elementwise ones. For a full fine-tune
    of the 135M model on 2 CPU cores the step takes 0.09 s instead of 0.54 s (TRL's default optim
    is the fused one too). Not under DeepSpeed or FSDP (``acc``), which manage the optimizer's
    tensors themselves, nor for a tensor off CPU/CUDA or not floating point."""
    import torch

    groups = list(params)
    tensors = [t for g in groups for t in (g["params"] if isinstance(g, dict) else [g])]
    sharded = acc is not None and str(getattr(acc, "distributed_type", "")).split(".")[-1] in ("DEEPSPEED", "FSDP")
    fusable = bool(tensors) and not sharded and all(
        t.device.type in ("cpu", "cuda") and t.is_floating_point() for t in tensors)
    return torch.optim.AdamW(groups, **kw, **({"fused": True} if fusable else {}))


def setup_torch(seed: int, threads: int = 0) -> None:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    random.seed(seed)
    torch.manual_seed(seed)


def autocast(dtype: str):
    """bf16 autocast on CPU (the largest single speed-up measured here); "float32" disables it."""
    import torch

    if dtype in ("bf16", "bfloat16"):
        return torch.autocast("cpu" if not torch.cuda.is_available() else "cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_accelerator(dtype: str) -> Any:
    """The ``accelerate.Accelerator`` the training loops run under: one plain process by default,
    DDP/FSDP/DeepSpeed under ``accelerate launch``. bf16 mixed precision only on a GPU; on CPU the
    stages keep their own ``autocast`` (accelerate's CPU bf16 would add nothing to it)."""
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    gpu = torch.cuda.is_available()
    mp = "bf16" if dtype in ("bf16", "bfloat16") and gpu else "no"
    # the state is a per-process singleton that refuses a new precision; the pipeline runs several
    # stages, each with its own dtype, in one process (the launched process group is kept)
    if AcceleratorState._shared_state.get("_mixed_precision", mp) != mp:
        AcceleratorState._reset_state()
    # cpu=True without CUDA: the device ``device()`` uses (not MPS), and gloo across launched CPU processes
    return Accelerator(mixed_precision=mp, cpu=not gpu)


def as_module(*modules: Any) -> Any:
    """The modules as one ``nn.Module`` whose ``forward(fn, *args)`` returns ``fn(*args)``, for
    ``accelerator.prepare``. The stages reach into the trunk (``hidden_states``, cached frozen
    blocks) instead of calling ``model.forward``; DDP, FSDP and DeepSpeed only sync and gather
    when the computation runs inside the wrapped module's forward."""
    import torch

    class Parts(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.parts = torch.nn.ModuleList(modules)

        def forward(self, fn: Any, *args: Any) -> Any:
            return fn(*args)

    return Parts()


def weights_sharded(accelerator: Any) -> bool:
    """True under FSDP or DeepSpeed ZeRO-3: each process then holds only a shard of the weights,
    and the whole model exists only inside the wrapped module's forward (and in
    ``accelerator.get_state_dict``), so nothing may read the plain modules directly."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.FSDP:
        return True
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        return accelerator.state.deepspeed_plugin.zero_stage == 3
    return False


def gathered_parts(accelerator: Any, wrapped: Any, build: Any, sharded: bool | None = None) -> list[Any] | None:
    """The trained modules of ``wrapped`` (an ``as_module``) with their whole weights, on the main
    process; None on the others. Unsharded they are the trained modules themselves. Sharded,
    every process must call this: they gather the full state dict together
    (``accelerator.get_state_dict``; FSDP ``FULL_STATE_DICT`` or ZeRO-3 ``zero3_save_16bit_model``),
    and the main process loads it into ``build()``, fresh copies of the same modules."""
    if not (weights_sharded(accelerator) if sharded is None else sharded):
        return list(accelerator.unwrap_model(wrapped).parts) if accelerator.is_main_process else None
    state = accelerator.get_state_dict(wrapped)
    if not accelerator.is_main_process:
        return None
    parts = list(build())
    holder = as_module(*parts)
    missing, unexpected = holder.load_state_dict(state, strict=False)
    # a tied weight (the LM head = the embeddings) may come once, under either name
    tied = {n for n, _ in holder.named_parameters(remove_duplicate=False)} - {n for n, _ in holder.named_parameters()}
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise ValueError(f"gathered weights do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return parts


def mean_over_processes(accelerator: Any, x: float) -> float:
    """The mean of a per-process number (a loss) over all processes; ``x`` itself when alone."""
    import torch

    if accelerator.num_processes == 1:
        return x
    t = torch.tensor(x, dtype=torch.float64, device=accelerator.device)
    return accelerator.reduce(t, reduction="mean").item()


def device() -> "torch.device":
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pad_right(seqs: Sequence[Sequence[int]], pad_id: int, value_seqs: Sequence[Sequence[int]] | None = None,
              pad_value: int = 0) -> tuple["torch.Tensor", "torch.Tensor"] | tuple["torch.Tensor", ...]:
    """Right-pad to (B, T); returns (ids, attention_mask) and, given ``value_seqs``, that padded too."""
    import torch

    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), T), dtype=torch.long)
    vals = torch.full((len(seqs), T), pad_value, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(list(s), dtype=torch.long)
        attn[i, : len(s)] = 1
        if value_seqs is not None:
            vals[i, : len(s)] = torch.tensor(list(value_seqs[i]), dtype=torch.long)
    return (ids, attn, vals) if value_seqs is not None else (ids, attn)


def pad_left(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    import torch

    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, T - len(s):] = torch.tensor(list(s), dtype=torch.long)
            attn[i, T - len(s):] = 1
    return ids, attn


def last_turn_mask(mask: Sequence[int]) -> list[int]:
    """Keep only the last run of 1s: the final assistant reply's tokens.

    For demonstrations whose ``meta.loss_on`` is ``"last_turn"`` (e.g. a dialog in which the user
    corrects an earlier, deliberately wrong reply): imitating the earlier turns would teach the mistake.
    """
    out = [0] * len(mask)
    i = len(mask) - 1
    while i >= 0 and not mask[i]:
        i -= 1
    while i >= 0 and mask[i]:
        out[i] = 1
        i -= 1
    return out


def encode_demos(convs: Sequence[Any], tokenizer: Any, max_length: int) -> list[tuple[list[int], list[int]]]:
    """(ids, loss mask) of every conversation that has at least one assistant token left; with
    ``meta.loss_on == "last_turn"`` only the final reply is trained on."""
    from chatrlhf.chat_format import render

    out = []
    for c in convs:
        r = render(c.messages, tokenizer, max_length=max_length)
        mask = last_turn_mask(r.mask) if c.meta.get("loss_on") == "last_turn" else r.mask
        if any(mask[1:]):
            out.append((r.ids, mask))
    return out


def pad_id_of(tokenizer: Any) -> int:
    pid = tokenizer.pad_token_id
    return pid if pid is not None else tokenizer.eos_token_id


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i: i + size]


def length_buckets(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Indices grouped by length so that each group, right-padded, holds at most ``max_tokens``
    tokens (a group always gets at least one row). One long sequence in a random batch otherwise
    pads every row to its length: with the simulator's 300-word replies, 2-3x the real tokens."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    for i in order:  # ascending, so the newest member is the longest
        if groups and (len(groups[-1]) + 1) * lengths[i] <= max_tokens:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def progress(iterable: Iterable[Any] | None = None, *, desc: str, total: int | None = None, **kw: Any):
    """A tqdm bar with ETA; quiet when CHATRLHF_NO_PROGRESS is set (tests, CI logs)."""
    from tqdm.auto import tqdm

    disable = kw.pop("disable", False) or bool(os.environ.get("CHATRLHF_NO_PROGRESS"))
    return tqdm(iterable, desc=desc, total=total, disable=disable, dynamic_ncols=True, **kw)


def generate_with_progress(engine: Any, prompts: list[list[int]], params: Any, desc: str) -> list[Any]:
    """``engine.generate`` with a bar that advances as replies finish (sampling hundreds of
    replies on a CPU takes minutes)."""
    gen = engine.stream(prompts, params)
    with progress(total=len(prompts), desc=desc, unit="reply") as bar:
        for event in gen:
            if event.finish_reason is not None:
                bar.update(1)
    return gen.results


def cosine_lr(step: int, total: int, warmup: int, base: float, floor: float = 0.1) -> float:
    """Linear warm-up then cosine decay to ``floor``·base."""
    import math

    if step < warmup:
        return base * (step + 1) / max(warmup, 1)
    t = (step - warmup) / max(total - warmup, 1)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))
