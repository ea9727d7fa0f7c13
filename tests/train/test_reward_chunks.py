"""The reward stage's efficiency paths must not change what it computes: length-grouped chunks and
cached frozen blocks give the scores (and gradients) of one plain padded forward pass."""

import copy

import torch

from chatrlhf.heads import ScalarModel, freeze_lower_layers, new_scalar_head
from chatrlhf.heads import cache_lower_states
from chatrlhf.reward import score_ids, train_scores
from chatrlhf.train_utils import length_buckets, pad_right


def test_length_buckets_bound_padded_tokens_and_cover_every_index():
    lengths = [5, 300, 7, 40, 41, 6, 299, 8]
    groups = length_buckets(lengths, max_tokens=100)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        assert len(g) == 1 or len(g) * max(lengths[i] for i in g) <= 100
    assert [1] in groups and [6] in groups  # the long ones stand alone
    assert len(length_buckets([10] * 8, max_tokens=10_000)) == 1


def _model(tiny, train_layers):
    lm, tok = tiny
    lm = copy.deepcopy(lm)
    freeze_lower_layers(lm, train_layers)
    torch.manual_seed(1)
    return ScalarModel(lm, new_scalar_head(lm.config.hidden_size, init_std=0.5)), tok


def _seqs(tok):
    texts = ["Hi", "What is the capital of France? " * 6, "Tell me a joke about cats.", "Ok" * 30, "Why?"]
    return [tok(t)["input_ids"] for t in texts]


def test_chunked_and_cached_scores_equal_one_padded_forward(tiny):
    model, tok = _model(tiny, train_layers=1)  # tiny has 2 blocks: block 0 frozen and cached
    seqs = _seqs(tok)
    pad = tok.pad_token_id
    ids, attn = pad_right(seqs, pad)
    with torch.no_grad():
        ref = model.raw_scores(ids, attn)
        chunked = train_scores(model, seqs, pad, max_tokens=40)
        states = cache_lower_states(model.lm, seqs, pad, upto=1, max_tokens=40, dtype="float32")
        cached = train_scores(model, seqs, pad, max_tokens=40, states=states, start=1)
    assert [s.shape[0] for s in states] == [len(s) for s in seqs]
    torch.testing.assert_close(chunked, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cached, ref, rtol=1e-4, atol=1e-5)
    scored = score_ids(model, seqs, pad, "float32", batch_size=2, raw=True, max_tokens=40)
    torch.testing.assert_close(torch.tensor(scored), ref, rtol=1e-4, atol=1e-5)


def test_cached_path_gives_the_same_gradient_to_the_trained_blocks(tiny):
    model, tok = _model(tiny, train_layers=1)
    seqs = _seqs(tok)
    pad = tok.pad_token_id
    target = torch.linspace(-1, 1, len(seqs))

    def grads(scores):
        model.lm.zero_grad(set_to_none=True)
        model.head.zero_grad(set_to_none=True)
        ((scores - target) ** 2).sum().backward()
        return [p.grad.clone() for p in model.parameters()]

    ids, attn = pad_right(seqs, pad)
    ref = grads(model.raw_scores(ids, attn))
    states = cache_lower_states(model.lm, seqs, pad, upto=1, max_tokens=40, dtype="float32")
    got = grads(train_scores(model, seqs, pad, max_tokens=40, states=states, start=1))
    assert len(ref) == len(got) > 2
    for a, b in zip(ref, got):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4 * float(a.abs().max()))
