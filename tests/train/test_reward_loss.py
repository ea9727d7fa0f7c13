"""The K-wise InstructGPT reward-model loss, normalisation bias, accuracy and the held-out split."""

import math

import pytest
import torch

from chatrlhf.reward import (
    RewardConfig,
    batch_ranking_loss,
    normalisation_bias,
    pair_accuracy,
    ranking_loss,
    split_heldout,
)
from chatrlhf.schema import Ranking


def logsig(x):
    return math.log(1 / (1 + math.exp(-x)))


def test_kwise_loss_by_hand_for_k3():
    s = torch.tensor([1.0, 0.0, 2.0])
    ranks = [1, 2, 0]  # order: c2 > c0 > c1
    expect = -(logsig(2 - 1) + logsig(2 - 0) + logsig(1 - 0)) / 3
    assert ranking_loss(s, ranks).item() == pytest.approx(expect, rel=1e-6)


def test_kwise_loss_equals_mean_of_pairwise_losses():
    torch.manual_seed(0)
    s = torch.randn(5)
    ranks = [3, 0, 4, 1, 2]
    pair_losses = [ranking_loss(s[[i, j]], [0, 1]) for i in range(5) for j in range(5) if ranks[i] < ranks[j]]
    assert len(pair_losses) == 10
    assert ranking_loss(s, ranks).item() == pytest.approx(torch.stack(pair_losses).mean().item(), rel=1e-6)


def test_kwise_loss_gradient_flows_once_per_completion():
    s = torch.tensor([0.5, -0.5, 0.0, 0.2], requires_grad=True)
    ranking_loss(s, [0, 1, 2, 3]).backward()
    # the best completion is pushed up, the worst down
    assert s.grad[0] < 0 and s.grad[3] > 0


def test_ties_skip_and_half():
    s = torch.tensor([1.0, 0.0, 0.0])
    ranks = [0, 1, 1]  # c1 and c2 tied
    skip = ranking_loss(s, ranks, tie_mode="skip").item()
    assert skip == pytest.approx(-(2 * logsig(1.0)) / 3)  # two strict pairs over C(3,2)=3
    half = ranking_loss(s, ranks, tie_mode="half").item()
    assert half == pytest.approx(skip - 0.5 * (logsig(0) + logsig(0)) / 3)
    # a tie pulls tied scores together under "half"
    s2 = torch.tensor([0.0, 1.0], requires_grad=True)
    ranking_loss(s2, [0, 0], tie_mode="half").backward()
    assert s2.grad[0] < 0 < s2.grad[1]
    with pytest.raises(ValueError):
        ranking_loss(s, ranks, tie_mode="bogus")


def test_all_unacceptable_pushes_every_score_below_zero():
    s = torch.tensor([2.0, 1.0], requires_grad=True)
    base = ranking_loss(s, [0, 1]).item()
    loss = ranking_loss(s, [0, 1], unacceptable=[True, True], unacceptable_weight=0.5)
    assert loss.item() == pytest.approx(base + 0.5 * (math.log1p(math.exp(2)) + math.log1p(math.exp(1))) / 2)
    loss.backward()
    s0 = s.detach().clone().requires_grad_(True)
    ranking_loss(s0, [0, 1]).backward()
    # the unacceptable term pushes both scores down on top of the ranking term
    assert s.grad[0] > s0.grad[0] and s.grad[1] > s0.grad[1] > 0


def test_batch_loss_is_mean_over_rankings_with_flags():
    cfg = RewardConfig(unacceptable_weight=1.0)
    r1 = Ranking(prefix=[{"role": "user", "content": "a"}], completions=["x", "y"], ranks=[0, 1])
    r2 = Ranking(prefix=[{"role": "user", "content": "b"}], completions=["x", "y", "z"], ranks=[2, 1, 0],
                 flags={0: ["harmful"]})
    flat = torch.tensor([1.0, 0.0, -1.0, 0.0, 3.0])
    got = batch_ranking_loss(flat, [r1, r2], cfg).item()
    l1 = ranking_loss(flat[:2], [0, 1]).item()
    l2 = ranking_loss(flat[2:], [2, 1, 0]).item() + math.log1p(math.exp(-1.0))
    assert got == pytest.approx((l1 + l2) / 2, rel=1e-6)


def test_normalisation_bias_centres_demonstrations():
    raw = [1.5, 2.5, 3.5]
    b = normalisation_bias(raw)
    assert b == pytest.approx(-2.5)
    assert sum(x + b for x in raw) == pytest.approx(0.0)


