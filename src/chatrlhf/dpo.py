"""Direct preference optimisation on K-wise rankings: the policy learns from the rankings directly,
with no reward model and no sampling (Rafailov et al. 2023), as an ablation of RM + PPO.

Consumes the SFT checkpoint (the starting policy and, frozen, the reference) and ranking JSONL
files (``schema.Ranking``, the same files the reward model trains on). Produces ``out_dir/`` = a
``save_pretrained`` checkpoint that ``models.load_model(dir)`` loads like ``sft/`` or ``ppo/``,
``metrics.jsonl`` (loss, implicit-reward accuracy and margin per step), ``eval.json`` (held-out
implicit-reward accuracy against the annotators and, when rankings carry it, the gold judge) and
``DONE``. Run with ``chatrlhf ablations RUN_DIR`` (``--only dpo``) or ``dpo.run(DPOConfig(..))``.

The implicit reward of a reply y is r(y) = β (log π(y|x) − log π_ref(y|x)), sequence log-probs
summed over the reply's tokens (its end-of-turn token included). A K-ranking is one batch element,
as in the reward model: the K replies are forwarded once and all C(K,2) pairs are formed from the
K implicit rewards, loss = −1/C(K,2) Σ_{i≻j} log σ(r_i − r_j). For K = 2 this is the DPO loss.
What the rankings say beyond the order is kept as the reward model keeps it:

- ties: "skip" (no term; the divisor stays C(K,2)) or "half" (Bradley-Terry target ½);
- "all unacceptable" sets and flagged replies (``harmful``, ...): with ``unacceptable_weight`` w > 0
  each adds w·softplus(r_i), pushing the reply's likelihood below the reference's. The order alone
  would only teach "the best of a bad set beats the rest", which DPO can satisfy by raising the
  best bad reply. softplus saturates, so once a reply is well below the reference its push fades.

The reference log-probs are computed once, before the first step, with no grad. With
``train_layers`` only the top blocks train; the frozen blocks then run once over every reply and
their output is reused every epoch (as the reward stage does). One process: unlike SFT and the
reward stage, this loop does not run under ``accelerate launch``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

# the RM's K-wise loss, held-out split and gold lookup: DPO trains and holds out exactly as the RM
from chatrlhf.preferences import gold_scores, split_heldout

if TYPE_CHECKING:
    import torch

    from chatrlhf.schema import Ranking


@dataclass
class DPOConfig:
    model: str = "smollm2"  # starting policy: the SFT checkpoint
    reference: str = ""  # frozen reference ("" = ``model``, the usual choice)
    rankings: list[str] = field(default_factory=list)  # Ranking JSONL files, concatenated
    out_dir: str = "runs/manual/dpo"
    heldout_frac: float = 0.2  # share of prompts held out, split exactly as the reward stage splits
    beta: float = 0.1  # β: scale of the implicit reward (the strength of the pull to the reference)
    epochs: int = 1
    lr: float = 1e-5
    warmup: int = 0
    batch_rankings: int = 4  # rankings per optimizer step (each holds K replies)
    max_length: int = 384  # tokens per prefix+reply, cut from the left to keep the reply
    train_layers: int = 0  # train only the top N transformer blocks (0 = all)
    tie_mode: str = "skip"  # "skip" | "half", as reward.ranking_loss
    unacceptable_weight: float = 0.0  # w: push flagged replies below the reference (see above)
    unacceptable_flags: list[str] = field(default_factory=lambda: ["harmful", "unacceptable", "over_refusal"])
    max_batch_tokens: int = 2048  # padded tokens per forward chunk (rows grouped by length)
    dtype: str = "bf16"  # autocast for forward/backward ("float32" to disable)
    seed: int = 0
    threads: int = 0


# ----------------------------------------------------------------------------- the losses


def dpo_pair_loss(pi_chosen: "torch.Tensor", pi_rejected: "torch.Tensor", ref_chosen: "torch.Tensor",
                  ref_rejected: "torch.Tensor", beta: float) -> tuple["torch.Tensor", dict[str, float]]:
    """DPO on (P,) pairs of sequence log-probs: mean of −log σ(β[(π_c − ref_c) − (π_r − ref_r)]).

    Returns (loss, stats): ``accuracy`` is the share of pairs whose implicit reward prefers the
    chosen reply (a tie is a miss), ``margin`` the mean implicit-reward difference."""
    import torch.nn.functional as F

    margin = beta * ((pi_chosen - ref_chosen) - (pi_rejected - ref_rejected))  # (P,)
    loss = -F.logsigmoid(margin).mean()
    return loss, {"accuracy": (margin > 0).float().mean().item(), "margin": margin.mean().item(),
                  "pairs": int(margin.numel())}


def dpo_ranking_loss(pi_logps: "torch.Tensor", ref_logps: "torch.Tensor", ranks: Sequence[int], beta: float,
                     ties: str = "skip", unacceptable: Sequence[bool] = (),
                     unacceptable_weight: float = 0.0) -> tuple["torch.Tensor", dict[str, float]]:
    """The K-wise DPO loss of one ranking (a scalar) from (K,) policy and reference log-probs.

    The reward model's K-wise loss (``reward.ranking_loss``) with the implicit reward
    r_i = β(π_i − ref_i) as the score: strict pairs i ≻ j give −log σ(r_i − r_j), divided by
    C(K,2) whatever the number of ties; ``ties`` "skip" or "half"; unacceptable replies add
    w·softplus(r_i). Stats: implicit-reward ``accuracy`` and mean ``margin`` over strict pairs
    (nan without one), and their count ``pairs``."""
    import torch

    from chatrlhf.preferences import ranking_loss

    r = beta * (pi_logps - ref_logps)  # (K,) implicit rewards
    loss = ranking_loss(r, ranks, unacceptable, ties, unacceptable_weight)
    rk = torch.as_tensor(list(ranks), device=r.device)
    d = r[:, None] - r[None, :]  # (K, K): d[i, j] = r_i − r_j
    better = rk[:, None] < rk[None, :]  # (K, K): i strictly preferred to j
    n = int(better.sum())
    with torch.no_grad():
        acc = ((d > 0) & better).sum().item() / n if n else math.nan
        margin = d[better].mean().item() if n else math.nan
    return loss, {"accuracy": acc, "margin": margin, "pairs": n}


def unacceptable_mask(rk: "Ranking", flags: Sequence[str]) -> list[bool]:
    """Which replies are below the bar: the whole set ("all unacceptable") or a flagged one."""
    flagged = set(flags)
    return [rk.all_unacceptable or bool(flagged & set(rk.flags.get(i, []))) for i in range(len(rk.completions))]


# ----------------------------------------------------------------------------- encoding and log-probs


def encode_reply(prefix: list[dict], reply: str, tokenizer: Any, max_length: int) -> tuple[list[int], list[int]]:
    """(ids, mask) of prefix + reply up to the reply's end-of-turn token; ``mask`` is 1 on the
    reply's tokens only (earlier assistant turns of the prefix are context, not the reply)."""
    from chatrlhf.chat_format import render
    from chatrlhf.train_utils import last_turn_mask

    rendered = render(list(prefix) + [{"role": "assistant", "content": reply}], tokenizer)
    mask = last_turn_mask(rendered.mask)
    last = max(i for i, m in enumerate(mask) if m)
    ids, mask = list(rendered.ids[: last + 1])[-max_length:], mask[: last + 1][-max_length:]
    if not any(mask[1:]):
        raise ValueError(f"max_length={max_length} leaves no reply token to score")
    return ids, mask


