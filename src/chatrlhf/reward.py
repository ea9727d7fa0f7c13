"""Reward model: the policy's backbone plus a scalar head, trained on K-wise rankings.

Consumes ranking JSONL files (``schema.Ranking``: simulated annotators or exported from the store)
and, for normalisation, the SFT demonstrations. Produces ``out_dir/`` = a ``save_pretrained``
causal LM + ``scalar_head.safetensors`` + ``scalar_head.json`` (bias), ``metrics.jsonl`` (training
loss) and ``eval.json`` (held-out accuracy against the annotators and, when rankings carry
``meta["gold"]``, against the gold judge). Run with ``chatrlhf reward`` or as pipeline step 5.

The loss is InstructGPT's: one ranking of K completions is one batch element; every completion is
forwarded once and all C(K,2) pairwise log-sigmoid terms are formed from the K scores,
loss = -1/C(K,2) · Σ_{i ≻ j} log σ(r_i - r_j). Forming pairs after the forward pass (instead of
one pair per example) both saves K-1 forward passes per completion and stops the model from
overfitting the repeated completions, which InstructGPT reports as the reason for this grouping.

Single thumbs ratings (``schema.Rating`` JSONL in ``ratings``: a served reply with a thumbs up or
down and no alternative) join as a pointwise term, ``rating_weight`` · mean −log σ(±r): product
users give far more of them than pairs (session 13: 17 pairs from 542 thumbs). Each step takes
``batch_rankings`` rankings and ``batch_ratings`` ratings, the two streams side by side, so an
epoch is as long as the longer one and each record is seen once per epoch.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

# the K-wise loss, the held-out split and gold lookups are shared with DPO (re-exported here)
from chatrlhf.preferences import (gold_scores, pair_accuracy, ranking_loss, rating_auc, rating_loss,  # noqa: F401
                                   split_heldout)

if TYPE_CHECKING:
    import torch

    from chatrlhf.schema import Ranking


@dataclass
class RewardConfig:
    model: str = "smollm2"  # backbone to start from: the SFT checkpoint in the pipeline
    rankings: list[str] = field(default_factory=list)  # Ranking JSONL files, concatenated
    ratings: list[str] = field(default_factory=list)  # Rating JSONL files (single thumbs), pointwise
    rating_weight: float = 1.0  # weight of the pointwise thumbs term against the ranking loss
    batch_ratings: int = 16  # ratings per optimizer step (one completion each)
    demos: str = ""  # Conversation JSONL whose final assistant turns set the score bias (mean 0)
    out_dir: str = "runs/manual/reward"
    heldout_frac: float = 0.2  # share of prompts (by hash of the prefix) kept for evaluation
    epochs: int = 1
    lr: float = 2e-5
    head_lr: float = 1e-3  # the fresh head learns faster than the pretrained trunk
    batch_rankings: int = 4  # rankings per optimizer step (each holds K completions)
    max_length: int = 384  # tokens per prefix+completion, cut from the left to keep the reply end
    train_layers: int = 0  # train only the top N transformer blocks (0 = all)
    lora_r: int = 0  # >0: LoRA adapters instead of full fine-tuning
    lora_alpha: int = 32
    tie_mode: str = "skip"  # "skip": tied pairs give no term; "half": target σ = 0.5 for ties
    unacceptable_weight: float = 0.5  # weight of the push below 0 for unacceptable completions
    # flags that mark a completion as below the bar: a harmful answer, or refusing a harmless request
    unacceptable_flags: list[str] = field(default_factory=lambda: ["harmful", "unacceptable", "over_refusal"])
    # The annotators prefer longer replies (simulated: length_bias; real labellers too), and an RM
    # that learns that bias prefers the longer of two hh-rlhf replies whatever they say. With
    # length_expert a learned coefficient times the reply's log token count joins the scores in the
    # loss only (a product of experts): the length preference goes into that one number, not into
    # the head that PPO and the evaluation read. length_decorrelation adds λ·corr(score, log length)²
    # over each batch's completions, both centred within their ranking. It is computed per process
    # on its own batch, so it needs several rankings per batch: one pairwise ranking alone has
    # corr = ±1 whatever the scores, and no gradient.
    length_expert: bool = False
    length_lr: float = 1e-2  # the coefficient's own rate: at head_lr Adam moved it by at most 0.2 in 219 steps
    length_decorrelation: float = 0.0
    norm_samples: int = 128  # demonstrations scored to set the bias
    max_batch_tokens: int = 2048  # padded tokens per forward chunk (rows are grouped by length)
    cache_trunk: bool = True  # train_layers > 0 without LoRA: run the frozen blocks once, not every epoch
    dtype: str = "bf16"  # autocast dtype for forward/backward ("float32" to disable)
    seed: int = 0
    threads: int = 0  # torch threads (0 = torch default)


# ----------------------------------------------------------------------------- the loss


def batch_ranking_loss(
    flat_scores: "torch.Tensor",  # (ΣK,) scores of all completions of the batch, ranking by ranking
    rankings: Sequence["Ranking"],
    cfg: RewardConfig,
    length_term: "torch.Tensor | None" = None,  # (ΣK,) added to the scores in this loss only
) -> "torch.Tensor":
    """Mean of ``ranking_loss`` over the rankings of a batch (each ranking is one element)."""
    import torch

    scores = flat_scores if length_term is None else flat_scores + length_term
    losses, start = [], 0
    for rk in rankings:
        k = len(rk.completions)
        losses.append(ranking_loss(scores[start: start + k], rk.ranks, unacceptable_mask(rk, cfg),
                                   cfg.tie_mode, cfg.unacceptable_weight))
        start += k
    return torch.stack(losses).mean()


def spread(step: int, n_batches: int, n_steps: int) -> int | None:
    """Which of a stream's ``n_batches`` batches step ``step`` of ``n_steps`` takes, or None: the
    batches in order, evenly spaced, the last on the last step (every step when they are as many)."""
    if n_batches <= 0:
        return None
    i = step * n_batches // n_steps
    return i if (step + 1) * n_batches // n_steps > i else None


def step_loss(flat: "torch.Tensor", batch: Sequence["Ranking"], rbatch: Sequence[Any], cfg: RewardConfig,
              lengths: Sequence[Sequence[int]], length_coef: "torch.Tensor | None" = None,
              ) -> tuple["torch.Tensor", dict[str, "torch.Tensor"]]:
    """One step's loss from ``flat`` (ΣK + len(rbatch),): the rankings' completions first, ranking
    by ranking, then one score per rating. Returns the loss and its parts (``ranking_loss`` with
    the length terms, ``rating_loss``), each present only when its stream has records this step."""
    import torch

    n_rank = flat.shape[0] - len(rbatch)
    scores, rscores = flat[:n_rank], flat[n_rank:]
    parts: dict[str, torch.Tensor] = {}
    if batch:
        loglen = torch.tensor(log_lengths(lengths), device=scores.device)
        parts["ranking_loss"] = batch_ranking_loss(scores, batch, cfg,
                                                   None if length_coef is None else length_coef * loglen)
        if cfg.length_decorrelation > 0:
            # scores centred within each ranking, as loglen is: otherwise spreading the scores of
            # different prompts apart (which the ranking loss ignores) shrinks corr² as well as
            # removing length would
            parts["ranking_loss"] = parts["ranking_loss"] + cfg.length_decorrelation * correlation(
                centred_within(scores, batch), loglen) ** 2
    if rbatch:
        parts["rating_loss"] = rating_loss(rscores, [r.rating for r in rbatch])
    loss = parts.get("ranking_loss", 0.0) + cfg.rating_weight * parts.get("rating_loss", 0.0)
    return loss, parts  # type: ignore[return-value]


def log_lengths(lengths: Sequence[Sequence[int]]) -> list[float]:
    """log(1 + reply tokens) of every completion, centred within its ranking (flat, ranking by
    ranking): the pairwise terms see only differences, and centring keeps the length term out of
    the push below 0 that unacceptable completions get."""
    out: list[float] = []
    for lens in lengths:
        logs = [math.log1p(n) for n in lens]
        mean = sum(logs) / max(len(logs), 1)
        out.extend(x - mean for x in logs)
    return out


def correlation(x: "torch.Tensor", y: "torch.Tensor") -> "torch.Tensor":
    """Pearson correlation of two (N,) tensors (0 when either is constant)."""
    import torch

    xc, yc = x - x.mean(), y - y.mean()
    den = torch.sqrt((xc * xc).sum() * (yc * yc).sum())
    return (xc * yc).sum() / den if den > 1e-12 else torch.zeros((), device=x.device)


def centred_within(scores: "torch.Tensor", batch: Sequence["Ranking"]) -> "torch.Tensor":
    """``scores`` (ΣK,) minus the mean of each ranking's own completions."""
    import torch

    parts, start = [], 0
    for rk in batch:
        k = len(rk.completions)
        parts.append(scores[start: start + k] - scores[start: start + k].mean())
        start += k
    return torch.cat(parts)


