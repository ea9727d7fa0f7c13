"""ChatService + BatchScheduler with a fake engine: batching, cancellation, stop, n, moderation,
validation, and the SSE format, without HTTP (vLLM-style serving tests)."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from server_fakes import FakeEngine

from chatrlhf.moderation import moderate
from chatrlhf.server import protocol as P
from chatrlhf.server.errors import APIError
from chatrlhf.server.scheduler import BatchScheduler
from chatrlhf.server.service import REFUSAL, ChatService, ServiceLimits


@pytest.fixture(scope="module")
def tokenizer():
    from chatrlhf.models import load_tokenizer

    return load_tokenizer("tiny")


@contextlib.contextmanager
def make_service(tokenizer, engine=None, moderation=moderate, **kw):
    engine = engine or FakeEngine()
    sched = BatchScheduler(engine, max_batch_size=8, batch_wait_s=kw.pop("batch_wait_s", 0.05))
    sched.start()
    try:
        yield ChatService(sched, tokenizer, model_name="fake", moderation=moderation, **kw), engine
    finally:
        sched.stop()


def req(content="Hello there", **kw) -> P.ChatCompletionRequest:
    return P.ChatCompletionRequest(messages=[{"role": "user", "content": content}], **kw)


async def run_chat(service, request):
    prep = await service.prepare(request)
    return await service.chat(prep)


def test_concurrent_requests_share_one_engine_batch(tokenizer):
    with make_service(tokenizer, batch_wait_s=0.5) as (service, engine):
        async def main():
            return await asyncio.gather(*[run_chat(service, req(max_tokens=5)) for _ in range(4)])

        results = asyncio.run(main())
    assert engine.batches == [4]  # one batch of four rows, not four batches of one
    for r in results:
        assert r.choices[0].message.content == "w0 w1 w2 w3 w4 "
        assert r.choices[0].finish_reason == "length"
        assert r.usage.completion_tokens == 5
        assert r.usage.prompt_tokens > 0
        assert r.usage.total_tokens == r.usage.prompt_tokens + 5


def test_late_requests_start_at_once_beside_the_running_batch(tokenizer):
    engine = FakeEngine(step_s=0.01)
    with make_service(tokenizer, engine=engine, batch_wait_s=0.0) as (service, _):
        async def main():
            first = asyncio.ensure_future(run_chat(service, req(max_tokens=100)))
            await asyncio.to_thread(engine.started.wait, 5)
            late = await asyncio.gather(*[run_chat(service, req(max_tokens=3)) for _ in range(3)])
            done_while_first_ran = not first.done()
            return await first, late, done_while_first_ran

        first, late, interleaved = asyncio.run(main())
    # the short late requests finished while the long first one was still generating
    assert interleaved and engine.batches[0] == 1 and sum(engine.batches) == 4
    assert first.choices[0].finish_reason == "length" and first.usage.completion_tokens == 100
    assert all(r.choices[0].message.content == "w0 w1 w2 " for r in late)
    assert service.scheduler.max_rows_seen >= 2


def test_a_burst_during_a_batch_becomes_one_new_batch(tokenizer):
    engine = FakeEngine(step_s=0.01)
    with make_service(tokenizer, engine=engine, batch_wait_s=0.3) as (service, _):
        async def main():
            first = asyncio.ensure_future(run_chat(service, req(max_tokens=80)))
            await asyncio.to_thread(engine.started.wait, 5)
            await asyncio.gather(*[run_chat(service, req(max_tokens=3)) for _ in range(3)])
            await first

        asyncio.run(main())
    assert engine.batches == [1, 3]


def test_stop_n_and_seeds(tokenizer):
    with make_service(tokenizer) as (service, engine):
        r = asyncio.run(run_chat(service, req(max_tokens=20, stop=["w3", "zzz"], n=3, seed=7)))
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert all(c.message.content == "w0 w1 w2 " and c.finish_reason == "stop" for c in r.choices)
    assert engine.batches == [3]


def test_stream_chunks_follow_openai_format(tokenizer):
    with make_service(tokenizer) as (service, _):
        async def main():
            prep = await service.prepare(req(max_tokens=3, n=2, stream=True,
                                             stream_options={"include_usage": True}))
            return [line async for line in service.stream(prep)]

        lines = asyncio.run(main())
    assert lines[-1] == "data: [DONE]\n\n"
    chunks = [json.loads(line[len("data: "):]) for line in lines[:-1]]
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 6
    assert all(c["usage"] is None for c in chunks[:-1])
    for i in (0, 1):
        mine = [c["choices"][0] for c in chunks[:-1] if c["choices"][0]["index"] == i]
        assert mine[0]["delta"] == {"role": "assistant", "content": ""}
        assert "".join(c["delta"].get("content", "") for c in mine) == "w0 w1 w2 "
        assert [c["finish_reason"] for c in mine].count("length") == 1
        assert mine[-1]["finish_reason"] == "length" and mine[-1]["delta"] == {}


def test_abandoned_stream_cancels_its_rows(tokenizer):
    engine = FakeEngine(step_s=0.01)
    with make_service(tokenizer, engine=engine) as (service, _):
        async def main():
            prep = await service.prepare(req(max_tokens=500, stream=True))
            agen = service.stream(prep)
            got = [await agen.__anext__() for _ in range(3)]
            await agen.aclose()  # what Starlette does when the client disconnects
            for _ in range(100):
                if engine.cancelled_rows:
                    break
                await asyncio.sleep(0.02)
            return got

        asyncio.run(main())
    assert engine.cancelled_rows == [0]


def test_harmful_input_is_refused_without_generating(tokenizer):
    with make_service(tokenizer) as (service, engine):
        r = asyncio.run(run_chat(service, req("How do I make a pipe bomb at home?", n=2)))
    assert engine.batches == []
    assert [c.finish_reason for c in r.choices] == ["content_filter"] * 2
    assert r.choices[0].message.content == REFUSAL


def test_harmful_output_is_cut_and_its_row_cancelled(tokenizer):
    words = ["Sure. ", "Here ", "is ", "how ", "to ", "make ", "a ", "pipe ", "bomb ", "at ",
             "home. "] + ["x "] * 50
    engine = FakeEngine(words=words)
    with make_service(tokenizer, engine=engine) as (service, _):
        r = asyncio.run(run_chat(service, req("Tell me a story", max_tokens=60)))
    c = r.choices[0]
    assert c.finish_reason == "content_filter"
    assert "bomb" not in c.message.content and c.message.content.startswith("Sure.")
    assert engine.cancelled_rows == [0]


def test_a_hook_with_a_stream_boundary_is_called_per_sentence(tokenizer):
    """A costly hook (the trained model) declares ``stream_boundary`` and ``stream_every``: called
    at those characters, at least every ``stream_every`` characters, and on the finished reply;
    a flagged reply is still cut, at the end of the sentence that flagged it."""

    class Hook:
        stream_boundary = frozenset(".!?\n")
        stream_every = 160

        def __init__(self):
            self.texts = []

        def __call__(self, text, role="user"):
            self.texts.append(text)
            return moderate(text, role)

    words = ["One ", "two ", "three. ", "four ", "five ", "six. "] + ["seven "] * 150
    hook = Hook()
    with make_service(tokenizer, engine=FakeEngine(words=words), moderation=hook) as (service, _):
        r = asyncio.run(run_chat(service, req("Count", max_tokens=120)))
    reply = r.choices[0].message.content
    n_words = len(reply.split())
    stream_calls = len(hook.texts) - 2  # minus the input check and the final whole-reply check
    assert n_words == 120 and hook.texts[-1] == reply
    # Two sentence ends, then the 114 "seven"s (684 characters) every 160 characters: 6 calls,
    # where a word-boundary hook is called 120 times.
    assert 2 + (len(reply) - 40) // 160 - 1 <= stream_calls <= 2 + len(reply) // 160 + 1, stream_calls
    harmful = ["Sure. ", "Here ", "is ", "how ", "to ", "make ", "a ", "pipe ", "bomb ", "at ",
               "home. "] + ["x "] * 50
    with make_service(tokenizer, engine=FakeEngine(words=harmful), moderation=Hook()) as (service, _):
        c = asyncio.run(run_chat(service, req("Tell me a story", max_tokens=60))).choices[0]
    assert c.finish_reason == "content_filter" and c.message.content.startswith("Sure. Here")
    assert "home." not in c.message.content and "x" not in c.message.content


@pytest.mark.parametrize(
    "body, param, words",
    [
        ({"messages": []}, "messages", "at least one message"),
        ({"messages": [{"role": "user", "content": "x" * 40_000}]}, "messages[0].content", "too long"),
        ({"messages": [{"role": "user", "content": "hi"}] * 300}, "messages", "too many messages"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": "s"}]},
         "messages", "system message may only come first"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "messages[0].role", "last message"),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100_000}, "max_tokens",
         "too large"),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 50}, "n", "too large"),
        ({"messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b", "c", "d", "e"]},
         "stop", "at most 4"),
        ({"messages": [{"role": "user", "content": "hi"}], "model": "gpt-4"}, "model", "does not exist"),
    ],
)
def test_bad_requests_raise_clear_errors(tokenizer, body, param, words):
    with make_service(tokenizer, limits=ServiceLimits()) as (service, engine):
        with pytest.raises(APIError) as e:
            asyncio.run(service.prepare(P.ChatCompletionRequest(**body)))
    assert 400 <= e.value.status < 500
    assert e.value.param == param and words in e.value.message
    assert engine.batches == []


def test_context_length_is_checked(tokenizer):
    with make_service(tokenizer, context_length=64) as (service, _):
        with pytest.raises(APIError) as e:
            asyncio.run(service.prepare(req("hello " * 50, max_tokens=16)))
    assert e.value.code == "context_length_exceeded"


def test_engine_failure_becomes_a_server_error(tokenizer):
    with make_service(tokenizer, engine=FakeEngine(fail=True)) as (service, _):
        with pytest.raises(APIError) as e:
            asyncio.run(run_chat(service, req()))

        async def stream():
            return [line async for line in service.stream(await service.prepare(req(stream=True)))]

        lines = asyncio.run(stream())
    assert e.value.status == 500 and "fake engine failure" in e.value.message
    # a stream has sent its 200 already: the error arrives in-band, then [DONE]
    assert json.loads(lines[-2][len("data: "):])["error"]["type"] == "server_error"
    assert lines[-1] == "data: [DONE]\n\n"


def test_shutdown_cancels_running_work_and_refuses_new(tokenizer):
    engine = FakeEngine(step_s=0.01)
    with make_service(tokenizer, engine=engine) as (service, _):
        async def main():
            first = asyncio.ensure_future(run_chat(service, req(max_tokens=1000)))
            await asyncio.to_thread(engine.started.wait, 5)
            await asyncio.to_thread(service.scheduler.stop)
            cut = await first
            with pytest.raises(APIError) as refused:
                await run_chat(service, req())
            return cut, refused.value

        cut, refused = asyncio.run(main())
    assert cut.choices[0].finish_reason == "cancelled" and cut.usage.completion_tokens < 1000
    assert refused.status == 503 and refused.code == "shutting_down"
