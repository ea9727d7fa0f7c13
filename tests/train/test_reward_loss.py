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