def reply_tokens(reply: str, tokenizer: Any) -> int:
    return len(tokenizer(reply, add_special_tokens=False)["input_ids"])


def unacceptable_mask(rk: "Ranking", cfg: RewardConfig) -> list[bool]:
    flagged = set(cfg.unacceptable_flags)
    return [rk.all_unacceptable or bool(flagged & set(rk.flags.get(i, []))) for i in range(len(rk.completions))]


def normalisation_bias(raw_demo_scores: Sequence[float]) -> float:
    """The bias that gives the demonstrations a mean normalised score of 0."""
    return -sum(raw_demo_scores) / max(len(raw_demo_scores), 1)


# ----------------------------------------------------------------------------- encoding and scoring


def encode_reply(prefix: list[dict], reply: str, tokenizer: Any, max_length: int) -> list[int]:
    """Token ids of prefix + reply, ending at the reply's end-of-turn token (where the head reads)."""
    from chatrlhf.chat_format import render

    rendered = render(list(prefix) + [{"role": "assistant", "content": reply}], tokenizer)
    last = max(i for i, m in enumerate(rendered.mask) if m)
    ids = list(rendered.ids[: last + 1])
    return ids[-max_length:]


def ended_ids(ids: Sequence[int], eot: int) -> list[int]:
    """``ids`` ending at an end-of-turn token, as ``encode_reply`` encodes every training reply.

    A reply cut off at the token limit has no end-of-turn token, and the head, trained to read only
    there, scores such a sequence at a position it never saw: seed 0's RM gave cut-off base replies
    6-9 where complete ones got about 1. Appending the token scores the cut-off reply as training did."""
    ids = list(ids)
    return ids if ids and ids[-1] == eot else ids + [eot]


