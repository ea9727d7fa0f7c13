"""PPO experience assembly on the tiny model: masks, log-prob alignment, KL at the start, the
bf16 rollout copy following the policy's weights, and one update moving the policy."""

import copy
import random

import pytest
import torch

from chatrlhf.engine import Completion
from chatrlhf.heads import ScalarModel, new_scalar_head
from chatrlhf.ppo import Models, PPOConfig, make_experience, ppo_update
from chatrlhf.ppo_rollouts import refresh_gen_model
from chatrlhf.schema import Conversation


@pytest.fixture()
def models(tiny):
    lm, tok = tiny
    policy = copy.deepcopy(lm)
    ref = copy.deepcopy(lm).requires_grad_(False)
    rm = ScalarModel(copy.deepcopy(lm).requires_grad_(False), new_scalar_head(lm.config.hidden_size, 0.5))
    return Models(policy, ref, new_scalar_head(lm.config.hidden_size), rm, tok, None)


def _batch(tok):
    from chatrlhf.chat_format import render_prompt

    convs = [Conversation([{"role": "user", "content": "hi"}]),
             Conversation([{"role": "user", "content": "what is two plus two, please?"}])]
    return [(c, render_prompt(c.messages, tok)) for c in convs]


def test_experience_masks_alignment_and_zero_initial_kl(models):
    tok = models.tokenizer
    eos = tok.eos_token_id
    batch = _batch(tok)
    comps = [Completion([11, 12, eos], [0.0] * 3, "ab", "stop"),  # ended: EOS is part of the reply
             Completion([13, 14, 15, 16, 17], [0.0] * 5, "abcde", "length")]  # never ended
    cfg = PPOConfig(dtype="float32", nonending_penalty=-3.0, kl_coef=0.1)
    exp = make_experience(models, batch, comps, 0.1, cfg)
    assert exp.mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert exp.ended.tolist() == [True, False]
    # the policy equals the reference: KL and the per-token penalty are exactly 0
    assert torch.allclose(exp.old_logprobs * exp.mask, exp.ref_logprobs * exp.mask)
    # log-probs are those of the sampled tokens, read at the position before each one
    seq = torch.tensor([batch[0][1] + [11, 12, eos]])
    with torch.no_grad():
        logits = models.policy(input_ids=seq).logits[0]
    n = len(batch[0][1])
    expect = torch.log_softmax(logits[n - 1: n + 2], -1)[torch.arange(3), torch.tensor([11, 12, eos])]
    assert torch.allclose(exp.old_logprobs[0, :3], expect, atol=1e-4)
    # the score sits on the end-of-turn token; the unfinished reply is scored with one appended
    # (as the RM's training encodes every reply) and carries the penalty
    raw = models.reward.scores(exp.sequences, exp.attention_mask)
    assert exp.scores[0].item() == pytest.approx(raw[0].item(), abs=1e-4)
    cut = torch.tensor([batch[1][1] + [13, 14, 15, 16, 17, eos]])
    with torch.no_grad():
        with_eot = models.reward.scores(cut, torch.ones_like(cut)).item()
    assert exp.scores[1].item() == pytest.approx(with_eot - 3.0, abs=1e-4)
    assert abs(with_eot - raw[1].item()) > 1e-3  # reading at the last word would differ
    assert exp.rewards[0, 2].item() == pytest.approx(exp.scores[0].item(), abs=1e-5)
    assert exp.rewards[0, 3:].abs().sum() == 0 and exp.advantages[0, 3:].abs().sum() == 0


