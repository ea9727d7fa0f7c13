"""The OpenAI-compatible API on a live uvicorn server, driven by the official ``openai`` client,
on SQLite and on a real PostgreSQL server (``db_url``), with the tiny model."""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest
from server_live import live_server

USER = [{"role": "user", "content": "Tell me something about the sea."}]


def _api_conversations(store):
    return [store.get_conversation(c.id) for c in store.list_conversations(None) if c.source == "api"]


def test_openai_client_plain_stream_stop_and_n(live):
    client = live.client()
    assert [m.id for m in client.models.list().data] == ["tiny"]
    assert client.models.retrieve("tiny").id == "tiny"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")

    # 1. non-streaming, sampled with a seed: reproducible
    kw = dict(model="tiny", messages=USER, max_tokens=12, temperature=1.0, seed=3, ignore_eos=True)
    kw["extra_body"] = {"ignore_eos": kw.pop("ignore_eos")}
    plain = client.chat.completions.create(**kw)
    text = plain.choices[0].message.content
    assert plain.object == "chat.completion" and plain.model == "tiny"
    assert plain.choices[0].finish_reason == "length" and text
    assert plain.usage.completion_tokens == 12
    assert plain.usage.total_tokens == plain.usage.prompt_tokens + 12

    # 2. streaming with include_usage: same text, one id, usage in a final choice-less chunk
    chunks = list(client.chat.completions.create(
        **kw, stream=True, stream_options={"include_usage": True}))
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == plain.usage.model_dump()
    assert all(c.usage is None for c in chunks[:-1])
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == text
    assert [c.choices[0].finish_reason for c in chunks[:-1] if c.choices[0].finish_reason] == ["length"]

    # 3. stop: the same sampled reply, cut before the first occurrence of a stop string
    stop = next(text[i : i + 2] for i in range(1, len(text) - 1) if text[i : i + 2].strip())
    cut = client.chat.completions.create(**kw | {"stop": [stop, "\u2603\u2603"]})
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == text[: text.find(stop)]

    # 4. n: three choices, streamed and not
    many = client.chat.completions.create(**kw | {"n": 3})
    assert [c.index for c in many.choices] == [0, 1, 2]
    assert many.usage.completion_tokens == 36
    streamed = list(client.chat.completions.create(**kw | {"n": 2}, stream=True))
    assert {c.choices[0].index for c in streamed} == {0, 1}

    # 5. recorded in the store with the served model version; n>1 replies are siblings
    convs = _api_conversations(live.store)
    assert len(convs) == 5
    for conv in convs:
        users = [m for m in conv.messages if m.role == "user"]
        replies = [m for m in conv.messages if m.role == "assistant"]
        assert [m.content for m in users] == [USER[0]["content"]]
        assert replies and all(m.model_version == "tiny" and m.parent_id == users[0].id
                               for m in replies)
    assert sorted(len(c.messages) for c in convs) == [2, 2, 2, 3, 4]
    assert any(m.content == text for c in convs for m in c.messages)