def score_ids(model: Any, seqs: Sequence[Sequence[int]], pad_id: int, dtype: str, batch_size: int = 16,
              raw: bool = False, max_tokens: int = 2048) -> list[float]:
    """Reward of each token sequence (no grad), in length-grouped chunks of at most ``max_tokens``
    padded tokens (and ``batch_size`` rows)."""
    import torch

    from chatrlhf.train_utils import autocast, device, length_buckets, pad_right

    out = [0.0] * len(seqs)
    model.eval()
    with torch.no_grad(), autocast(dtype):
        for group in length_buckets([len(s) for s in seqs], max_tokens):
            for idx in (group[i: i + batch_size] for i in range(0, len(group), batch_size)):
                ids, attn = pad_right([seqs[i] for i in idx], pad_id)
                ids, attn = ids.to(device()), attn.to(device())
                s = model.raw_scores(ids, attn) if raw else model.scores(ids, attn)
                for i, v in zip(idx, s.float().cpu().tolist()):
                    out[i] = v
    return out


def train_scores(model: Any, seqs: Sequence[Sequence[int]], pad_id: int, max_tokens: int,
                 states: Sequence["torch.Tensor"] | None = None, start: int = 0) -> "torch.Tensor":
    """(len(seqs),) raw scores with grad, in ``seqs`` order, forwarded in length-grouped chunks.

    With ``states`` (each sequence's cached input to block ``start``, shape (T_i, H)), only blocks
    ``start``.. run. The chunks are one loss and one backward pass, so grouping changes only the
    padding, not the gradient."""
    import torch

    from chatrlhf.train_utils import device, length_buckets, pad_right

    pieces, order = [], []
    for group in length_buckets([len(s) for s in seqs], max_tokens):
        ids, attn = pad_right([seqs[i] for i in group], pad_id)
        attn = attn.to(device())
        if states is None:
            pieces.append(model.raw_scores(ids.to(device()), attn))
        else:
            h = torch.nn.utils.rnn.pad_sequence([states[i] for i in group], batch_first=True)
            pieces.append(model.raw_scores_from_states(h.to(device()), attn, start))
        order.extend(group)
    inverse = torch.argsort(torch.tensor(order))
    return torch.cat(pieces)[inverse.to(pieces[0].device)]


