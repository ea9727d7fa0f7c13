"""DPO: the pair and K-wise losses against hand-computed values, gradient signs, the split shared
with the reward stage, and a tiny-model run that learns a toy ranking file."""

import json
import math

import pytest
import torch

from chatrlhf.dpo import DPOConfig, dpo_pair_loss, dpo_ranking_loss, encode_reply, run, sequence_logps, split_heldout
from chatrlhf.schema import Ranking, write_jsonl


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_pair_loss_matches_hand_computation():
    # pair 1: margin 0.5·((−1 + 1.5) − (−2 + 1.5)) = 0.5; pair 2: 0.5·((−3 + 2) − (−1 + 2)) = −1
    loss, st = dpo_pair_loss(torch.tensor([-1.0, -3.0]), torch.tensor([-2.0, -1.0]),
                             torch.tensor([-1.5, -2.0]), torch.tensor([-1.5, -2.0]), beta=0.5)
    assert loss.item() == pytest.approx((softplus(-0.5) + softplus(1.0)) / 2, rel=1e-6)
    assert st["accuracy"] == 0.5 and st["margin"] == pytest.approx(-0.25) and st["pairs"] == 2


def test_ranking_loss_by_hand_with_ties():
    # r = β(π − ref) = [0, −1, −2]; ranks: 0 beats the tied 1 and 2
    pi, ref, ranks = torch.tensor([0.0, -1.5, -2.0]), torch.tensor([0.0, -0.5, 0.0]), [0, 1, 1]
    skip, st = dpo_ranking_loss(pi, ref, ranks, beta=1.0, ties="skip")
    assert skip.item() == pytest.approx((softplus(-1) + softplus(-2)) / 3, rel=1e-6)  # divisor C(3,2) = 3
    assert st == {"accuracy": 1.0, "margin": pytest.approx(1.5), "pairs": 2}
    half, _ = dpo_ranking_loss(pi, ref, ranks, beta=1.0, ties="half")
    tie_term = 0.5 * (softplus(-1) + softplus(1))  # −½(log σ(1) + log σ(−1)) for the tied pair (1, 2)
    assert half.item() == pytest.approx((softplus(-1) + softplus(-2) + tie_term) / 3, rel=1e-6)
    # β scales the implicit reward; a wrong order is a miss
    wrong, st = dpo_ranking_loss(pi, ref, [2, 1, 0], beta=2.0)
    assert wrong.item() == pytest.approx((softplus(2) + softplus(4) + softplus(2)) / 3, rel=1e-6)
    assert st["accuracy"] == 0.0
    with pytest.raises(ValueError, match="tie_mode"):
        dpo_ranking_loss(pi, ref, ranks, beta=1.0, ties="bogus")


def test_all_tied_ranking_gives_no_pairs_and_unacceptable_replies_are_pushed_down():
    pi, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.5])
    loss, st = dpo_ranking_loss(pi, ref, [0, 0], beta=1.0)
    assert loss.item() == 0.0 and st["pairs"] == 0 and math.isnan(st["accuracy"])
    # "all unacceptable": each reply adds w·softplus(r_i), r = [0.5, −0.5]
    loss, _ = dpo_ranking_loss(pi, ref, [0, 1], beta=1.0, unacceptable=[True, True], unacceptable_weight=0.5)
    assert loss.item() == pytest.approx(softplus(-1.0) + 0.5 * (softplus(0.5) + softplus(-0.5)) / 2, rel=1e-6)


def test_k2_ranking_is_the_pair_loss():
    pi, ref = torch.tensor([-3.0, -4.5]), torch.tensor([-3.2, -4.0])
    a, _ = dpo_ranking_loss(pi, ref, [1, 0], beta=0.3)  # reply 1 is preferred
    b, _ = dpo_pair_loss(pi[1:], pi[:1], ref[1:], ref[:1], beta=0.3)
    assert a.item() == pytest.approx(b.item(), rel=1e-6)


def test_gradients_raise_the_preferred_and_lower_the_rejected():
    pi = torch.tensor([-2.0, -2.0, -2.0], requires_grad=True)
    loss, _ = dpo_ranking_loss(pi, torch.tensor([-2.0, -2.0, -2.0]), [0, 1, 2], beta=0.1)
    loss.backward()
    g = pi.grad.tolist()
    assert g[0] < 0 < g[2] and g[1] == pytest.approx(0.0, abs=1e-7)  # the middle one wins and loses once
    c, r = torch.tensor([-1.0], requires_grad=True), torch.tensor([-1.0], requires_grad=True)
    dpo_pair_loss(c, r, torch.tensor([-1.0]), torch.tensor([-1.0]), beta=0.5)[0].backward()
    assert c.grad.item() == pytest.approx(-0.25) and r.grad.item() == pytest.approx(0.25)  # ∓β·σ(0)