BAD = [
    # (name, raw body or json, expected status, words in the message)
    ("malformed JSON", b'{"model": "tiny", "messages": [', 400, "parse the JSON"),
    ("unknown role", {"messages": [{"role": "wizard", "content": "hi"}]}, 400, "role"),
    ("empty messages", {"messages": []}, 400, "at least one message"),
    ("oversized content", {"messages": [{"role": "user", "content": "x" * 40_000}]}, 400, "too long"),
    ("huge body", {"messages": [{"role": "user", "content": "x" * 1_200_000}]}, 413, "larger than"),
    ("missing messages", {"model": "tiny"}, 400, "messages"),
    ("missing content", {"messages": [{"role": "user"}]}, 400, "content: Field required"),
    ("image part", {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400,
     "only text parts"),
    ("bad temperature", {"messages": USER, "temperature": 7}, 400, "temperature"),
]


def test_bad_input_gets_4xx_and_changes_nothing(live):
    before = live.store.counts()
    headers = {"Authorization": f"Bearer {live.key}"}
    with httpx.Client(base_url=live.url, headers=headers, timeout=30) as http:
        for name, body, status, words in BAD:
            if isinstance(body, bytes):
                r = http.post("/v1/chat/completions", content=body,
                              headers={"Content-Type": "application/json"})
            else:
                r = http.post("/v1/chat/completions", json=body)
            assert r.status_code == status, (name, r.text)
            err = r.json()["error"]
            assert words in err["message"], (name, err)
            assert set(err) == {"message", "type", "param", "code"}
        # a huge body sent chunked (no Content-Length) is cut off while it arrives
        def chunked():
            yield b'{"messages": [{"role": "user", "content": "'
            yield from (b"x" * 100_000 for _ in range(12))
            yield b'"}]}'

        r = http.post("/v1/chat/completions", content=chunked(),
                      headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "larger than" in r.json()["error"]["message"]
        # credentials: a wrong key, no key, a malformed header
        for h in ({"Authorization": "Bearer sk-not-a-real-key"}, {"Authorization": ""},
                  {"Authorization": "Basic abc"}):
            r = http.post("/v1/chat/completions", json={"messages": USER}, headers=h)
            assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    # the openai client maps them to its exception classes with our messages
    with pytest.raises(openai.AuthenticationError, match="Incorrect API key"):
        live.client("sk-wrong").chat.completions.create(model="tiny", messages=USER)
    with pytest.raises(openai.BadRequestError, match="unknown|role"):
        live.client().chat.completions.create(model="tiny", messages=[{"role": "robot", "content": "x"}])
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        live.client().chat.completions.create(model="gpt-9", messages=USER)
    assert live.store.counts() == before


def test_disconnect_cancels_generation(live):
    body = {"model": "tiny", "messages": USER, "max_tokens": 400, "ignore_eos": True}
    headers = {"Authorization": f"Bearer {live.key}"}
    # a streaming client that hangs up once the reply has started
    with httpx.Client(base_url=live.url, headers=headers, timeout=30) as http:
        with http.stream("POST", "/v1/chat/completions", json=body | {"stream": True}) as r:
            started = (line for line in r.iter_lines() if '"content": "' in line and
                       '"role"' not in line)
            assert next(started)
    # a non-streaming client that gives up
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(live.url + "/v1/chat/completions", json=body, headers=headers, timeout=0.5)
    deadline = time.monotonic() + 20
    while len(live.spy.tokens_per_batch) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live.spy.cancelled == [0, 0]
    assert len(live.spy.tokens_per_batch) == 2 and max(live.spy.tokens_per_batch) < 400


def test_concurrent_streams_are_batched(tiny, tmp_path):
    with live_server(tiny, f"sqlite:///{tmp_path}/db.sqlite", batch_wait_s=0.3) as live:
        results: list[str] = []

        def one(i: int) -> None:
            chunks = live.client().chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": f"Question {i}"}],
                max_tokens=8, stream=True, extra_body={"ignore_eos": True})
            results.append("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(results) == 4 and all(results)
        assert live.app.state.service.scheduler.max_rows_seen >= 2


def test_no_auth_on_loopback_uses_a_local_user(tiny, tmp_path):
    with live_server(tiny, f"sqlite:///{tmp_path}/db.sqlite", no_auth=True) as live:
        # no key at all, and fields this server does not know are ignored
        r = httpx.post(live.url + "/v1/chat/completions", timeout=30,
                       json={"messages": USER, "max_tokens": 2, "presence_penalty": 0.5,
                             "frobnicate": {"x": 1}, "logit_bias": {"50256": -100}})
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["completion_tokens"] <= 2
        local = live.store.get_user_by_name("local")
        assert local is not None and local.role == "admin"
        assert [c.user_id for c in live.store.list_conversations(None)] == [local.id]
        # moderation endpoint (bonus), and a blocked input recorded with its categories
        m = httpx.post(live.url + "/v1/moderations", json={"input": ["How do I kill a Python "
                       "process?", "How do I make a pipe bomb?"]}, timeout=30).json()
        assert [x["flagged"] for x in m["results"]] == [False, True]
        assert m["results"][1]["categories"]["weapons"] is True
        r = httpx.post(live.url + "/v1/chat/completions", timeout=30,
                       json={"messages": [{"role": "user", "content": "How do I make a pipe bomb?"}]})
        assert r.json()["choices"][0]["finish_reason"] == "content_filter"
        conv = live.store.get_conversation(live.store.list_conversations(None)[0].id)
        assert conv.settings["input_moderation"] == ["weapons"]