def test_pair_accuracy_against_ranks_and_gold():
    assert pair_accuracy([3.0, 2.0, 1.0], [0, 1, 2], higher_is_better=False) == (3, 3)
    assert pair_accuracy([1.0, 2.0, 3.0], [0, 1, 2], higher_is_better=False) == (0, 3)
    # gold ties give no pair; equal scores are a miss
    assert pair_accuracy([1.0, 1.0, 0.0], [0.9, 0.2, 0.2], higher_is_better=True) == (1, 2)


def test_split_is_by_prompt_and_deterministic():
    rks = [Ranking(prefix=[{"role": "user", "content": f"q{i % 20}"}], completions=["a", "b"], ranks=[0, 1])
           for i in range(100)]
    tr, he = split_heldout(rks, 0.3)
    tr2, he2 = split_heldout(rks, 0.3)
    assert [id(r) for r in he] == [id(r) for r in he2]
    assert 0 < len(he) < 100
    assert not {r.prefix[0]["content"] for r in tr} & {r.prefix[0]["content"] for r in he}


# ----------------------------------------------------------------------------- the length expert


def test_log_lengths_are_centred_within_each_ranking():
    from chatrlhf.reward import log_lengths

    got = log_lengths([[0, math.e - 1], [3]])
    assert got == pytest.approx([-0.5, 0.5, 0.0])


def test_length_term_shifts_the_scores_of_the_loss_only():
    rk = Ranking([{"role": "user", "content": "q"}], ["a", "b", "c"], [0, 1, 2])
    s = torch.tensor([0.3, 0.1, -0.2])
    term = torch.tensor([-1.0, 0.0, 1.0])
    cfg = RewardConfig()
    assert batch_ranking_loss(s, [rk], cfg, term).item() == pytest.approx(ranking_loss(s + term, [0, 1, 2]).item())
    assert batch_ranking_loss(s, [rk], cfg).item() == pytest.approx(ranking_loss(s, [0, 1, 2]).item())


def test_correlation_by_hand():
    from chatrlhf.reward import correlation

    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert correlation(x, 2 * x + 1).item() == pytest.approx(1.0)
    assert correlation(x, -x).item() == pytest.approx(-1.0)
    assert correlation(x, torch.tensor([1.0, -1.0, -1.0, 1.0])).item() == pytest.approx(0.0, abs=1e-7)
    assert correlation(x, torch.ones(4)).item() == 0.0  # a constant has no correlation, not NaN


def test_decorrelation_sees_length_whatever_the_offsets_between_rankings():
    # The ranking loss ignores a constant added to one ranking's scores; if the penalty did not
    # centre scores within rankings, spreading prompts apart would shrink corr² while every
    # ranking still followed length exactly (session 12's review measured 1.0 -> 0.008).
    from chatrlhf.reward import centred_within, correlation, log_lengths

    lens = [[10, 40, 90], [5, 50, 200], [20, 30, 70]]
    ll = torch.tensor(log_lengths(lens))
    rankings = [Ranking([{"role": "user", "content": "q"}], ["x"] * 3, [2, 1, 0]) for _ in lens]
    for spread in (0.0, 10.0, 1000.0):
        offsets = torch.tensor([0.0, spread, -spread]).repeat_interleave(3)
        scores = ll + offsets
        assert correlation(centred_within(scores, rankings), ll).item() == pytest.approx(1.0, abs=1e-5)
    assert correlation(ll + offsets, ll).item() < 0.1  # the loophole the centring closes
    assert centred_within(torch.tensor([1.0, 3.0, 5.0, 6.0, 6.0, 9.0]), rankings[:2]).tolist() == [-2, 0, 2, -1, -1, 2]


