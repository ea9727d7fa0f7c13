"""A finished reply's meta holds its latency (ttft_s, tokens_per_s), on the web chat and on /v1,
for deploy.monitor to read."""

import time

import httpx

PASSWORD = "correct horse battery"  # the tests/web fixtures' (not imported: see test_admin_models_chromium)


def replies(store):
    return [m for c in store.list_conversations(None) for m in store.get_conversation(c.id).messages
            if m.role == "assistant"]


def test_web_and_api_replies_record_latency(server, store, alice):
    with httpx.Client(base_url=server, headers={"X-Requested-With": "chatrlhf"}, timeout=30) as c:
        assert c.post("/api/login", json={"username": "alice", "password": PASSWORD}).status_code == 200
        cid = c.post("/api/conversations", json={"settings": {"max_tokens": 5}}).json()["conversation"]["id"]
        with c.stream("POST", f"/api/conversations/{cid}/messages", json={"content": "Hello"}) as r:
            assert r.status_code == 200 and '"done"' in r.read().decode()
    key = store.create_api_key("k")
    r = httpx.post(server + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                   json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 10
    while len(replies(store)) < 2 and time.monotonic() < deadline:  # /v1 records after answering
        time.sleep(0.05)
    got = replies(store)
    assert len(got) == 2
    for m in got:
        assert 0 <= m.meta["ttft_s"] < 30 and m.meta["tokens_per_s"] > 0, m.meta