def test_split_holds_out_whole_prompts_whatever_the_order():
    rks = [Ranking([{"role": "user", "content": f"q{i % 20}"}], ["a", "b"], [0, 1]) for i in range(40)]
    train, held = split_heldout(rks, 0.3)
    held_prompts = {r.prefix[0]["content"] for r in held}
    assert held and train and not held_prompts & {r.prefix[0]["content"] for r in train}
    again = split_heldout(list(reversed(rks)), 0.3)[1]  # by prompt hash, not position
    assert {r.prefix[0]["content"] for r in again} == held_prompts


def test_sequence_logps_sum_the_reply_tokens_only(tiny):
    lm, tok = tiny
    prefix = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "old"},
              {"role": "user", "content": "again"}]
    ids, mask = encode_reply(prefix, "Hello there.", tok, 512)
    n_reply = len(tok("Hello there.", add_special_tokens=False)["input_ids"]) + 1  # + end-of-turn
    assert sum(mask) == n_reply and mask[-1] == 1 and ids[-1] == tok.convert_tokens_to_ids("<|im_end|>")
    with torch.no_grad():
        got = sequence_logps(lm, [(ids, mask), (ids[:-3], mask[:-3])], tok.pad_token_id or 0, 4096)
        lp = torch.log_softmax(lm(input_ids=torch.tensor([ids])).logits[0, :-1].float(), -1)
        want = sum(lp[t - 1, ids[t]].item() for t in range(1, len(ids)) if mask[t])
    assert got[0].item() == pytest.approx(want, rel=1e-4)
    assert got[1].item() > got[0].item()  # fewer (negative) terms


def _toy_rankings(path, n=8):
    rks = []
    for i in range(n):
        good, bad, worse = f"The answer to {i} is yes.", "No idea, sorry friend.", "Blah blah blah blah."
        rks.append(Ranking([{"role": "user", "content": f"Question number {i}?"}], [bad, good, worse], [1, 0, 2],
                           meta={"gold": [0.5, 1.0, 0.0]}))
    write_jsonl(path, rks)
    return rks


def test_tiny_run_learns_the_rankings_and_saves_a_loadable_checkpoint(tmp_path, tiny):
    from chatrlhf.models import load_model

    lm, tok = tiny
    rks = _toy_rankings(tmp_path / "r.jsonl")
    cfg = DPOConfig(model="tiny", rankings=[str(tmp_path / "r.jsonl")], out_dir=str(tmp_path / "dpo"),
                    heldout_frac=0.0, beta=0.5, epochs=6, lr=3e-3, batch_rankings=4, max_length=64,
                    train_layers=1, dtype="float32", threads=1)
    summary = run(cfg)
    out = tmp_path / "dpo"
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == summary["steps"] == 12
    assert rows[0]["loss"] == pytest.approx(math.log(2), rel=0.05)  # r ≈ 0 at the start: log 2 per pair
    assert rows[-1]["loss"] < 0.5 * rows[0]["loss"] and rows[-1]["accuracy"] == 1.0
    trained, tok2 = load_model(str(out))
    # the margin chosen − rejected rose from 0 (policy = reference) on the training rankings
    seqs = [encode_reply(rks[0].prefix, c, tok, 64) for c in rks[0].completions]
    with torch.no_grad():
        before = sequence_logps(lm, seqs, tok.pad_token_id, 4096)
        after = sequence_logps(trained, seqs, tok.pad_token_id, 4096)
    gain = after - before  # = r / β per reply
    assert gain[1] > gain[0] > gain[2]
    # only the top block trained
    sd0, sd1 = lm.state_dict(), trained.state_dict()
    assert torch.equal(sd0["model.layers.0.mlp.up_proj.weight"], sd1["model.layers.0.mlp.up_proj.weight"])
    assert not torch.equal(sd0["model.layers.1.mlp.up_proj.weight"], sd1["model.layers.1.mlp.up_proj.weight"])
    # a second call finds DONE and does nothing
    mtime = (out / "model.safetensors").stat().st_mtime
    assert run(cfg)["stage"] == "dpo" and (out / "model.safetensors").stat().st_mtime == mtime
