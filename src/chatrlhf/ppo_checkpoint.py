"""PPO's resumable state: what the loop carries between iterations, written every
``checkpoint_every`` iterations so a killed stage resumes there (``ppo.run``)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatrlhf.ppo import Models

CHECKPOINT = "resume.pt"


def save_checkpoint(out_dir: Path, iteration: int, models: Models, opt: Any, kl_ctl: Any, rng: random.Random) -> None:
    """Everything the loop carries between iterations, written atomically: the trainable weights
    (the frozen ones never change), the value head, AdamW's moments, β and the RNG states (batch
    choice, minibatch order and ptx draws come from ``rng``; rollout seeds from the iteration)."""
    import os

    import torch

    trainable = {n: p.detach().clone() for n, p in models.policy.named_parameters() if p.requires_grad}
    state = {"iteration": iteration, "policy": trainable, "value_head": models.value_head.state_dict(),
             "optimizer": opt.state_dict(), "kl_coef": kl_ctl.value, "rng": rng.getstate(),
             "torch_rng": torch.get_rng_state()}
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / (CHECKPOINT + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, out_dir / CHECKPOINT)


def load_checkpoint(out_dir: Path, models: Models, opt: Any, kl_ctl: Any, rng: random.Random) -> int:
    """Restore ``save_checkpoint``'s state; returns the iterations it holds (0 without one)."""
    import torch

    path = out_dir / CHECKPOINT
    if not path.exists():
        return 0
    state = torch.load(path, weights_only=False)
    params = dict(models.policy.named_parameters())
    missing = set(state["policy"]) - {n for n, p in params.items() if p.requires_grad}
    if missing:
        raise ValueError(f"{path} does not match this PPO configuration (unknown trainable {sorted(missing)[:3]});"
                         f" delete it to start the stage over")
    with torch.no_grad():
        for name, value in state["policy"].items():
            params[name].copy_(value)
    models.value_head.load_state_dict(state["value_head"])
    opt.load_state_dict(state["optimizer"])
    kl_ctl.value = state["kl_coef"]
    rng.setstate(state["rng"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["iteration"])