def sequence_logps(lm: Any, seqs: Sequence[tuple[list[int], list[int]]], pad_id: int, max_tokens: int,
                   states: Sequence["torch.Tensor"] | None = None, start: int = 0) -> "torch.Tensor":
    """(len(seqs),) Σ log π(token) over each sequence's masked tokens, in ``seqs`` order, forwarded
    in length-grouped chunks (with grad when enabled). With ``states`` (each sequence's cached input
    to block ``start``, (T_i, H)) only blocks ``start``.. run."""
    import torch

    from chatrlhf.heads import hidden_states, lm_head_of, upper_hidden
    from chatrlhf.train_utils import device, length_buckets, pad_right

    pieces, order = [], []
    for group in length_buckets([len(s[0]) for s in seqs], max_tokens):
        ids, attn, mask = pad_right([seqs[i][0] for i in group], pad_id, [seqs[i][1] for i in group])
        ids, attn, mask = ids.to(device()), attn.to(device()), mask.to(device())
        if states is None:
            h = hidden_states(lm, ids, attn)  # (B, T, H)
        else:
            st = torch.nn.utils.rnn.pad_sequence([states[i] for i in group], batch_first=True).to(device())
            h = upper_hidden(lm, st, attn, start)
        target = mask[:, 1:].bool()  # token t+1 is predicted at position t
        logits = lm_head_of(lm)(h[:, :-1][target]).float()  # (N, V): only the reply's positions
        lp = logits.log_softmax(-1).gather(-1, ids[:, 1:][target].unsqueeze(-1)).squeeze(-1)  # (N,)
        rows = torch.arange(ids.shape[0], device=ids.device)[:, None].expand_as(target)[target]
        pieces.append(torch.zeros(ids.shape[0], device=lp.device, dtype=lp.dtype).index_add(0, rows, lp))
        order.extend(group)
    inverse = torch.argsort(torch.tensor(order))
    return torch.cat(pieces)[inverse.to(pieces[0].device)]


