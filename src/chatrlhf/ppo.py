"""PPO against the reward model with a per-token KL penalty to the SFT reference (InstructGPT).

Consumes the SFT (or previous round's) policy checkpoint, the reward model checkpoint and prompt
JSONL files (Conversations ending on a user turn; optionally demonstrations for the ptx loss).
Produces ``out_dir/`` = the policy checkpoint (``save_pretrained``, LoRA merged), ``metrics.jsonl``
(one row per iteration: reward, KL, β, entropy, clip fraction, value loss, reply length, and the
gold score when the prompts come from the simulator) and ``DONE``. Run with ``chatrlhf ppo`` or as
pipeline step 6, or on several processes with ``accelerate launch ... chatrlhf ppo`` (see ``run``).
The pure parts (GAE, losses, controllers) live in ``ppo_core``, the rollouts in ``ppo_rollouts``
and the resumable state in ``ppo_checkpoint``.

Models: the policy, initialised from SFT; a frozen reference (a copy of the SFT weights, or under
LoRA the same model with its adapter disabled); the reward model; and a value head on the policy's
own trunk (cheapest on CPU: one forward pass gives log-probs and values), optionally initialised
from the reward model's head. Rollouts come from the project's engine on a bf16 copy of the policy
that is refreshed every iteration.
"""

from __future__ import annotations

import copy
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from chatrlhf.heads import decoder_of
from chatrlhf.ppo_checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from chatrlhf.ppo_rollouts import gather_rollouts, generate_rollouts

if TYPE_CHECKING:
    import torch

    from chatrlhf.ppo_core import Experience


@dataclass
class PPOConfig:
    policy: str = "smollm2"  # initial policy (SFT checkpoint, or the previous round's PPO policy)
    reference: str = ""  # KL reference (the SFT checkpoint); "" = the initial policy
    reward_model: str = ""  # reward model checkpoint (heads.ScalarModel)
    prompts: list[str] = field(default_factory=list)  # Conversation JSONL files of prompts
    ptx_data: list[str] = field(default_factory=list)  # demonstrations for the ptx loss
    out_dir: str = "runs/manual/ppo"
    iterations: int = 20  # rollout + update cycles
    rollout_batch: int = 16  # prompts per iteration
    minibatch_size: int = 8
    ppo_epochs: int = 1  # passes over each rollout batch
    max_prompt_len: int = 256
    max_new_tokens: int = 64
    temperature: float = 1.0  # sampling temperature; log-probs use the same one
    top_p: float = 1.0
    lr: float = 1e-5
    value_head_lr: float = 1e-3
    vf_coef: float = 0.1  # value loss weight (it flows into the shared trunk)
    clip: float = 0.2
    vf_clip: float = 0.2
    gamma: float = 1.0
    lam: float = 0.95
    kl_coef: float = 0.05  # initial β
    kl_target: float = 0.0  # >0: adaptive controller (Ziegler et al.) toward this KL per reply
    kl_horizon: int = 10000
    nonending_penalty: float = -1.0  # added to the score of a reply that never emitted EOS
    whiten_advantages: bool = True
    # weight of the RM score in the per-token reward; 0 = the ablation "PPO with zero RM reward"
    # (the KL penalty, the non-ending penalty and ptx stay)
    rm_coef: float = 1.0
    ptx_coef: float = 0.0  # γ: weight of the SFT loss on ``ptx_data`` mixed into each update
    ptx_batch: int = 4
    value_init: str = "zero"  # "zero" or "rm": start the value head from the reward model's head
    lora_r: int = 0
    lora_alpha: int = 32
    # >0 (without LoRA): train only the top N blocks. The frozen blocks' output is then computed
    # once per rollout batch and reused by the old-policy pass, every update pass, the reference
    # and the reward model whenever their lower blocks hold the same (SFT) weights.
    train_layers: int = 0
    dtype: str = "bf16"  # autocast for the training forward/backward
    rollout_dtype: str = "bf16"  # weights of the generation copy ("float32": sample from the policy itself)
    # "engine": the project's sampling engine; "vllm": vLLM (the ``vllm`` extra, a GPU), synced with
    # the policy before every rollout batch (vllm_backend). Old log-probs always come from the trainer.
    rollout_backend: str = "engine"
    vllm_gpu_memory: float = 0.3  # share of the GPU vLLM may take beside the trainer (weights + KV cache)
    gold: bool = True  # score rollouts with the simulator's gold judge when prompts carry a task
    # Save the trainable weights, optimizer, β and RNG states every N iterations (0 = never), so a
    # killed PPO stage resumes at its last checkpoint instead of its first iteration.
    checkpoint_every: int = 0
    seed: int = 0
    threads: int = 0

    def __post_init__(self) -> None:
        if self.rollout_backend not in ("engine", "vllm"):
            raise ValueError(f"rollout_backend must be 'engine' or 'vllm', got {self.rollout_backend!r}")