# ----------------------------------------------------------------------------- the stage


def build_model(cfg: RewardConfig) -> tuple[Any, Any]:
    """Backbone from ``cfg.model`` plus a fresh head (an existing head is reused when present)."""
    from chatrlhf.heads import (HEAD_META, ScalarModel, apply_lora, freeze_lower_layers, lm_head_of, load_head,
                                new_scalar_head)
    from chatrlhf.models import load_model
    from chatrlhf.train_utils import device

    lm, tok = load_model(cfg.model)
    if (Path(cfg.model) / HEAD_META).exists():  # continuing from an earlier round's RM
        head, _ = load_head(cfg.model)
    else:
        head = new_scalar_head(lm.config.hidden_size, init_std=1.0 / lm.config.hidden_size ** 0.5)
    if cfg.lora_r > 0:
        lm = apply_lora(lm, cfg.lora_r, cfg.lora_alpha)
    else:
        freeze_lower_layers(lm, cfg.train_layers)
    out = lm_head_of(lm).weight
    if out is not lm.get_input_embeddings().weight:  # untied: never read here, and DDP would wait for its grad
        out.requires_grad_(False)
    return ScalarModel(lm.to(device()), head.to(device())), tok


def evaluate_rankings(model: Any, tok: Any, rankings: Sequence["Ranking"], cfg: RewardConfig) -> dict[str, Any]:
    """Held-out pairwise accuracy of the RM against the annotators and the gold judge."""
    from chatrlhf.train_utils import pad_id_of

    hits = {k: [0, 0] for k in ("annotator", "gold", "annotator_vs_gold", "gold_policy", "longer")}
    by_source: dict[str, list[int]] = {}
    all_scores: list[float] = []
    all_loglen: list[float] = []
    for rk in rankings:
        seqs = [encode_reply(rk.prefix, c, tok, cfg.max_length) for c in rk.completions]
        s = score_ids(model, seqs, pad_id_of(tok), cfg.dtype)
        lens = [reply_tokens(c, tok) for c in rk.completions]
        mean = sum(s) / len(s)
        all_scores += [x - mean for x in s]
        all_loglen += log_lengths([lens])
        _add(hits["longer"], pair_accuracy(s, lens, higher_is_better=True))  # how often the longer scores higher
        _add(hits["annotator"], pair_accuracy(s, rk.ranks, higher_is_better=False))
        gold = gold_scores(rk)
        if gold is not None:
            _add(hits["gold"], pair_accuracy(s, gold, higher_is_better=True))
            src = rk.meta.get("sources")
            if src:  # a mixed set: only its pairs of two policy samples (the distribution PPO queries)
                idx = [i for i, x in enumerate(src) if x == "policy"]
                _add(hits["gold_policy"], pair_accuracy([s[i] for i in idx], [gold[i] for i in idx], True))
            elif rk.meta.get("source") == "policy":  # the distribution PPO will query
                _add(hits["gold_policy"], pair_accuracy(s, gold, higher_is_better=True))
            # the annotators' own agreement with gold: the ceiling the RM learns under
            _add(hits["annotator_vs_gold"], pair_accuracy([-r for r in rk.ranks], gold, higher_is_better=True))
        if gold is not None and rk.meta.get("sources"):
            for key, hn in source_pair_hits(s, gold, rk.meta["sources"]).items():
                _add(by_source.setdefault(key, [0, 0]), hn)
    out: dict[str, Any] = {"heldout_rankings": len(rankings)}
    if len(all_scores) > 1:  # within-ranking length against score: the RM's length preference
        import torch

        out["length_corr"] = float(correlation(torch.tensor(all_scores), torch.tensor(all_loglen)))
    for k, (h, n) in hits.items():
        out[f"acc_{k}"] = h / n if n else None
        out[f"pairs_{k}"] = n
    # RM vs gold per pair of sources (policy vs base, sft vs sim...): an RM right only near one
    # policy shows here, not in the overall accuracy
    out["gold_by_source_pair"] = {k: {"agree": h, "n": n, "rate": h / n if n else None}
                                  for k, (h, n) in sorted(by_source.items())}
    return out