def frozen_states(lm: Any, seqs: Sequence[tuple[list[int], list[int]]], pad_id: int, upto: int,
                  max_tokens: int, dtype: str) -> list["torch.Tensor"]:
    """Each sequence's input to block ``upto`` (T_i, H), computed once with no grad."""
    import torch

    from chatrlhf.heads import lower_states
    from chatrlhf.train_utils import autocast, device, length_buckets, pad_right

    out: list[Any] = [None] * len(seqs)
    with torch.no_grad(), autocast(dtype):
        for group in length_buckets([len(s[0]) for s in seqs], max_tokens):
            ids, attn = pad_right([seqs[i][0] for i in group], pad_id)
            h = lower_states(lm, ids.to(device()), attn.to(device()), upto)
            for row, i in enumerate(group):
                out[i] = h[row, : len(seqs[i][0])].detach().clone()
    return out


def no_grad_logps(lm: Any, seqs: Sequence[tuple[list[int], list[int]]], pad_id: int, cfg: DPOConfig,
                  states: Sequence["torch.Tensor"] | None = None, start: int = 0) -> "torch.Tensor":
    import torch

    from chatrlhf.train_utils import autocast

    lm.eval()
    with torch.no_grad(), autocast(cfg.dtype):
        return sequence_logps(lm, seqs, pad_id, cfg.max_batch_tokens, states, start).float()


def batch_loss(pi: "torch.Tensor", ref: "torch.Tensor", batch: Sequence["Ranking"],
               cfg: DPOConfig) -> tuple["torch.Tensor", dict[str, float]]:
    """Mean of ``dpo_ranking_loss`` over the rankings of a batch (ΣK,) -> scalar, pooled stats."""
    import torch

    losses, hits, margins, pairs, s = [], 0.0, 0.0, 0, 0
    for rk in batch:
        k = len(rk.completions)
        loss, st = dpo_ranking_loss(pi[s: s + k], ref[s: s + k], rk.ranks, cfg.beta, cfg.tie_mode,
                                    unacceptable_mask(rk, cfg.unacceptable_flags), cfg.unacceptable_weight)
        losses.append(loss)
        if st["pairs"]:
            hits, margins, pairs = hits + st["accuracy"] * st["pairs"], margins + st["margin"] * st["pairs"], \
                pairs + st["pairs"]
        s += k
    stats = {"accuracy": hits / pairs if pairs else math.nan, "margin": margins / pairs if pairs else math.nan}
    return torch.stack(losses).mean(), stats


def evaluate_heldout(pi: Sequence[float], ref: Sequence[float], rankings: Sequence["Ranking"],
                     beta: float) -> dict[str, Any]:
    """Pairwise accuracy of the implicit reward on held-out rankings, against the annotators'
    ranks and (when recorded) the gold scores."""
    out: dict[str, Any] = {"heldout_rankings": len(rankings)}
    hits = {"annotator": [0, 0], "gold": [0, 0]}
    s = 0
    for rk in rankings:
        k = len(rk.completions)
        r = [beta * (a - b) for a, b in zip(pi[s: s + k], ref[s: s + k])]
        s += k
        prefs = {"annotator": [-x for x in rk.ranks], "gold": gold_scores(rk)}
        for name, pref in prefs.items():
            if pref is None:
                continue
            for i in range(k):
                for j in range(k):
                    if pref[i] > pref[j]:
                        hits[name][1] += 1
                        hits[name][0] += r[i] > r[j]
    for name, (h, n) in hits.items():
        out[f"acc_{name}"], out[f"pairs_{name}"] = (h / n if n else None), n
    return out


# ----------------------------------------------------------------------------- the stage