@dataclass
class Models:
    policy: Any  # trainable causal LM (maybe PEFT-wrapped)
    reference: Any | None  # frozen SFT copy; None under LoRA (adapter disabled instead)
    value_head: Any  # torch.nn.Linear on the policy trunk
    reward: Any  # heads.ScalarModel, frozen
    tokenizer: Any
    gen_model: Any  # what the engine samples from
    trunk_start: int = 0  # >0: blocks below this are frozen; their output is computed once per batch
    ref_shares_trunk: bool = False  # the reference's lower blocks equal the policy's
    rm_shares_trunk: bool = False  # so do the reward model's


# ----------------------------------------------------------------------------- setup


def build_models(cfg: PPOConfig) -> Models:
    from chatrlhf.heads import apply_lora, freeze_lower_layers, load_head, load_scalar_model, new_scalar_head
    from chatrlhf.models import load_model
    from chatrlhf.train_utils import device

    policy, tok = load_model(cfg.policy)
    reference = None
    if cfg.reference and Path(cfg.reference).resolve() != Path(cfg.policy).resolve():
        # a later round: the policy moved on, the KL anchor stays at SFT
        reference = load_model(cfg.reference)[0].eval().requires_grad_(False).to(device())
    if cfg.lora_r > 0:
        policy = apply_lora(policy, cfg.lora_r, cfg.lora_alpha)
    elif reference is None:
        reference = copy.deepcopy(policy).eval().requires_grad_(False).to(device())
    rm, _ = load_scalar_model(cfg.reward_model)
    rm.lm.requires_grad_(False)
    rm.head.requires_grad_(False)
    rm.lm.to(device())
    rm.head.to(device())
    if cfg.value_init == "rm":
        head, _ = load_head(cfg.reward_model)
    else:
        head = new_scalar_head(policy.config.hidden_size)
    models = Models(policy.to(device()), reference, head.to(device()), rm, tok, None)
    n_layers = len(list(decoder_of(policy).layers))
    if cfg.lora_r <= 0 and 0 < cfg.train_layers < n_layers:
        freeze_lower_layers(policy, cfg.train_layers)
        models.trunk_start = n_layers - cfg.train_layers
        models.ref_shares_trunk = same_lower_blocks(policy, reference, models.trunk_start)
        models.rm_shares_trunk = same_lower_blocks(policy, rm.lm, models.trunk_start)
    return models


def same_lower_blocks(a: Any, b: Any, upto: int) -> bool:
    """Whether two models compute the same states below block ``upto`` (same embeddings and
    blocks, bit for bit): then one forward pass of those blocks serves both."""
    import torch

    da, db = decoder_of(a), decoder_of(b)
    if len(list(da.layers)) != len(list(db.layers)):
        return False
    mods = [(da.embed_tokens, db.embed_tokens)] + list(zip(list(da.layers)[:upto], list(db.layers)[:upto]))
    for ma, mb in mods:
        pa, pb = list(ma.parameters()), list(mb.parameters())
        if len(pa) != len(pb) or not all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(pa, pb)):
            return False
    return True


def load_prompts(paths: list[str], tokenizer: Any, max_len: int) -> list[tuple[Any, list[int]]]:
    from chatrlhf.chat_format import render_prompt
    from chatrlhf.schema import Conversation, read_jsonl

    out = []
    for p in paths:
        for conv in read_jsonl(p, Conversation):
            if conv.messages[-1]["role"] == "assistant":  # a demonstration: prompt with its prefix
                conv = Conversation(conv.messages[:-1], conv.meta)
            if conv.is_prompt:
                out.append((conv, render_prompt(conv.messages, tokenizer, max_length=max_len)))
    if not out:
        raise ValueError(f"no prompts in {paths}")
    return out


