"""The reward model reads every reply at an end-of-turn token, in training and when scoring a
generated reply, whether or not the reply was cut off at the token limit."""

import copy

import pytest
import torch

from chatrlhf.chat_format import eot_id, render_prompt
from chatrlhf.engine import Completion
from chatrlhf.evaluate import EvalConfig, rm_scores
from chatrlhf.heads import ScalarModel, new_scalar_head
from chatrlhf.reward import encode_reply, ended_ids, score_ids
from chatrlhf.train_utils import pad_id_of


def test_ended_ids_appends_only_when_missing():
    assert ended_ids([5, 6, 2], 2) == [5, 6, 2]
    assert ended_ids([5, 6], 2) == [5, 6, 2]
    assert ended_ids([], 2) == [2]


def test_eval_scores_cut_off_reply_as_training_encodes_it(tiny):
    lm, tok = tiny
    torch.manual_seed(1)
    rm = ScalarModel(copy.deepcopy(lm).eval(), new_scalar_head(lm.config.hidden_size, 0.5))
    prefix = [{"role": "user", "content": "Write a poem about autumn."}]
    reply = "Leaves fall slowly and the light"
    body = tok(reply, add_special_tokens=False)["input_ids"]
    prompt = render_prompt(prefix, tok)
    eot = eot_id(tok)
    cut = Completion(body, [0.0] * len(body), reply, "length")
    done = Completion(body + [eot], [0.0] * (len(body) + 1), reply, "stop")
    got = rm_scores((rm, tok), [prompt, prompt], [cut, done], EvalConfig(dtype="float32"))
    trained = score_ids(rm, [encode_reply(prefix, reply, tok, 1024)], pad_id_of(tok), "float32")[0]
    # both read where training read: the cut-off reply scores as the finished one, and as training's
    # encoding of the same text (the chat template adds nothing between reply and end-of-turn)
    assert got[0] == pytest.approx(got[1], abs=1e-5)
    assert got[1] == pytest.approx(trained, abs=1e-4)
    at_last_word = score_ids(rm, [prompt + body], pad_id_of(tok), "float32")[0]
    assert abs(at_last_word - got[0]) > 1e-3