def run(cfg: DPOConfig) -> dict[str, Any]:
    """Train the policy with DPO on the rankings and save it; returns a summary (also in ``DONE``)."""
    import torch

    from chatrlhf.heads import decoder_of, freeze_lower_layers, save_lm
    from chatrlhf.models import load_model
    from chatrlhf.schema import Ranking, read_jsonl
    from chatrlhf.train_utils import (DONE, MetricsLog, adamw, autocast, cosine_lr, device, is_done, mark_done,
                                      pad_id_of, progress, read_json, setup_torch, write_json)

    out_dir = Path(cfg.out_dir)
    if is_done(out_dir):
        return read_json(out_dir / DONE)
    setup_torch(cfg.seed, cfg.threads)
    rankings = [rk for path in cfg.rankings for rk in read_jsonl(path, Ranking)]
    train, held = split_heldout(rankings, cfg.heldout_frac)
    if not train:
        raise ValueError(f"no training rankings in {cfg.rankings} (held out {len(held)})")
    policy, tok = load_model(cfg.model)
    pad = pad_id_of(tok)
    enc = {id(rk): [encode_reply(rk.prefix, c, tok, cfg.max_length) for c in rk.completions] for rk in train + held}
    flat_train = [s for rk in train for s in enc[id(rk)]]
    flat_held = [s for rk in held for s in enc[id(rk)]]
    # 1. reference log-probs, once, no grad (the reference never changes)
    ref_lm = policy if not cfg.reference or Path(cfg.reference).resolve() == Path(cfg.model).resolve() \
        else load_model(cfg.reference)[0]
    ref_lm.to(device())
    ref_train = no_grad_logps(ref_lm, flat_train, pad, cfg)
    ref_held = no_grad_logps(ref_lm, flat_held, pad, cfg) if held else None
    del ref_lm
    # 2. freeze the lower blocks and run them once over every training reply
    policy.to(device())
    n_layers = len(list(decoder_of(policy).layers))
    start = n_layers - cfg.train_layers if 0 < cfg.train_layers < n_layers else 0
    freeze_lower_layers(policy, cfg.train_layers if start else 0)
    states = frozen_states(policy, flat_train, pad, start, cfg.max_batch_tokens, cfg.dtype) if start else None
    offsets, pos = {}, 0
    for rk in train:
        offsets[id(rk)] = pos
        pos += len(rk.completions)
    params = [p for p in policy.parameters() if p.requires_grad]
    opt = adamw(params, lr=cfg.lr, weight_decay=0.0)
    rng = random.Random(cfg.seed)
    per_epoch = math.ceil(len(train) / cfg.batch_rankings)
    total = cfg.epochs * per_epoch
    log = MetricsLog(out_dir / "metrics.jsonl")
    bar = progress(range(total), desc="dpo")
    order: list[Any] = []
    last: dict[str, Any] = {}
    for step in bar:
        if step % per_epoch == 0:
            order = list(train)
            rng.shuffle(order)
        batch = order[(step % per_epoch) * cfg.batch_rankings: (step % per_epoch + 1) * cfg.batch_rankings]
        # 3. every reply of every ranking in the batch is forwarded once; all C(K,2) pairs follow
        idx = [offsets[id(rk)] + j for rk in batch for j in range(len(rk.completions))]
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, total, cfg.warmup, cfg.lr)
        policy.train()
        with autocast(cfg.dtype):
            pi = sequence_logps(policy, [flat_train[i] for i in idx], pad, cfg.max_batch_tokens,
                                None if states is None else [states[i] for i in idx], start)  # (ΣK,)
        loss, stats = batch_loss(pi.float(), ref_train[idx], batch, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        last = {"step": step + 1, "epoch": step // per_epoch, "loss": loss.item(), "lr": opt.param_groups[0]["lr"],
                "grad_norm": float(gn), **stats}
        log.log(**last)
        bar.set_postfix(loss=f"{last['loss']:.3f}", acc=f"{stats['accuracy']:.2f}")
    result: dict[str, Any] = {"train_rankings": len(train), "steps": total, "final": last}
    if held:
        pi_held = no_grad_logps(policy, flat_held, pad, cfg)
        result.update(evaluate_heldout(pi_held.tolist(), ref_held.tolist(), held, cfg.beta))
    else:
        result["heldout_rankings"] = 0
    save_lm(policy, tok, out_dir)
    write_json(out_dir / "eval.json", result)
    summary = {"stage": "dpo", **{k: v for k, v in result.items() if not isinstance(v, dict)}, "final": last}
    mark_done(out_dir, summary)
    return summary