def gold_scorer(enabled: bool) -> Callable[[Any, str], float | None] | None:
    """The simulator's gold judge as (conversation, reply) -> score, or None without a simulator."""
    if not enabled:
        return None
    try:
        from chatrlhf.simulate import judge
    except ImportError:
        return None

    def score(conv: Any, reply: str) -> float | None:
        if "task" not in conv.meta:
            return None
        return float(judge(conv.messages, reply, conv.meta).total)

    return score


# ----------------------------------------------------------------------------- forward passes


def response_forward(lm: Any, exp_seq: "torch.Tensor", attn: "torch.Tensor", prompt_len: int,
                     resp_len: int, trunk: "torch.Tensor | None" = None, start: int = 0) -> "torch.Tensor":
    """(B, P+R) -> (B, R, H): hidden states at the positions that predict each reply token; from
    ``trunk`` (the input of block ``start``) when the lower blocks' output is already known."""
    from chatrlhf.heads import hidden_states, upper_hidden

    if trunk is None:
        h = hidden_states(lm, exp_seq, attn)  # (B, P+R, H)
    else:
        h = upper_hidden(lm, trunk, attn, start)
    return h[:, prompt_len - 1: prompt_len - 1 + resp_len]


def logprobs_and_values(models: Models, seq: "torch.Tensor", attn: "torch.Tensor", prompt_len: int,
                        resp: "torch.Tensor", cfg: PPOConfig, want_entropy: bool = False,
                        trunk: "torch.Tensor | None" = None):
    """Policy log-probs (B, R), values (B, R) and optionally entropy (B, R) from one forward pass."""
    from chatrlhf.heads import lm_head_of
    from chatrlhf.ppo_core import entropy_from_logits, token_logprobs

    h = response_forward(models.policy, seq, attn, prompt_len, resp.shape[1], trunk, models.trunk_start)
    logits = lm_head_of(models.policy)(h)  # (B, R, V)
    logp = token_logprobs(logits, resp, cfg.temperature)
    values = models.value_head(h.to(models.value_head.weight.dtype)).squeeze(-1).float()
    ent = entropy_from_logits(logits, cfg.temperature) if want_entropy else None
    return logp, values, ent


def reference_logprobs(models: Models, seq, attn, prompt_len: int, resp, cfg: PPOConfig,
                       trunk: "torch.Tensor | None" = None) -> "torch.Tensor":
    import contextlib

    from chatrlhf.heads import lm_head_of
    from chatrlhf.ppo_core import token_logprobs

    ref = models.reference if models.reference is not None else models.policy
    ctx = models.policy.disable_adapter() if models.reference is None else contextlib.nullcontext()
    shared = trunk if models.ref_shares_trunk else None
    with ctx:
        h = response_forward(ref, seq, attn, prompt_len, resp.shape[1], shared, models.trunk_start)
        return token_logprobs(lm_head_of(ref)(h), resp, cfg.temperature)


def reward_scores(models: Models, seq, attn, trunk: "torch.Tensor | None" = None,
                  ended: "torch.Tensor | None" = None) -> "torch.Tensor":
    """(B,) normalised RM scores, read at each row's end-of-reply token.

    A reply cut off at ``max_new_tokens`` (``ended`` False) has no such token: the RM scores it with
    one appended, as every training reply was encoded, in a forward of its own (this trunk has no
    state for the extra position; ``make_experience`` avoids that forward by passing a trunk
    computed with the token already appended, and ``ended`` None). Read at its last word instead, the head gave values far
    outside its training range, which PPO could chase by never stopping."""
    from chatrlhf.chat_format import eot_id
    from chatrlhf.reward import ended_ids
    from chatrlhf.train_utils import pad_id_of, pad_right

    if trunk is not None and models.rm_shares_trunk:
        out = models.reward.raw_scores_from_states(trunk, attn, models.trunk_start) + models.reward.bias
    else:
        out = models.reward.scores(seq, attn)
    if ended is None or bool(ended.all()):
        return out
    cut = [i for i in range(seq.shape[0]) if not bool(ended[i])]
    eot = eot_id(models.tokenizer)
    rows = [ended_ids(seq[i][attn[i].bool()].tolist(), eot) for i in cut]
    ids, mask = pad_right(rows, pad_id_of(models.tokenizer))
    out = out.clone()
    out[cut] = models.reward.scores(ids.to(seq.device), mask.to(seq.device)).to(out.dtype)
    return out