def evaluate_ratings(model: Any, tok: Any, ratings: Sequence[Any], cfg: RewardConfig) -> dict[str, Any]:
    """Held-out thumbs: AUC (a thumbed-up reply scores above a thumbed-down one), and accuracy
    of σ(raw score) > ½ as the pointwise term trained it, against always guessing the majority."""
    from chatrlhf.train_utils import pad_id_of

    out: dict[str, Any] = {"heldout_ratings": len(ratings)}
    if not ratings:
        return out
    seqs = [encode_reply(r.prefix, r.completion, tok, cfg.max_length) for r in ratings]
    raw = score_ids(model, seqs, pad_id_of(tok), cfg.dtype, raw=True)
    labels = [r.rating for r in ratings]
    up = sum(y > 0 for y in labels) / len(labels)
    out.update(rating_auc=rating_auc(raw, labels),
               rating_acc=sum((s > 0) == (y > 0) for s, y in zip(raw, labels)) / len(labels),
               rating_majority=max(up, 1 - up), rating_up_share=up)
    return out


def source_pair_hits(scores: Sequence[float], gold: Sequence[float], sources: Sequence[str]) -> dict[str, tuple[int, int]]:
    """(RM agrees with gold, pairs) for every pair of completions whose gold differs, keyed by their
    two sources in sorted order ("sim:wrong" counts as "sim"); ties in RM score count as misses."""
    out: dict[str, list[int]] = {}
    names = [str(x).split(":")[0] for x in sources]
    for i in range(len(scores)):
        for j in range(i + 1, len(scores)):
            if gold[i] == gold[j]:
                continue
            key = "_vs_".join(sorted((names[i], names[j])))
            hit = (scores[i] - scores[j]) * (gold[i] - gold[j]) > 0
            acc = out.setdefault(key, [0, 0])
            acc[0] += int(hit)
            acc[1] += 1
    return {k: (h, n) for k, (h, n) in out.items()}


def _add(acc: list[int], hn: tuple[int, int]) -> None:
    acc[0] += hn[0]
    acc[1] += hn[1]