def _fit_linear_rm(length_expert: bool, decorrelation: float = 0.0, steps: int = 150):
    """A linear 'head' over [quality, log length] fitted with the RM loss to annotators who prefer
    quality plus length (the simulated annotators' bias). Returns (head weights, length coefficient)."""
    from chatrlhf.reward import centred_within, correlation, log_lengths

    gen = torch.Generator().manual_seed(0)
    rankings, feats, lens = [], [], []
    for _ in range(32):
        q = torch.randn(4, generator=gen)
        n = torch.randint(2, 200, (4,), generator=gen)
        utility = q + 1.0 * torch.log1p(n.float())  # the annotators' preference, length included
        order = torch.argsort(utility, descending=True)
        ranks = [0] * 4
        for r, i in enumerate(order.tolist()):
            ranks[i] = r
        rankings.append(Ranking([{"role": "user", "content": "q"}], ["x"] * 4, ranks))
        ll = torch.tensor(log_lengths([n.tolist()]))
        feats.append(torch.stack([q, ll], 1))
        lens.append(ll)
    w = torch.zeros(2, requires_grad=True)
    coef = torch.zeros((), requires_grad=True)
    opt = torch.optim.Adam([w, coef], lr=0.1)
    cfg = RewardConfig(unacceptable_weight=0.0)
    x, ll = torch.cat(feats), torch.cat(lens)
    for _ in range(steps):
        scores = x @ w
        loss = batch_ranking_loss(scores, rankings, cfg, coef * ll if length_expert else None)
        if decorrelation:
            loss = loss + decorrelation * correlation(centred_within(scores, rankings), ll) ** 2
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach(), coef.item()


def test_length_expert_with_decorrelation_takes_the_length_bias_out_of_the_head():
    plain, _ = _fit_linear_rm(length_expert=False)
    # without either the head learns length about as strongly as quality
    assert plain[1] > 0.5 * plain[0] > 0
    # the expert alone is not enough: the head and the coefficient get the same gradient and share it
    alone, coef_alone = _fit_linear_rm(length_expert=True)
    assert alone[1] > 0.25 * alone[0] and coef_alone > 0
    # with the head's scores decorrelated from length as well, the coefficient carries the length
    # preference and the head keeps quality alone (ODIN's split of one RM into two)
    both, coef = _fit_linear_rm(length_expert=True, decorrelation=1.0)
    assert coef > 0.5 * both[0] > 0
    assert abs(both[1]) < 0.15 * both[0]


def test_reward_stage_with_length_expert_reports_the_coefficient_and_correlation(tiny, tmp_path):
    import json

    from chatrlhf import reward
    from chatrlhf.schema import write_jsonl

    prefix = [{"role": "user", "content": "Tell me about cats."}]
    rks = [Ranking(prefix + [{"role": "user", "content": f"and {i}?"}],
                   ["Cats are mammals that people keep as pets and they purr.", "Cats.", "Dogs bark.", "No."],
                   [0, 1, 2, 3], meta={"gold": [1.0, 0.6, 0.2, 0.0]}) for i in range(24)]
    path = tmp_path / "rankings.jsonl"
    write_jsonl(path, rks)
    cfg = reward.RewardConfig(model="tiny", rankings=[str(path)], out_dir=str(tmp_path / "rm"), lr=1e-3,
                              max_length=64, dtype="float32", train_layers=1, batch_rankings=4,
                              heldout_frac=0.3, length_expert=True, length_decorrelation=0.5)
    res = reward.run(cfg)
    saved = json.loads((tmp_path / "rm" / "eval.json").read_text())
    assert saved["length_coef"] == res["length_coef"] != 0.0
    assert -1.0 <= saved["length_corr"] <= 1.0 and saved["pairs_longer"] > 0
    rows = [json.loads(line) for line in (tmp_path / "rm" / "metrics.jsonl").read_text().splitlines()]
    assert all("length_coef" in r for r in rows if "loss" in r)


def test_rating_loss_by_hand_and_auc():
    from chatrlhf.preferences import rating_auc, rating_loss

    s = torch.tensor([2.0, -1.0, 0.5], requires_grad=True)
    loss = rating_loss(s, [1, -1, -1])
    want = -(logsig(2.0) + logsig(1.0) + logsig(-0.5)) / 3
    assert loss.item() == pytest.approx(want, abs=1e-6)
    loss.backward()
    # d/dr of -log σ(r) is σ(r) - 1 (thumbs up), of -log σ(-r) is σ(r) (down); mean over 3
    sig = torch.sigmoid(s.detach())
    assert torch.allclose(s.grad, torch.stack([sig[0] - 1, sig[1], sig[2]]) / 3)
    assert rating_auc([2.0, -1.0, 0.5], [1, -1, -1]) == 1.0
    assert rating_auc([0.0, 1.0, 0.0], [1, -1, -1]) == pytest.approx(0.25)  # a tie counts half
    assert rating_auc([1.0, 2.0], [1, 1]) is None  # no thumbs-down to compare with