def make_experience(models: Models, batch: list[tuple[Any, list[int]]], completions: list[Any],
                    kl_coef: float, cfg: PPOConfig, whiten: bool | None = None) -> "Experience":
    """Steps 2-5 of the algorithm: from sampled replies to advantages and returns. ``whiten``
    (default ``cfg.whiten_advantages``) False leaves the advantages raw, for a caller that whitens
    over a larger batch than this one (every process's rollouts)."""
    import torch

    from chatrlhf.chat_format import eot_id
    from chatrlhf.heads import lower_states
    from chatrlhf.ppo_core import (Experience, apply_nonending_penalty, gae_advantages, kl_penalized_rewards,
                                   masked_whiten)
    from chatrlhf.train_utils import autocast, device, pad_id_of, pad_left

    pad = pad_id_of(models.tokenizer)
    prompts, prompt_attn = pad_left([ids for _, ids in batch], pad)  # (B, P)
    P, R = prompts.shape[1], max(len(c.token_ids) for c in completions)
    resp = torch.full((len(batch), R), pad, dtype=torch.long)  # (B, R) reply tokens, EOS included
    mask = torch.zeros(len(batch), R)  # (B, R) 1 up to and including EOS
    for i, c in enumerate(completions):
        resp[i, : len(c.token_ids)] = torch.tensor(c.token_ids)
        mask[i, : len(c.token_ids)] = 1
    seq = torch.cat([prompts, resp], 1).to(device())  # (B, P+R)
    attn = torch.cat([prompt_attn, mask.long()], 1).to(device())
    resp, mask = resp.to(device()), mask.to(device())
    ended = torch.tensor([c.finish_reason == "stop" for c in completions], device=device())
    # The RM reads each reply at its end-of-turn token, which a reply cut at max_new_tokens lacks.
    # With a trunk shared with the RM, one extra column holds that token for the cut rows (padding
    # for the others): causal attention leaves every earlier position as it was, so the policy and
    # the reference read the same states, and the RM needs no forward of its own over the cut rows
    # (all 30 blocks of 32 rows: 5 of the bench iteration's 14 s of scoring, docs/peers.md).
    seq_rm, attn_rm = seq, attn
    eot = eot_id(models.tokenizer)
    cut = torch.tensor([c.finish_reason != "stop" and (not c.token_ids or c.token_ids[-1] != eot)
                        for c in completions], device=device())
    extend = models.trunk_start > 0 and models.rm_shares_trunk and bool(cut.any())
    if extend:
        seq_rm = torch.cat([seq, torch.where(cut, eot, pad)[:, None]], 1)  # (B, P+R+1)
        attn_rm = torch.cat([attn, cut.long()[:, None]], 1)
    models.policy.eval()
    with torch.no_grad(), autocast(cfg.dtype):
        # 2. one policy forward gives the old log-probs and the old values together (with frozen
        #    lower blocks, their output `trunk` (B, P+R, H) is computed here once for every pass)
        trunk = trunk_rm = None
        if models.trunk_start > 0:
            trunk_rm = lower_states(models.policy, seq_rm, attn_rm, models.trunk_start)
            trunk = trunk_rm[:, : seq.shape[1]] if extend else trunk_rm  # a view: no second copy
        old_logp, values, _ = logprobs_and_values(models, seq, attn, P, resp, cfg, trunk=trunk)
        # 3. the frozen reference's log-probs, for the KL penalty
        ref_logp = reference_logprobs(models, seq, attn, P, resp, cfg, trunk)
        # 4. the reward model reads the end-of-reply token; unfinished replies are penalised
        if extend:
            raw = reward_scores(models, seq_rm, attn_rm, trunk_rm).float()
        else:
            raw = reward_scores(models, seq, attn, trunk, ended).float()
    rm_raw = None
    if cfg.rm_coef != 1.0:  # an ablation: keep the unscaled score for the metrics
        rm_raw, raw = raw, raw * cfg.rm_coef
    scores = apply_nonending_penalty(raw, ended, cfg.nonending_penalty)
    rewards, kl = kl_penalized_rewards(scores, old_logp, ref_logp, mask, kl_coef)
    values = values * mask
    # 5. GAE over each reply, then whitening over the batch's valid tokens
    adv, returns = gae_advantages(rewards, values, mask, cfg.gamma, cfg.lam)
    if cfg.whiten_advantages if whiten is None else whiten:
        adv = masked_whiten(adv, mask)
    return Experience(seq, attn, P, mask, old_logp, ref_logp, values, rewards, adv, returns, scores, ended, trunk,
                      rm_raw)


