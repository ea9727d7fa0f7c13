"""PPO building blocks: the experience record, the KL-shaped reward, GAE, the clipped losses and the
KL controllers. Pure tensor functions, no model or I/O, so each is unit-tested against hand-computed
values; ``ppo.py`` holds the loop that drives them.

Shapes: B rollouts, R response positions (right-padded), V vocabulary. ``mask`` (B, R) is 1 on the
reply's tokens up to and including its end-of-reply token and 0 on padding after it, so tokens
sampled after EOS (or padding) never reach a loss, an advantage or a statistic.

References: Ziegler et al. 2019 (KL-penalised reward, adaptive controller), Schulman et al. 2017
(clipped surrogate), Schulman et al. 2016 (GAE), Ouyang et al. 2022 (InstructGPT, ptx).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported inside functions so importing this module stays cheap
    import torch


# ----------------------------------------------------------------------------- experience record


@dataclass
class Experience:
    """One batch of rollouts with everything the PPO update needs (all tensors on one device)."""

    sequences: "torch.Tensor"  # (B, P+R) long: left-padded prompt ++ right-padded reply
    attention_mask: "torch.Tensor"  # (B, P+R) long: 1 on real tokens
    prompt_len: int  # P: reply token r sits at column P + r
    mask: "torch.Tensor"  # (B, R) float: 1 on reply tokens up to and including EOS
    old_logprobs: "torch.Tensor"  # (B, R) log π_old(a_r | s_r) at the sampling temperature
    ref_logprobs: "torch.Tensor"  # (B, R) log π_ref(a_r | s_r), same temperature
    values: "torch.Tensor"  # (B, R) V_old(s_r), the critic before the update
    rewards: "torch.Tensor"  # (B, R) -β·KL per token, plus the score at the end-of-reply token
    advantages: "torch.Tensor"  # (B, R) GAE advantages, whitened over valid tokens
    returns: "torch.Tensor"  # (B, R) advantages (unwhitened) + values: the critic's target
    scores: "torch.Tensor"  # (B,) rm_coef · reward-model score, plus the non-ending penalty
    ended: "torch.Tensor"  # (B,) bool: the reply emitted its end-of-reply token
    trunk: "torch.Tensor | None" = None  # (B, P+R, H) frozen blocks' output, when only the top ones train
    rm_raw: "torch.Tensor | None" = None  # (B,) RM score before ``rm_coef`` scaling (only when rm_coef != 1)

    def select(self, idx: "torch.Tensor") -> "Experience":
        """A minibatch: the rows ``idx`` of every tensor field."""
        fields = {k: v for k, v in self.__dict__.items()}
        return Experience(**{k: (v[idx] if hasattr(v, "index_select") else v) for k, v in fields.items()})

    def to(self, device: "torch.device | str") -> "Experience":
        """Every tensor field moved to ``device``."""
        return Experience(**{k: (v.to(device) if hasattr(v, "to") else v) for k, v in self.__dict__.items()})


# per-token fields: (B, R), right-padded with 0 (never read where ``mask`` is 0)
_TOKEN_FIELDS = ("mask", "old_logprobs", "ref_logprobs", "values", "rewards", "advantages", "returns")


def concat_experiences(parts: list[Experience], pad_id: int) -> Experience:
    """One batch from several (e.g. each process's rollouts), padded to the longest prompt P and
    reply R among them, as one batch of all the rows would have been: prompts get more left
    padding (``pad_id``, attention 0), replies and per-token fields more right padding (0)."""
    import torch
    import torch.nn.functional as F

    P = max(e.prompt_len for e in parts)
    R = max(e.mask.shape[1] for e in parts)
    out: dict = {"prompt_len": P}
    for k, first in parts[0].__dict__.items():
        if k == "prompt_len":
            continue
        if first is None:  # trunk or rm_raw absent in this configuration
            out[k] = None
            continue
        padded = []
        for e in parts:
            v, left, right = getattr(e, k), P - e.prompt_len, R - e.mask.shape[1]
            if k in ("sequences", "attention_mask"):  # (B, P+R)
                v = F.pad(v, (left, right), value=pad_id if k == "sequences" else 0)
            elif k == "trunk":  # (B, P+R, H)
                v = F.pad(v, (0, 0, left, right))
            elif k in _TOKEN_FIELDS:
                v = F.pad(v, (0, right))
            padded.append(v)
        out[k] = torch.cat(padded)
    return Experience(**out)


# ----------------------------------------------------------------------------- masked statistics


def masked_mean(x: "torch.Tensor", mask: "torch.Tensor", dim: int | None = None) -> "torch.Tensor":
    """Mean of ``x`` over positions where ``mask`` is 1 (masked entries may hold anything, even nan)."""
    import torch

    x = torch.where(mask.bool(), x, torch.zeros_like(x))
    if dim is None:
        return x.sum() / mask.sum().clamp(min=1)
    return x.sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: "torch.Tensor", mask: "torch.Tensor") -> "torch.Tensor":
    mean = masked_mean(x, mask)
    return masked_mean((x - mean) ** 2, mask)


def masked_whiten(x: "torch.Tensor", mask: "torch.Tensor", shift_mean: bool = True) -> "torch.Tensor":
    """Normalise valid entries to unit variance (and zero mean when ``shift_mean``); masked ones -> 0.

    Advantages are whitened over the whole batch's valid tokens, never over padding, so a batch of
    short replies is not dominated by zeros.
    """
    import torch

    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return torch.where(mask.bool(), out, torch.zeros_like(out))


# ----------------------------------------------------------------------------- rewards and GAE


def end_index(mask: "torch.Tensor") -> "torch.Tensor":
    """(B,) index of each row's last valid token (0 for an empty row)."""
    return (mask.sum(1).long() - 1).clamp(min=0)


def kl_penalized_rewards(
    scores: "torch.Tensor",  # (B,)
    logprobs: "torch.Tensor",  # (B, R)
    ref_logprobs: "torch.Tensor",  # (B, R)
    mask: "torch.Tensor",  # (B, R)
    kl_coef: float,
) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Per-token reward r_t = -β (log π(a_t) - log π_ref(a_t)), plus the score at the last token.

    The KL term is the single-sample estimator used by Ziegler et al. and InstructGPT; it is taken
    per token (not summed into the score) so GAE can assign it to the token that caused it.
    Returns (rewards (B, R), kl (B, R)); both are 0 where ``mask`` is 0.
    """
    import torch

    m = mask.to(logprobs.dtype)
    kl = (logprobs - ref_logprobs) * m
    rewards = -kl_coef * kl
    last = end_index(mask)
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    has_tokens = m.sum(1) > 0
    rewards[rows, last] += torch.where(has_tokens, scores.to(rewards.dtype), torch.zeros_like(scores))
    return rewards, kl


def apply_nonending_penalty(scores: "torch.Tensor", ended: "torch.Tensor", penalty: float) -> "torch.Tensor":
    """Add ``penalty`` (negative) to the score of every reply that ran out of tokens before EOS.

    Without it the policy can dodge a low score by rambling until the length limit: the RM only
    ever saw finished replies, so its score on a truncated one is meaningless.
    """
    import torch

    return scores + torch.where(ended, torch.zeros_like(scores), torch.full_like(scores, penalty))


def gae_advantages(
    rewards: "torch.Tensor",  # (B, R)
    values: "torch.Tensor",  # (B, R)
    mask: "torch.Tensor",  # (B, R)
    gamma: float,
    lam: float,
) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Generalised advantage estimation over each reply; returns (advantages, returns), both (B, R).

    δ_t = r_t + γ V(s_{t+1}) - V(s_t), A_t = δ_t + γλ A_{t+1}. The value after the last valid token
    is 0 (the episode ends there), which the masking below gives for free: rewards and values are
    zeroed after EOS, so every δ and carried A there is 0.
    """
    import torch

    m = mask.to(values.dtype)
    values, rewards = values * m, rewards * m
    B, R = rewards.shape
    adv = torch.zeros_like(rewards)
    carry = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(R)):
        next_v = values[:, t + 1] if t + 1 < R else torch.zeros_like(carry)
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        carry = delta + gamma * lam * carry
        adv[:, t] = carry
    adv = adv * m
    return adv, (adv + values) * m