def test_a_rating_needs_a_user_turn_and_plus_or_minus_one():
    from chatrlhf.schema import Rating, RecordError, from_dict

    ok = Rating([{"role": "user", "content": "hi"}], "hello", -1, ["rude"])
    assert from_dict(Rating, {**ok.__dict__}).rating == -1
    with pytest.raises(RecordError, match="rating must be"):
        Rating([{"role": "user", "content": "hi"}], "hello", 0)
    with pytest.raises(RecordError, match="rating must be"):
        Rating([{"role": "user", "content": "hi"}], "hello", True)
    with pytest.raises(RecordError, match="end with a user message"):
        Rating([{"role": "assistant", "content": "hi"}], "hello", 1)


def test_reward_stage_learns_single_thumbs_pointwise(tiny, tmp_path):
    """Ratings alone (no ranking): the RM learns to score the liked kind of reply above the
    disliked one on held-out prompts, and the loss log shows the pointwise term."""
    import json

    from chatrlhf import reward
    from chatrlhf.schema import Rating, write_jsonl

    good, bad = "Sure, here is a clear and friendly answer.", "No."
    rts = [Rating([{"role": "user", "content": f"Question number {i}?"}], good if i % 2 else bad,
                  1 if i % 2 else -1) for i in range(80)]
    path = tmp_path / "ratings.jsonl"
    write_jsonl(path, rts)
    cfg = reward.RewardConfig(model="tiny", ratings=[str(path)], out_dir=str(tmp_path / "rm"), lr=1e-3,
                              head_lr=1e-2, max_length=64, dtype="float32", train_layers=1, batch_ratings=8,
                              heldout_frac=0.25, epochs=3)
    res = reward.run(cfg)
    assert res["train_rankings"] == 0 and res["train_ratings"] + res["heldout_ratings"] == 80
    assert res["heldout_ratings"] > 5
    assert res["rating_auc"] == 1.0 and res["rating_acc"] > res["rating_majority"]
    rows = [json.loads(line) for line in (tmp_path / "rm" / "metrics.jsonl").read_text().splitlines()]
    assert all("rating_loss" in r and "ranking_loss" not in r for r in rows if "loss" in r)
    assert rows[-1]["rating_loss"] < rows[0]["rating_loss"]


def test_no_rankings_and_no_ratings_fails_clearly(tiny, tmp_path):
    from chatrlhf import reward

    (tmp_path / "empty.jsonl").write_text("")
    cfg = reward.RewardConfig(model="tiny", rankings=[str(tmp_path / "empty.jsonl")],
                              ratings=[str(tmp_path / "empty.jsonl")], out_dir=str(tmp_path / "rm"))
    with pytest.raises(ValueError, match="no training rankings .* and no training ratings"):
        reward.run(cfg)


def test_a_step_of_rankings_and_ratings_splits_the_flat_scores_between_them():
    """The flat scores hold the rankings' completions first, then one score per rating: each
    loss reads its own slice, and the gradient of each part reaches only its own rows."""
    from chatrlhf.reward import rating_loss, spread, step_loss
    from chatrlhf.schema import Rating

    p = [{"role": "user", "content": "q"}]
    rks = [Ranking(p, ["a", "b", "c"], [0, 1, 2]), Ranking(p, ["d", "e"], [1, 0])]
    rts = [Rating(p, "x", 1), Rating(p, "y", -1)]
    cfg = RewardConfig(unacceptable_weight=0.0, rating_weight=0.5)
    flat = torch.tensor([1.0, 0.5, -1.0, 0.2, 0.3, 2.0, -0.5], requires_grad=True)
    loss, parts = step_loss(flat, rks, rts, cfg, [[1, 1, 1], [1, 1]])
    want_rank = (ranking_loss(flat[:3], [0, 1, 2]) + ranking_loss(flat[3:5], [1, 0])) / 2
    assert parts["ranking_loss"].item() == pytest.approx(want_rank.item())
    assert parts["rating_loss"].item() == pytest.approx(rating_loss(flat[5:], [1, -1]).item())
    assert loss.item() == pytest.approx(want_rank.item() + 0.5 * parts["rating_loss"].item())
    parts["rating_loss"].backward()
    assert torch.all(flat.grad[:5] == 0) and flat.grad[5] < 0 < flat.grad[6]
    # one stream alone: only its part, and the loss is that part
    only, parts = step_loss(flat[5:].detach(), [], rts, cfg, [])
    assert set(parts) == {"rating_loss"} and only.item() == pytest.approx(0.5 * parts["rating_loss"].item())
    # the shorter stream's batches spread over the epoch, in order, each once
    assert [spread(k, 3, 10) for k in range(10)] == [None, None, None, 0, None, None, 1, None, None, 2]
    assert [spread(k, 4, 4) for k in range(4)] == [0, 1, 2, 3]
