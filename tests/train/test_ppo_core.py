"""PPO pure parts against hand-computed values: KL-shaped rewards, GAE, controllers, masking."""

import math

import pytest
import torch

from chatrlhf.ppo_core import (
    AdaptiveKLController,
    FixedKLController,
    apply_nonending_penalty,
    gae_advantages,
    kl_penalized_rewards,
    make_kl_controller,
    masked_mean,
    masked_whiten,
    policy_loss,
    token_logprobs,
    value_loss,
)


def test_kl_penalized_rewards_put_score_on_last_valid_token():
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, -1.0, -9.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5], [-2.0, -1.0, 7.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    rewards, kl = kl_penalized_rewards(torch.tensor([2.0, -1.0]), logp, ref, mask, kl_coef=0.1)
    # row 0: kl = [0.5, -1, 0] -> -0.1*kl = [-0.05, 0.1, 0] + score 2 at t=2
    # row 1: kl = [1, 0, masked] -> [-0.1, 0] + score -1 at t=1; padded t=2 stays 0
    assert torch.allclose(kl, torch.tensor([[0.5, -1.0, 0.0], [1.0, 0.0, 0.0]]))
    assert torch.allclose(rewards, torch.tensor([[-0.05, 0.1, 2.0], [-0.1, -1.0, 0.0]]))


def test_nonending_penalty_only_hits_unfinished_replies():
    out = apply_nonending_penalty(torch.tensor([1.0, 1.0]), torch.tensor([True, False]), -2.0)
    assert out.tolist() == [1.0, -1.0]


def test_gae_matches_hand_computation():
    gamma, lam = 0.9, 0.5
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.2, 0.4]])
    mask = torch.ones(1, 3)
    adv, ret = gae_advantages(rewards, values, mask, gamma, lam)
    d2 = 1.0 + 0 - 0.4  # 0.6
    d1 = 0.0 + 0.9 * 0.4 - 0.2  # 0.16
    d0 = 0.0 + 0.9 * 0.2 - 0.5  # -0.32
    a2 = d2
    a1 = d1 + 0.45 * a2
    a0 = d0 + 0.45 * a1
    assert torch.allclose(adv, torch.tensor([[a0, a1, a2]]))
    assert torch.allclose(ret, adv + values)


def test_gae_treats_the_last_valid_token_as_terminal_and_ignores_padding():
    rewards = torch.tensor([[0.0, 1.0, 5.0, 5.0]])
    values = torch.tensor([[0.5, 0.2, 9.0, 9.0]])  # garbage after EOS must not leak in
    mask = torch.tensor([[1, 1, 0, 0]])
    adv, ret = gae_advantages(rewards, values, mask, gamma=1.0, lam=1.0)
    # t=1 is terminal: A1 = 1 - 0.2 ; A0 = 0 + 0.2 - 0.5 + A1
    assert torch.allclose(adv, torch.tensor([[0.5, 0.8, 0.0, 0.0]]))
    assert torch.allclose(ret, torch.tensor([[1.0, 1.0, 0.0, 0.0]]))


def test_gamma_one_lambda_one_gives_monte_carlo_returns():
    torch.manual_seed(0)
    rewards, values = torch.randn(3, 5), torch.randn(3, 5)
    mask = torch.ones(3, 5)
    _, ret = gae_advantages(rewards, values, mask, 1.0, 1.0)
    mc = rewards.flip(1).cumsum(1).flip(1)
    assert torch.allclose(ret, mc, atol=1e-6)


def test_adaptive_kl_controller_moves_toward_target_with_clipped_step():
    c = AdaptiveKLController(value=0.1, target=6.0, horizon=10000)
    c.update(current_kl=12.0, n_steps=100)  # error clipped to +0.2
    assert c.value == pytest.approx(0.1 * (1 + 0.2 * 100 / 10000))
    c2 = AdaptiveKLController(value=0.1, target=6.0, horizon=10000)
    c2.update(current_kl=5.4, n_steps=100)  # error -0.1, inside the clip
    assert c2.value == pytest.approx(0.1 * (1 - 0.1 * 100 / 10000))
    c3 = AdaptiveKLController(value=0.1, target=6.0, horizon=10000)
    c3.update(current_kl=0.0, n_steps=100)  # error -1 clipped to -0.2
    assert c3.value == pytest.approx(0.1 * (1 - 0.2 * 100 / 10000))