# ----------------------------------------------------------------------------- update


def minibatch_loss(models: Models, mb: "Experience", ptx_rows: list, w: float, w_ptx: float,
                   cfg: PPOConfig) -> tuple["torch.Tensor", dict[str, "torch.Tensor"]]:
    """Clipped policy loss + ``vf_coef`` · value loss on the minibatch rows ``mb`` (weight ``w``),
    plus ``ptx_coef`` · the SFT loss on ``ptx_rows`` (weight ``w_ptx``); and the statistics, each a
    token mean weighted the same way. One function, so DDP sees one forward per backward."""
    import torch

    from chatrlhf.heads import masked_lm_loss, masked_lm_loss_from_states
    from chatrlhf.ppo_core import masked_mean, policy_loss, value_loss
    from chatrlhf.train_utils import autocast, device, pad_id_of, pad_right

    P, R = mb.prompt_len, mb.mask.shape[1]
    resp = mb.sequences[:, P: P + R]
    with autocast(cfg.dtype):
        logp, values, ent = logprobs_and_values(models, mb.sequences, mb.attention_mask, P, resp, cfg,
                                                want_entropy=True, trunk=mb.trunk)
    pg, pg_stats = policy_loss(logp, mb.old_logprobs, mb.advantages, mb.mask, cfg.clip)
    vl, v_stats = value_loss(values, mb.values, mb.returns, mb.mask, cfg.vf_clip)
    loss = (pg + cfg.vf_coef * vl) * w
    stats = {"pg_loss": pg.detach(), "vf_loss": vl.detach(), "entropy": masked_mean(ent.detach(), mb.mask),
             **pg_stats, **v_stats}
    stats = {k: v * w for k, v in stats.items()}
    if ptx_rows:
        # InstructGPT's PPO-ptx: keep the SFT likelihood up so RL does not erase skills
        ids, a, m = pad_right([r[0] for r in ptx_rows], pad_id_of(models.tokenizer), [r[1] for r in ptx_rows])
        ids, a, m = ids.to(device()), a.to(device()), m.to(device())
        with autocast(cfg.dtype):
            if len(ptx_rows[0]) > 2:  # cached lower-block states: only the trained blocks run
                h = torch.nn.utils.rnn.pad_sequence([r[2] for r in ptx_rows], batch_first=True).to(device())
                ptx_loss = masked_lm_loss_from_states(models.policy, h, ids, a, m, models.trunk_start)
            else:
                ptx_loss = masked_lm_loss(models.policy, ids, a, m)
        loss = loss + cfg.ptx_coef * ptx_loss * w_ptx
        stats["ptx_loss"] = ptx_loss.detach() * w_ptx
    return loss, stats


def ppo_update(models: Models, exp: "Experience", opt: Any, cfg: PPOConfig, rng: random.Random,
               ptx: list | None, acc: Any = None, wrapped: Any = None) -> dict[str, float]:
    """Step 6: ``ppo_epochs`` passes of clipped policy + value updates over shuffled minibatches.

    Under an ``accelerate`` run (``acc``, and ``wrapped`` = the prepared policy and value head) of
    N processes, every process holds the whole batch and draws the same minibatches and ptx rows
    (same ``rng``); each computes its 1/N of every minibatch and the gradients are averaged, so an
    optimizer step is the one-process step. Without ``acc``: plain backward, one process."""
    import torch

    from chatrlhf.ppo_core import share_of

    world = acc.num_processes if acc is not None else 1
    rank = acc.process_index if acc is not None else 0
    B = exp.sequences.shape[0]
    tokens = exp.mask.sum(1).tolist()  # (B,) loss tokens per rollout
    stats: dict[str, list[float]] = {}
    models.policy.train()
    params = [p for p in models.policy.parameters() if p.requires_grad] + list(models.value_head.parameters())
    for _ in range(cfg.ppo_epochs):
        order = list(range(B))
        rng.shuffle(order)
        for s in range(0, B, cfg.minibatch_size):
            rows = order[s: s + cfg.minibatch_size]
            ptx_rows = rng.sample(ptx, min(cfg.ptx_batch, len(ptx))) if ptx and cfg.ptx_coef > 0 else []
            mine, w = share_of([tokens[r] for r in rows], world, rank)
            mb = exp.select(torch.tensor([rows[i] for i in mine], device=exp.sequences.device))
            w_ptx = 0.0
            if ptx_rows:
                part, w_ptx = share_of([float(sum(r[1][1:])) for r in ptx_rows], world, rank)
                ptx_rows = [ptx_rows[i] for i in part]
            args = (models, mb, ptx_rows, w, w_ptx, cfg)
            loss, row = wrapped(minibatch_loss, *args) if wrapped is not None else minibatch_loss(*args)
            opt.zero_grad(set_to_none=True)
            if acc is not None:
                acc.backward(loss)
                gn = acc.clip_grad_norm_(params, 1.0)  # of the averaged gradient
            else:
                loss.backward()
                gn = torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            # the parts' weighted means, averaged over processes, are the whole minibatch's means
            vals = torch.stack([v.float() for v in row.values()])
            if world > 1:
                vals = acc.reduce(vals.to(acc.device), reduction="mean")
            row = {**dict(zip(row, vals.tolist())), "grad_norm": float(gn)}
            for k, v in row.items():
                stats.setdefault(k, []).append(v)
    return {k: sum(v) / len(v) for k, v in stats.items()}