def test_update_moves_policy_and_rollout_copy_follows(models):
    tok = models.tokenizer
    cfg = PPOConfig(dtype="float32", rollout_dtype="bf16", minibatch_size=2, lr=1e-3)
    gen = refresh_gen_model(models, cfg)
    assert next(gen.parameters()).dtype == torch.bfloat16
    eos = tok.eos_token_id
    comps = [Completion([11, eos], [0.0] * 2, "a", "stop"), Completion([13, 14, eos], [0.0] * 3, "b", "stop")]
    exp = make_experience(models, _batch(tok), comps, 0.05, cfg)
    before = copy.deepcopy(models.policy.state_dict())
    opt = torch.optim.AdamW(list(models.policy.parameters()) + list(models.value_head.parameters()), lr=1e-3)
    stats = ppo_update(models, exp, opt, cfg, random.Random(0), None)
    for k in ("pg_loss", "vf_loss", "entropy", "clipfrac", "approx_kl"):
        assert k in stats
    moved = any(not torch.equal(before[k], v) for k, v in models.policy.state_dict().items())
    assert moved
    gen2 = refresh_gen_model(models, cfg)
    assert gen2 is gen  # refreshed in place, not rebuilt
    for p_gen, p in zip(gen2.parameters(), models.policy.parameters()):
        assert torch.equal(p_gen, p.detach().to(torch.bfloat16))


def _shared_trunk_models(models, rm_same: bool):
    """Models with the top block trainable and the lower one shared (tiny has 2 blocks)."""
    from chatrlhf.heads import freeze_lower_layers
    from chatrlhf.ppo import same_lower_blocks

    m = copy.copy(models)
    freeze_lower_layers(m.policy, 1)
    if not rm_same:
        with torch.no_grad():
            m.reward.lm.model.layers[0].mlp.up_proj.weight.add_(0.01)
    m.trunk_start = 1
    m.ref_shares_trunk = same_lower_blocks(m.policy, m.reference, 1)
    m.rm_shares_trunk = same_lower_blocks(m.policy, m.reward.lm, 1)
    return m