def run(cfg: RewardConfig) -> dict[str, Any]:
    """Train, normalise, evaluate and save the reward model; returns the evaluation dict."""
    import torch

    from chatrlhf.heads import ScalarModel, cache_lower_states, decoder_of
    from chatrlhf.schema import Conversation, Ranking, Rating, read_jsonl
    from chatrlhf.train_utils import (MetricsLog, adamw, as_module, autocast, gathered_parts, make_accelerator,
                                      mark_done, mean_over_processes, pad_id_of, progress, setup_torch, write_json)

    acc = make_accelerator(cfg.dtype)
    world, rank, main = acc.num_processes, acc.process_index, acc.is_main_process
    setup_torch(cfg.seed, cfg.threads)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rankings = [rk for path in cfg.rankings for rk in read_jsonl(path, Ranking)]
    ratings = [r for path in cfg.ratings for r in read_jsonl(path, Rating)]
    train, held = split_heldout(rankings, cfg.heldout_frac)
    rtrain, rheld = split_heldout(ratings, cfg.heldout_frac)
    if cfg.batch_rankings < 1 or cfg.batch_ratings < 1:
        raise ValueError(f"batch_rankings and batch_ratings must be at least 1, got {cfg.batch_rankings} "
                         f"and {cfg.batch_ratings}")
    use_ratings = cfg.rating_weight > 0 and len(rtrain) >= world
    if len(train) < world and not use_ratings:  # every process needs a record per step
        if not train and not rtrain:
            raise ValueError(f"no training rankings in {cfg.rankings} (held out {len(held)})"
                             + (f" and no training ratings in {cfg.ratings} (held out {len(rheld)})" if cfg.ratings else ""))
        raise ValueError(f"{len(train)} training rankings and {len(rtrain)} ratings (rating_weight "
                         f"{cfg.rating_weight}) for {world} processes: nothing to train on")
    model, tok = build_model(cfg)
    pad = pad_id_of(tok)
    encoded = {id(rk): [encode_reply(rk.prefix, c, tok, cfg.max_length) for c in rk.completions] for rk in train}
    for r in rtrain:  # a rating is one completion: the same shape as a ranking's list
        encoded[id(r)] = [encode_reply(r.prefix, r.completion, tok, cfg.max_length)]
    lengths = {id(rk): [reply_tokens(c, tok) for c in rk.completions] for rk in train}
    # on the accelerator's device: a CPU scalar would multiply fine but leave its grad on the CPU,
    # where an NCCL all-reduce fails
    length_coef = torch.nn.Parameter(torch.zeros((), device=acc.device)) if cfg.length_expert else None
    n_layers = len(list(decoder_of(model.lm).layers))
    start = n_layers - cfg.train_layers if 0 < cfg.train_layers < n_layers else 0
    cached: dict[int, list[Any]] | None = None
    # not with several processes: each would run the frozen blocks over every ranking (its share is
    # drawn per epoch), and under FSDP/ZeRO-3 outside the wrapped forward, where weights are sharded
    if cfg.cache_trunk and cfg.lora_r <= 0 and start > 0 and world == 1:
        flat = [ids for rec in [*train, *rtrain] for ids in encoded[id(rec)]]
        states = iter(cache_lower_states(model.lm, flat, pad, start, cfg.max_batch_tokens, cfg.dtype,
                                              desc="reward model: frozen blocks"))
        cached = {id(rec): [next(states) for _ in encoded[id(rec)]] for rec in [*train, *rtrain]}
    opt = adamw([
        {"params": [p for p in model.lm.parameters() if p.requires_grad], "lr": cfg.lr},
        {"params": list(model.head.parameters()), "lr": cfg.head_lr},
        *([{"params": [length_coef], "lr": cfg.length_lr}] if length_coef is not None else []),
    ], acc, weight_decay=0.0)
    wrapped, opt = acc.prepare(as_module(model.lm, model.head), opt)
    log = MetricsLog(out_dir / "metrics.jsonl") if main else None
    rng = random.Random(cfg.seed)
    # all processes shuffle alike and each takes its share of a step's rankings; with several, the
    # last few rankings of an epoch are dropped rather than leave a process without any
    per_step, per_rating_step = cfg.batch_rankings * world, cfg.batch_ratings * world
    starts = list(range(0, len(train) - world + 1, per_step))
    rstarts = list(range(0, len(rtrain) - world + 1, per_rating_step)) if use_ratings else []
    # the longer stream sets the epoch; the shorter one's batches are spread evenly over it
    n_steps = max(len(starts), len(rstarts))
    bar = progress(total=cfg.epochs * n_steps, desc="reward model", disable=not main)
    step = 0
    for epoch in range(cfg.epochs):
        order, rorder = list(train), list(rtrain)
        rng.shuffle(order)
        rng.shuffle(rorder)
        for k in range(n_steps):
            # every process has a record of each stream it draws from (starts stop world short of the end)
            j, rj = spread(k, len(starts), n_steps), spread(k, len(rstarts), n_steps)
            batch = [] if j is None else order[starts[j]: starts[j] + per_step][rank::world]
            rbatch = [] if rj is None else rorder[rstarts[rj]: rstarts[rj] + per_rating_step][rank::world]
            # every completion of every ranking in the batch is forwarded exactly once
            seqs = [ids for rec in [*batch, *rbatch] for ids in encoded[id(rec)]]
            states = None if cached is None else [h for rec in [*batch, *rbatch] for h in cached[id(rec)]]
            model.train()
            with autocast(cfg.dtype):
                flat = wrapped(train_scores, model, seqs, pad, cfg.max_batch_tokens, states, start)  # (ΣK + ratings,)
            flat = flat.float()
            loss, parts = step_loss(flat, batch, rbatch, cfg, [lengths[id(rk)] for rk in batch], length_coef)
            opt.zero_grad(set_to_none=True)
            acc.backward(loss)
            acc.clip_grad_norm_(wrapped.parameters(), 1.0)
            if length_coef is not None and world > 1 and length_coef.grad is not None:
                # not in the wrapped module, so DDP does not average its gradient: do it here
                torch.distributed.all_reduce(length_coef.grad)
                length_coef.grad /= world
            opt.step()
            step += 1
            last_loss = mean_over_processes(acc, loss.item())
            if log:
                log.log(step=step, epoch=epoch, loss=last_loss,
                        **{k: float(v.detach()) for k, v in parts.items()},
                        **({} if length_coef is None else {"length_coef": float(length_coef.detach())}))
            bar.update(1)
            bar.set_postfix(loss=f"{last_loss:.3f}")
    bar.close()
    acc.wait_for_everyone()
    result: dict[str, Any] = {}
    # the trained weights whole, on the main process (under FSDP/ZeRO-3 gathered by all processes
    # into a fresh copy), so normalising, evaluating and saving below read plain modules
    def fresh() -> list[Any]:  # the same modules, to receive gathered weights
        m = build_model(cfg)[0]
        return [m.lm, m.head]

    parts = gathered_parts(acc, wrapped, fresh)
    if main:
        model = ScalarModel(*parts, bias=model.bias)
        # normalise: SFT demonstrations score 0 on average, so PPO's reward starts near 0
        demo_seqs = demo_sequences(cfg, tok, Conversation, read_jsonl)
        if demo_seqs:
            model.bias = normalisation_bias(score_ids(model, demo_seqs, pad, cfg.dtype, raw=True))
        result = evaluate_rankings(model, tok, held, cfg) if held else {"heldout_rankings": 0}
        if ratings:
            result.update(evaluate_ratings(model, tok, rheld, cfg), train_ratings=len(rtrain))
        result.update(train_rankings=len(train), bias=model.bias, steps=step,
                      final_loss=last_loss)
        if length_coef is not None:  # the annotators' length preference, per nat of log tokens
            result["length_coef"] = float(length_coef.detach())
        model.save(out_dir, tok, {"dtype": cfg.dtype})
        write_json(out_dir / "eval.json", result)
        mark_done(out_dir, {"stage": "reward", **{k: v for k, v in result.items() if not isinstance(v, dict)}})
    acc.wait_for_everyone()  # no process returns before the stage is DONE
    return result


def demo_sequences(cfg: RewardConfig, tok: Any, conv_cls: Any, read_jsonl: Any) -> list[list[int]]:
    """(prefix, final assistant reply) of up to ``norm_samples`` demonstrations, encoded."""
    if not cfg.demos or not Path(cfg.demos).exists():
        return []
    convs = [c for c in read_jsonl(cfg.demos, conv_cls) if c.messages[-1]["role"] == "assistant"]
    rng = random.Random(cfg.seed + 1)
    rng.shuffle(convs)
    return [encode_reply(c.messages[:-1], c.messages[-1]["content"], tok, cfg.max_length)
            for c in convs[: cfg.norm_samples] if c.messages[-2]["role"] == "user"]