# ----------------------------------------------------------------------------- the loop


def run(cfg: PPOConfig) -> dict[str, Any]:
    """Train the policy with PPO; returns a summary (also written to ``DONE``).

    Under ``accelerate launch`` with N processes each process samples and scores every N-th prompt
    of an iteration's batch; the rollouts are then gathered, so advantages are whitened, β adapted
    and metrics taken over the whole batch, and each process trains on its share of every
    minibatch with averaged gradients. The main process alone writes the outputs."""
    import torch

    from chatrlhf.heads import save_head, save_lm
    from chatrlhf.ppo_core import make_kl_controller, masked_whiten
    from chatrlhf.train_utils import (MetricsLog, adamw, as_module, make_accelerator, mark_done, pad_id_of, progress,
                                      read_metrics, setup_torch)

    acc = make_accelerator(cfg.dtype)
    world, rank, main = acc.num_processes, acc.process_index, acc.is_main_process
    setup_torch(cfg.seed, cfg.threads)
    rng = random.Random(cfg.seed)  # the same draws in every process: batches, minibatches, ptx rows
    out_dir = Path(cfg.out_dir)
    models = build_models(cfg)
    tok = models.tokenizer
    prompts = load_prompts(cfg.prompts, tok, cfg.max_prompt_len)
    if min(cfg.rollout_batch, len(prompts)) < world:
        raise ValueError(f"{min(cfg.rollout_batch, len(prompts))} prompts per iteration for {world} processes")
    ptx = with_lower_states(models, ptx_examples(cfg, tok), cfg)
    gold = gold_scorer(cfg.gold)
    kl_ctl = make_kl_controller(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon)
    opt = adamw([
        {"params": [p for p in models.policy.parameters() if p.requires_grad], "lr": cfg.lr},
        {"params": list(models.value_head.parameters()), "lr": cfg.value_head_lr},
    ], acc, weight_decay=0.0)
    start = load_checkpoint(out_dir, models, opt, kl_ctl, rng)  # every process reads it
    wrapped, opt = acc.prepare(as_module(models.policy, models.value_head), opt)
    kept = read_metrics(out_dir / "metrics.jsonl")[:start] if start and main else []
    log = MetricsLog(out_dir / "metrics.jsonl") if main else None
    for row in kept:  # the rows of the iterations the checkpoint already holds
        log.log(**row)
    if start and main:
        print(f"[ppo] resuming after iteration {start} of {cfg.iterations}", file=sys.stderr, flush=True)
    bar = progress(range(start, cfg.iterations), desc="ppo", initial=start, total=cfg.iterations, disable=not main)
    last: dict[str, Any] = kept[-1] if kept else {}
    vllm = None  # the vLLM rollout backend, started once (minutes) on first use
    for it in bar:
        t0 = time.time()
        # 1. rollouts: sample replies to a fresh batch of prompts from the current policy (this
        #    process's every world-th prompt of it)
        batch = rng.sample(prompts, min(cfg.rollout_batch, len(prompts)))
        rows = list(range(rank, len(batch), world))
        completions, vllm = generate_rollouts(models, cfg, batch, rows, it, vllm)
        t_gen = time.time() - t0
        # 2-5. log-probs, values, reference, reward, KL-shaped rewards, GAE; whitening over the
        #    whole batch once every process's rollouts are gathered
        exp = make_experience(models, [batch[r] for r in rows], completions, kl_ctl.value, cfg,
                              whiten=cfg.whiten_advantages and world == 1)
        exp, completions = gather_rollouts(acc, rows, exp, completions, pad_id_of(tok))
        if cfg.whiten_advantages and world > 1:
            exp.advantages = masked_whiten(exp.advantages, exp.mask)
        t_score = time.time() - t0 - t_gen
        # 6. PPO epochs over minibatches
        upd = ppo_update(models, exp, opt, cfg, rng, ptx, acc, wrapped)
        t_update = time.time() - t0 - t_gen - t_score
        # 7. adapt β to the measured KL per reply (summed over tokens, mean over replies)
        seq_kl = ((exp.old_logprobs - exp.ref_logprobs) * exp.mask).sum(1).mean().item()
        kl_ctl.update(seq_kl, len(batch))
        if not main:
            continue
        last = iteration_stats(it, exp, completions, batch, gold, seq_kl, kl_ctl.value, upd)
        last.update(t_gen=t_gen, t_score=t_score, t_update=t_update, t_iter=time.time() - t0)
        log.log(**last)
        bar.set_postfix(reward=f"{last['reward']:.3f}", kl=f"{seq_kl:.2f}")
        if cfg.checkpoint_every > 0 and (it + 1) % cfg.checkpoint_every == 0 and it + 1 < cfg.iterations:
            save_checkpoint(out_dir, it + 1, models, opt, kl_ctl, rng)
    summary = {"stage": "ppo", "iterations": cfg.iterations, "processes": world, "final": last}
    if main:
        save_lm(models.policy, tok, out_dir)
        save_head(models.value_head, out_dir / "value_head", {"note": "PPO value head on the policy trunk"})
        mark_done(out_dir, summary)
        (out_dir / CHECKPOINT).unlink(missing_ok=True)  # the finished stage does not need it
    acc.wait_for_everyone()  # no process returns before the stage is DONE
    return summary



