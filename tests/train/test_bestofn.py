"""Best-of-n on the tiny model with a tiny reward model: the selected reply is the RM's argmax, and
best-of-4 and best-of-16 share one set of samples."""

import copy

import pytest
import torch

from chatrlhf.bestofn import BestOfNConfig, best_of_n, select_best
from chatrlhf.heads import ScalarModel, new_scalar_head
from chatrlhf.schema import Conversation


def test_select_best_takes_the_first_n_and_the_first_of_equals():
    scores = [[0.1, 0.5, 0.2, 0.9], [0.3, 0.3, 0.1, 0.0]]
    assert select_best(scores, [2, 4]) == {2: [1, 0], 4: [3, 0]}


@pytest.fixture()
def rm_dir(tmp_path, tiny):
    lm, tok = tiny
    torch.manual_seed(0)
    ScalarModel(copy.deepcopy(lm), new_scalar_head(lm.config.hidden_size, 0.5), bias=0.25).save(tmp_path / "rm", tok)
    return str(tmp_path / "rm")


def test_best_of_n_selects_the_rm_argmax_from_one_shared_sample_set(rm_dir, tiny):
    from chatrlhf.chat_format import eot_id
    from chatrlhf.evaluate import load_rm
    from chatrlhf.reward import ended_ids, score_ids

    convs = [Conversation([{"role": "user", "content": f"Tell me something about {w}."}])
             for w in ("cats", "the sea", "numbers")]
    cfg = BestOfNConfig(policy="tiny", reward_model=rm_dir, ns=[4, 16], temperature=1.0, max_new_tokens=6,
                        nonending_penalty=-1.0, batch_size=64)
    out = best_of_n(convs, cfg)
    assert [len(row) for row in out["samples"]] == [16, 16, 16]
    rm, tok = load_rm(rm_dir)  # the RM scores each sample again, independently
    for p, row in enumerate(out["samples"]):
        assert len({tuple(c.token_ids) for c in row}) > 1  # really sampled, not 16 copies
        # read at the end-of-turn token, appended to a reply cut off at the token limit
        seqs = [ended_ids(out["prompt_ids"][p] + list(c.token_ids), eot_id(tok)) for c in row]
        raw = score_ids(rm, seqs, tok.pad_token_id, "float32")
        want = [s + (0.0 if c.finish_reason == "stop" else -1.0) for s, c in zip(raw, row)]
        assert out["scores"][p] == pytest.approx(want, abs=1e-5)
        for n in (4, 16):
            j = out["best"][n][p]
            assert j < n and want[j] == pytest.approx(max(want[:n]), abs=1e-6)
            assert out["selected"][n][p] is row[j]
        assert want[out["best"][16][p]] >= want[out["best"][4][p]]
    # best-of-4 alone draws exactly the first 4 samples of the best-of-16 set (per-sample seeds)
    four = best_of_n(convs, BestOfNConfig(**{**cfg.__dict__, "ns": [4]}))
    for p in range(len(convs)):
        assert [c.token_ids for c in four["samples"][p]] == [c.token_ids for c in out["samples"][p][:4]]
        assert four["best"][4][p] == out["best"][4][p]
