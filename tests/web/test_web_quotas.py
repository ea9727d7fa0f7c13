"""Quotas and the login throttle: past a user's quota the answer is 429 with Retry-After and other
users are unaffected; failed logins are counted per (username, address) and per address, so
wrong guesses from one place cannot lock a user out everywhere."""

from __future__ import annotations

import threading

import httpx
import pytest
from conftest import PASSWORD, live_server, make_app

from chatrlhf.server.quotas import QuotaConfig, Quotas

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


@pytest.fixture
def keys(store, alice):
    bob = store.create_user("bob", PASSWORD)
    return ({"Authorization": f"Bearer {store.create_api_key('a', user_id=alice.id)}"},
            {"Authorization": f"Bearer {store.create_api_key('b', user_id=bob.id)}"})


def _serve(engine, tokenizer, store, **quota):
    app = make_app(engine, tokenizer, store)
    app.state.quotas = Quotas(QuotaConfig(**quota))
    return live_server(app)


def test_requests_per_minute_gives_429_with_retry_after_and_spares_others(engine, tokenizer, store, keys):
    alice, bob = keys
    with _serve(engine, tokenizer, store, requests_per_minute=3) as url:
        c = httpx.Client(base_url=url, timeout=30)
        assert [c.post("/v1/chat/completions", json=CHAT, headers=alice).status_code
                for _ in range(3)] == [200] * 3
        r = c.post("/v1/chat/completions", json=CHAT, headers=alice)
        assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert c.post("/v1/chat/completions", json=CHAT, headers=bob).status_code == 200


def test_concurrent_generations_per_user_are_capped(engine, tokenizer, store, keys):
    alice, bob = keys
    engine.gate = threading.Event()  # holds the first reply mid-stream
    with _serve(engine, tokenizer, store, concurrent=1) as url:
        c = httpx.Client(base_url=url, timeout=30)
        with c.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=alice) as held:
            assert held.status_code == 200
            r = c.post("/v1/chat/completions", json=CHAT, headers=alice)
            assert r.status_code == 429 and r.headers["Retry-After"] == "1"
            engine.gate.set()  # bob's request must not wait on alice's quota
            assert c.post("/v1/chat/completions", json=CHAT, headers=bob).status_code == 200
            held.read()
        # the finished stream gave its slot back
        assert c.post("/v1/chat/completions", json=CHAT, headers=alice).status_code == 200


def test_failed_logins_throttle_that_name_from_that_address_only(server, store):
    store.create_user("bob", PASSWORD)
    c = httpx.Client(base_url=server, headers={"X-Requested-With": "t"}, timeout=30)
    for _ in range(QuotaConfig().login_failures_per_user_address):
        assert c.post("/api/login", json={"username": "alice", "password": "wrong-guess"}).status_code == 401
    r = c.post("/api/login", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    # another account from the same address is not locked by alice's failures
    assert c.post("/api/login", json={"username": "bob", "password": PASSWORD}).status_code == 200


def test_login_throttle_by_address_and_pair():
    q = Quotas(QuotaConfig(login_failures_per_user_address=2, login_failures_per_address=5))
    for _ in range(2):
        q.login_failed("alice", "10.0.0.1")
    assert q.login_retry_after("alice", "10.0.0.1") is not None
    assert q.login_retry_after("alice", "10.0.0.2") is None  # the real alice, elsewhere, gets in
    assert q.login_retry_after("bob", "10.0.0.1") is None
    for name in ("bob", "carol", "dave"):  # spraying: few tries per name, many names
        q.login_failed(name, "10.0.0.1")
    assert q.login_retry_after("erin", "10.0.0.1") is not None  # the address is now throttled
    assert q.login_retry_after("erin", "10.0.0.3") is None
    q.login_succeeded("alice", "10.0.0.2")


def test_tokens_per_day_are_counted_after_each_reply(engine, tokenizer, store, keys):
    alice, bob = keys
    with _serve(engine, tokenizer, store, tokens_per_day=5) as url:
        c = httpx.Client(base_url=url, timeout=30)
        used = []
        for _ in range(3):  # 2 completion tokens each: 2, 4, then 6 (the reply that crosses it)
            r = c.post("/v1/chat/completions", json=CHAT, headers=alice)
            assert r.status_code == 200
            used.append(r.json()["usage"]["completion_tokens"])
        assert used == [2, 2, 2]
        r = c.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=alice)
        assert r.status_code == 429 and "Token quota" in r.json()["error"]["message"]
        assert int(r.headers["Retry-After"]) > 0
        assert c.post("/v1/chat/completions", json=CHAT, headers=bob).status_code == 200