def iteration_stats(it: int, exp: "Experience", completions: list, batch: list, gold: Callable | None,
                    seq_kl: float, beta: float, upd: dict[str, float]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "iteration": it + 1,
        "reward": exp.scores.mean().item(),  # RM score incl. non-ending penalty
        "kl": seq_kl,
        "kl_coef": beta,
        "non_score_reward": (exp.rewards.sum(1) - exp.scores).mean().item(),
        "length": exp.mask.sum(1).mean().item(),
        "ended": exp.ended.float().mean().item(),
        **upd,
    }
    if exp.rm_raw is not None:  # rm_coef != 1: what the RM thinks of the replies, unscaled
        row["rm_score"] = exp.rm_raw.mean().item()
    if gold is not None:
        g = [gold(conv, c.text) for (conv, _), c in zip(batch, completions)]
        g = [x for x in g if x is not None]
        if g:
            row["gold"] = sum(g) / len(g)
    return row


def with_lower_states(models: Models, ptx: list, cfg: PPOConfig) -> list:
    """(ids, mask) -> (ids, mask, states): each ptx example's input to the first trained block,
    computed once. The frozen blocks never change, and the ptx forward through them was half of
    an update's compute on the cpu preset. Unchanged without frozen blocks (LoRA, full training)."""
    if not ptx or models.trunk_start <= 0:
        return ptx
    from chatrlhf.heads import cache_lower_states
    from chatrlhf.train_utils import pad_id_of

    states = cache_lower_states(models.policy, [r[0] for r in ptx], pad_id_of(models.tokenizer),
                                models.trunk_start, 4096, cfg.dtype, desc="ppo: ptx frozen blocks")
    return [(ids, mask, h) for (ids, mask), h in zip(ptx, states)]


def ptx_examples(cfg: PPOConfig, tok: Any) -> list[tuple[list[int], list[int]]]:
    """(ids, assistant mask) of the ptx demonstrations (empty when ptx is off)."""
    from chatrlhf.schema import Conversation, read_jsonl

    if cfg.ptx_coef <= 0 or not cfg.ptx_data:
        return []
    from chatrlhf.train_utils import encode_demos

    convs = [c for p in cfg.ptx_data for c in read_jsonl(p, Conversation)]
    return encode_demos(convs, tok, cfg.max_prompt_len + cfg.max_new_tokens)