# ----------------------------------------------------------------------------- losses


def policy_loss(
    logprobs: "torch.Tensor",  # (B, R) under the policy being updated
    old_logprobs: "torch.Tensor",  # (B, R)
    advantages: "torch.Tensor",  # (B, R)
    mask: "torch.Tensor",  # (B, R)
    clip: float,
) -> tuple["torch.Tensor", dict[str, "torch.Tensor"]]:
    """The clipped surrogate: mean over valid tokens of max(-A·ρ, -A·clip(ρ, 1±ε))."""
    import torch

    log_ratio = torch.where(mask.bool(), logprobs - old_logprobs, torch.zeros_like(logprobs))
    ratio = torch.exp(log_ratio)
    pg1 = -advantages * ratio
    pg2 = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(pg1, pg2), mask)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((pg2 > pg1).float(), mask),
            # k3 estimator of KL(old || new): non-negative, low variance; a drift alarm
            "approx_kl": masked_mean(ratio - 1 - log_ratio, mask),
            "ratio": masked_mean(ratio, mask),
        }
    return loss, stats


def value_loss(
    values: "torch.Tensor",  # (B, R) under the critic being updated
    old_values: "torch.Tensor",  # (B, R)
    returns: "torch.Tensor",  # (B, R)
    mask: "torch.Tensor",  # (B, R)
    clip: float,
) -> tuple["torch.Tensor", dict[str, "torch.Tensor"]]:
    """Clipped value loss: 0.5 · mean of max((V - G)², (V_clip - G)²) over valid tokens."""
    import torch

    v_clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    l1, l2 = (values - returns) ** 2, (v_clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(l1, l2), mask)
    with torch.no_grad():
        stats = {"vf_clipfrac": masked_mean((l2 > l1).float(), mask)}
    return loss, stats