def test_fixed_controller_and_factory():
    f = make_kl_controller(0.05, None, 100)
    assert isinstance(f, FixedKLController)
    f.update(100.0, 10)
    assert f.value == 0.05
    assert isinstance(make_kl_controller(0.05, 4.0, 100), AdaptiveKLController)


def test_masked_whiten_uses_valid_tokens_only():
    x = torch.tensor([[1.0, 3.0, 100.0], [5.0, -100.0, 7.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 1]])
    w = masked_whiten(x, mask)
    valid = torch.tensor([1.0, 3.0, 5.0, 7.0])
    expect = (valid - valid.mean()) / valid.var(unbiased=False).sqrt()
    assert torch.allclose(w[mask.bool()], expect, atol=1e-4)
    assert w[0, 2] == 0 and w[1, 1] == 0


def test_policy_loss_clipping_by_hand():
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[1.5, 0.5]]))  # ratios 1.5 and 0.5
    adv = torch.tensor([[1.0, 1.0]])
    loss, stats = policy_loss(new, old, adv, torch.ones(1, 2), clip=0.2)
    # token 0: max(-1.5, -1.2) = -1.2 (clipped); token 1: max(-0.5, -0.8) = -0.5 (unclipped)
    assert loss.item() == pytest.approx((-1.2 - 0.5) / 2)
    assert stats["clipfrac"].item() == pytest.approx(0.5)


def test_value_loss_clipping_by_hand():
    old_v = torch.tensor([[0.0, 0.0]])
    v = torch.tensor([[1.0, 0.1]])
    ret = torch.tensor([[1.0, 1.0]])
    loss, _ = value_loss(v, old_v, ret, torch.ones(1, 2), clip=0.2)
    # token 0: max((1-1)^2, (0.2-1)^2) = 0.64; token 1: max(0.81, 0.81) = 0.81
    assert loss.item() == pytest.approx(0.5 * (0.64 + 0.81) / 2)


def test_losses_ignore_padded_and_after_eos_tokens():
    torch.manual_seed(1)
    B, R = 2, 4
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]])
    new, old, adv = torch.randn(B, R), torch.randn(B, R), torch.randn(B, R)
    v, old_v, ret = torch.randn(B, R), torch.randn(B, R), torch.randn(B, R)
    pl, _ = policy_loss(new, old, adv, mask, 0.2)
    vl, _ = value_loss(v, old_v, ret, mask, 0.2)
    # garbage (huge, inf, nan) after EOS must change nothing
    junk = ~mask.bool()
    new2, adv2, v2, ret2 = new.clone(), adv.clone(), v.clone(), ret.clone()
    new2[junk], adv2[junk], v2[junk], ret2[junk] = 1e4, float("nan"), float("inf"), -1e9
    pl2, s2 = policy_loss(new2, old, adv2, mask, 0.2)
    vl2, _ = value_loss(v2, old_v, ret2, mask, 0.2)
    assert torch.allclose(pl, pl2) and torch.allclose(vl, vl2)
    assert math.isfinite(s2["approx_kl"].item())
    # and the valid tokens do matter
    new3 = new.clone()
    new3[0, 0] += 1.0
    assert not torch.allclose(policy_loss(new3, old, adv, mask, 0.2)[0], pl)


def test_masked_mean_and_token_logprobs_temperature():
    assert masked_mean(torch.tensor([1.0, float("nan"), 3.0]), torch.tensor([1, 0, 1])).item() == 2.0
    logits = torch.tensor([[[2.0, 0.0]]])
    lp = token_logprobs(logits, torch.tensor([[0]]), temperature=2.0)
    # softmax([1, 0])[0] = e/(e+1)
    assert lp.item() == pytest.approx(math.log(math.e / (math.e + 1)))