@pytest.mark.parametrize("cut_shorter", [False, True])
@pytest.mark.parametrize("rm_same", [True, False])
def test_shared_frozen_trunk_gives_the_full_forward_experience(models, rm_same, cut_shorter, monkeypatch):
    # Training only the top blocks lets one pass of the frozen blocks serve the old policy, the
    # reference, the reward model and every update pass; nothing it computes may differ.
    # cut_shorter: the cut reply is not the longest, so padding sits before its appended EOT.
    tok = models.tokenizer
    eos = tok.eos_token_id
    comps = [Completion([11, 12, eos], [0.0] * 3, "ab", "stop"),
             Completion([13, 14, 15, 16, 17], [0.0] * 5, "abcde", "length")]
    if cut_shorter:
        comps = [Completion([11, 12, 18, 19, 20, 21, eos], [0.0] * 7, "ab", "stop"),
                 Completion([13, 14, 15], [0.0] * 3, "abc", "length")]
    cfg = PPOConfig(dtype="float32", kl_coef=0.1)
    shared = _shared_trunk_models(models, rm_same)
    assert shared.ref_shares_trunk and shared.rm_shares_trunk == rm_same
    full = make_experience(models, _batch(tok), comps, 0.1, cfg)  # after any rm change
    rm_forwards = []
    real_scores = ScalarModel.scores
    monkeypatch.setattr(ScalarModel, "scores", lambda self, *a: rm_forwards.append(1) or real_scores(self, *a))
    fast = make_experience(shared, _batch(tok), comps, 0.1, cfg)
    # the cut reply's end-of-turn token rides in the shared trunk as one extra column: no RM
    # forward of its own when the RM shares the trunk
    assert len(rm_forwards) == (0 if rm_same else 2)  # else: all rows, then the cut one with EOT
    assert full.trunk is None and fast.trunk is not None
    assert fast.trunk.shape[1] == fast.sequences.shape[1]  # the extra column stays out of the update
    raw = models.reward.scores(full.sequences, full.attention_mask)
    for name in ("old_logprobs", "ref_logprobs", "values"):
        torch.testing.assert_close(getattr(fast, name) * fast.mask, getattr(full, name) * full.mask,
                                   rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fast.scores[0], raw[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fast.scores, full.scores, rtol=1e-4, atol=1e-5)  # the cut row too
    # an update through the cached trunk moves only the top block
    before = copy.deepcopy(shared.policy.state_dict())
    params = [p for p in shared.policy.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params + list(shared.value_head.parameters()), lr=1e-3)
    ppo_update(shared, fast, opt, PPOConfig(dtype="float32", minibatch_size=2), random.Random(0), None)
    after = shared.policy.state_dict()
    changed = {k for k in after if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("model.layers.1.") or k == "model.norm.weight" for k in changed)


def test_rm_coef_zero_makes_the_reward_independent_of_the_reward_model(models):
    """The ablation "PPO with zero RM reward": two different RMs give the same rewards and
    advantages at rm_coef 0 (and different ones at the default 1); the KL term stays."""
    tok = models.tokenizer
    eos = tok.eos_token_id
    comps = [Completion([11, 12, eos], [0.0] * 3, "ab", "stop"), Completion([13, 14, 15], [0.0] * 3, "c", "length")]
    torch.manual_seed(1)
    other_rm = ScalarModel(models.reward.lm, new_scalar_head(models.policy.config.hidden_size, 0.5), bias=3.0)
    with torch.no_grad():  # a policy that differs from the reference, so the KL term is not 0
        for p in models.policy.parameters():
            p.add_(0.01 * torch.randn_like(p))

    def exp_with(rm, coef):
        m = Models(models.policy, models.reference, models.value_head, rm, tok, None)
        cfg = PPOConfig(dtype="float32", nonending_penalty=-2.0, rm_coef=coef)
        return make_experience(m, _batch(tok), comps, 0.1, cfg)

    a, b = exp_with(models.reward, 0.0), exp_with(other_rm, 0.0)
    assert torch.equal(a.rewards, b.rewards) and torch.equal(a.advantages, b.advantages)
    assert a.scores.tolist() == [0.0, -2.0]  # only the non-ending penalty is left
    assert (a.rewards * a.mask).abs().sum() > 0  # the KL penalty stays
    assert a.rm_raw is not None and not torch.equal(a.rm_raw, b.rm_raw)
    a1, b1 = exp_with(models.reward, 1.0), exp_with(other_rm, 1.0)
    assert not torch.equal(a1.rewards, b1.rewards)
    assert a1.rm_raw is None  # the default path is unchanged
    half = exp_with(models.reward, 0.5)
    assert torch.allclose(half.scores, 0.5 * a.rm_raw + torch.tensor([0.0, -2.0]))


def test_ptx_loss_through_cached_frozen_blocks_equals_the_full_forward(models):
    """The ptx term computed from each demonstration's cached lower-block states gives the same
    loss and the same gradient on the trained block as the full forward (rows of unequal length)."""
    from chatrlhf.heads import masked_lm_loss, masked_lm_loss_from_states
    from chatrlhf.ppo import with_lower_states
    from chatrlhf.train_utils import encode_demos, pad_right

    tok = models.tokenizer
    shared = _shared_trunk_models(models, True)
    demos = [Conversation([{"role": "user", "content": "Write a haiku about rain."},
                           {"role": "assistant", "content": "Soft rain on the roof, the garden drinks."}]),
             Conversation([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}])]
    ptx = encode_demos(demos, tok, 256)
    cached = with_lower_states(shared, ptx, PPOConfig(dtype="float32"))
    assert len(cached) == 2 and all(len(r) == 3 and r[2].shape[0] == len(r[0]) for r in cached)
    assert len(cached[0][0]) != len(cached[1][0])
    ids, a, m = pad_right([r[0] for r in cached], tok.pad_token_id, [r[1] for r in cached])
    h = torch.nn.utils.rnn.pad_sequence([r[2] for r in cached], batch_first=True)
    params = [p for p in shared.policy.parameters() if p.requires_grad]
    shared.policy.train()
    full = masked_lm_loss(shared.policy, ids, a, m)
    g_full = torch.autograd.grad(full, params)
    fast = masked_lm_loss_from_states(shared.policy, h, ids, a, m, shared.trunk_start)
    g_fast = torch.autograd.grad(fast, params)
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)
    for x, y in zip(g_fast, g_full):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)
    # without frozen blocks nothing is cached
    assert with_lower_states(models, ptx, PPOConfig(dtype="float32")) is ptx