def token_logprobs(logits: "torch.Tensor", tokens: "torch.Tensor", temperature: float) -> "torch.Tensor":
    """log softmax(logits / T)[token]: (B, R, V), (B, R) -> (B, R), in float32.

    The same temperature as sampling, so the ratio to the engine's (or the reference's) log-probs
    compares the same distribution the tokens were drawn from.
    """
    import torch

    logits = logits.float() / max(temperature, 1e-6)
    return torch.gather(logits.log_softmax(-1), -1, tokens.unsqueeze(-1)).squeeze(-1)


def entropy_from_logits(logits: "torch.Tensor", temperature: float) -> "torch.Tensor":
    """(B, R, V) -> (B, R) entropy of softmax(logits / T)."""
    logits = logits.float() / max(temperature, 1e-6)
    logp = logits.log_softmax(-1)
    return -(logp.exp() * logp).sum(-1)


# ----------------------------------------------------------------------------- several processes


def share_of(counts: list[float], world: int, rank: int) -> tuple[list[int], float]:
    """This process's part of a minibatch (positions into it) and the weight of its loss.

    ``counts`` are the rows' loss tokens. The losses are means over a minibatch's tokens and the
    processes' gradients are averaged, so a part holding n of the minibatch's N tokens weighs
    world·n/N: the average is then the whole minibatch's gradient. A process left without rows (a
    minibatch smaller than ``world``) runs the first one at weight 0, because every process has to
    join each gradient all-reduce."""
    if world == 1:
        return list(range(len(counts))), 1.0
    mine = list(range(rank, len(counts), world))
    if not mine:
        return [0], 0.0
    return mine, world * sum(counts[i] for i in mine) / max(sum(counts), 1.0)


# ----------------------------------------------------------------------------- KL controllers


@dataclass
class FixedKLController:
    value: float

    def update(self, current_kl: float, n_steps: int) -> None:
        """A fixed β ignores the measured KL."""


@dataclass
class AdaptiveKLController:
    """Ziegler et al. (2019): steer β so the policy's KL to the reference tracks ``target``.

    β ← β · (1 + K_β · e), e = clip(KL/target - 1, -0.2, 0.2), K_β = n_steps / horizon: a
    proportional controller whose step is clipped so one noisy batch cannot swing β far.
    """

    value: float
    target: float
    horizon: int

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon


def make_kl_controller(init: float, target: float | None, horizon: int):
    """Adaptive when a target KL is given, fixed otherwise."""
    if target is None or target <= 0:
        return FixedKLController(init)
    return AdaptiveKLController(init, target, horizon)
