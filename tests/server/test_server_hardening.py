"""ChatService under hostile or careless input, with the fake engine: moderation runs off the
event loop and checks a streaming reply in bounded windows; out-of-range numbers are refused
before batching; a row that fails in the engine fails alone."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest
from server_fakes import FakeEngine

from chatrlhf.moderation import moderate
from chatrlhf.server import protocol as P
from chatrlhf.server.errors import APIError
from chatrlhf.server.scheduler import BatchScheduler
from chatrlhf.server.service import (
    MODERATION_OVERLAP,
    MODERATION_SENTENCE_REACH,
    ChatService,
    moderation_window,
)


@pytest.fixture(scope="module")
def tokenizer():
    from chatrlhf.models import load_tokenizer

    return load_tokenizer("tiny")


@contextlib.contextmanager
def make_service(tokenizer, engine=None, moderation=moderate, batch_wait_s=0.05, **kw):
    engine = engine or FakeEngine()
    sched = BatchScheduler(engine, max_batch_size=8, batch_wait_s=batch_wait_s)
    sched.start()
    try:
        yield ChatService(sched, tokenizer, model_name="fake", moderation=moderation, **kw), engine
    finally:
        sched.stop()


def req(content="Hello there", **kw) -> P.ChatCompletionRequest:
    return P.ChatCompletionRequest(messages=[{"role": "user", "content": content}], **kw)


async def run_chat(service, request):
    return await service.chat(await service.prepare(request))


class Recorder:
    """A moderation hook that records what it was asked to score, and on which thread."""

    def __init__(self):
        self.calls: list[tuple[str, str, int]] = []

    def __call__(self, text, role="user"):
        self.calls.append((text, role, threading.get_ident()))
        return moderate(text, role)


# ---- moderation: off the loop, bounded windows ------------------------------------------------

def test_moderation_runs_off_the_event_loop(tokenizer):
    rec = Recorder()
    with make_service(tokenizer, moderation=rec) as (service, _):
        async def main():
            loop_thread = threading.get_ident()
            await run_chat(service, req(max_tokens=5))
            return loop_thread

        loop_thread = asyncio.run(main())
    roles = {role for _, role, _ in rec.calls}
    assert roles == {"user", "assistant"}
    assert all(tid != loop_thread for _, _, tid in rec.calls)


def test_a_long_reply_is_moderated_in_bounded_windows(tokenizer):
    rec = Recorder()
    with make_service(tokenizer, engine=FakeEngine(step_s=0.0), moderation=rec) as (service, _):
        r = asyncio.run(run_chat(service, req(max_tokens=600)))
    reply = r.choices[0].message.content
    assert r.choices[0].finish_reason == "length" and len(reply) > 2500
    during = [text for text, role, _ in rec.calls if role == "assistant"][:-1]
    final = [text for text, role, _ in rec.calls if role == "assistant"][-1]
    assert final == reply  # the finished reply is scored whole, once
    # each check while streaming sees the new word and a bounded window before it ...
    bound = MODERATION_OVERLAP + MODERATION_SENTENCE_REACH + 16
    assert max(map(len, during)) <= bound
    # ... so the work is linear in the reply (re-scoring it whole at every word was quadratic)
    assert sum(map(len, during)) <= len(during) * bound < len(reply) ** 2 / 10


def test_a_harmful_phrase_far_into_a_reply_is_still_caught(tokenizer):
    words = ["fine "] * 700 + ["Here ", "is ", "how ", "to ", "make ", "a ", "pipe ", "bomb ",
                               "at ", "home. "] + ["x "] * 50
    with make_service(tokenizer, engine=FakeEngine(words=words, step_s=0.001)) as (service, engine):
        r = asyncio.run(run_chat(service, req(max_tokens=760)))
    c = r.choices[0]
    assert c.finish_reason == "content_filter" and "bomb" not in c.message.content
    assert c.message.content.count("fine") == 700 and engine.cancelled_rows == [0]


def test_a_long_refusal_is_not_cut_into_a_false_alarm(tokenizer):
    # a refusing sentence longer than the overlap: the window reaches back to its start, so the
    # checker never sees only "... make a pipe bomb" without the "I can't" that opens it
    refusal = ["I ", "can't ", "help ", "you "] + ["really "] * 90 + ["make ", "a ", "pipe ",
                                                                    "bomb ", "today. "]
    words = refusal + ["Stay ", "safe. "] * 30
    assert len("".join(refusal)) > MODERATION_OVERLAP
    with make_service(tokenizer, engine=FakeEngine(words=words, step_s=0.0)) as (service, _):
        r = asyncio.run(run_chat(service, req(max_tokens=len(words) - 1)))
    assert r.choices[0].finish_reason == "length", r.choices[0].message.content[-80:]


def test_moderation_window_starts_at_a_sentence():
    text = "a" * 1000 + ". " + "b" * 600
    start = moderation_window(text, len(text))
    assert start == 1001  # the start of the sentence the overlap's cut falls in
    assert moderation_window("short text", 10) == 0
    # no sentence end within reach: the cut itself, not the whole text
    long = "c" * 5000
    assert moderation_window(long, 5000) == 5000 - MODERATION_OVERLAP


# ---- bounded numbers; one bad row fails alone -------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("seed", 2**70), ("seed", -(2**70)), ("max_tokens", 2**70), ("max_completion_tokens", 2**64),
    ("n", 2**70), ("temperature", 1e308), ("temperature", float("nan")), ("top_p", float("inf")),
    ("top_p", 0.0), ("temperature", -1.0),
])
def test_out_of_range_numbers_are_refused_naming_the_field(field, value):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as e:  # the app answers these with a 400 naming the field
        req(**{field: value})
    assert e.value.errors()[0]["loc"] == (field,)


def test_a_seed_whose_last_choice_overflows_is_a_400(tokenizer):
    with make_service(tokenizer) as (service, engine):
        with pytest.raises(APIError) as e:
            asyncio.run(service.prepare(req(seed=2**63 - 1, n=2)))
        ok = asyncio.run(service.prepare(req(seed=2**63 - 2, n=2)))
    assert e.value.status == 400 and e.value.param == "seed" and engine.batches == []
    assert ok.options.seed == 2**63 - 2


def test_a_row_that_fails_in_the_engine_fails_its_request_alone(tokenizer):
    """Past the service's checks (another engine may reject other rows), a batch that fails
    before producing anything is retried one request per batch: the bad one fails, the good
    ones that shared its batch still get their replies."""
    from chatrlhf.engine import SamplingParams
    from chatrlhf.server.scheduler import Done, Failed

    engine = FakeEngine()
    with make_service(tokenizer, engine=engine, batch_wait_s=0.2) as (service, _):
        async def collect(sub):
            return [item async for item in sub.events()][-1]

        async def main():
            sched = service.scheduler
            good1 = sched.submit([[1, 2]], [SamplingParams(max_new_tokens=3, seed=1)])
            bad = sched.submit([[1, 2]], [SamplingParams(max_new_tokens=3, seed=2**70)])
            good2 = sched.submit([[1, 2]] * 2, [SamplingParams(max_new_tokens=3)] * 2)
            return await asyncio.gather(collect(good1), collect(bad), collect(good2))

        good1, bad, good2 = asyncio.run(main())
    assert engine.batches[0] == 4  # they did share one batch, which failed
    assert isinstance(bad, Failed) and "Overflow" in str(bad.error)
    assert isinstance(good1, Done) and [c.text for c in good1.completions] == ["w0 w1 w2 "]
    assert isinstance(good2, Done) and [c.finish_reason for c in good2.completions] == ["length"] * 2

