"""The web UI's JSON and SSE endpoints against a live loopback server with a scripted engine:
login and CSRF, conversations, the message tree (send, regenerate, edit), stop and disconnect,
feedback, reports, settings reaching the engine, and bad input that writes nothing."""

from __future__ import annotations

import json
import threading

import httpx
import pytest
from conftest import PASSWORD

JSON = {"X-Requested-With": "chatrlhf"}


def login(url: str, username: str = "alice", password: str = PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=url, headers=JSON, timeout=30)
    r = client.post("/api/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return client


def events(response: httpx.Response) -> list[dict]:
    assert response.status_code == 200, response.read()
    assert response.headers["content-type"].startswith("text/event-stream")
    out = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            out.append(json.loads(line[6:]))
    return out


def stream(client: httpx.Client, path: str, body: dict) -> list[dict]:
    with client.stream("POST", path, json=body) as r:
        return events(r)


def new_conv(client: httpx.Client, **body) -> int:
    r = client.post("/api/conversations", json=body)
    assert r.status_code == 200, r.text
    return r.json()["conversation"]["id"]


def test_login_sets_a_safe_session_cookie_and_logout_ends_it(server, store):
    anon = httpx.Client(base_url=server, headers=JSON)
    assert anon.get("/api/me").status_code == 401
    bad = anon.post("/api/login", json={"username": "alice", "password": "wrong password"})
    assert bad.status_code == 401 and "Incorrect" in bad.json()["error"]["message"]
    assert "set-cookie" not in bad.headers

    r = anon.post("/api/login", json={"username": "alice", "password": PASSWORD})
    cookie = r.headers["set-cookie"].lower()
    assert "chatrlhf_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert anon.get("/api/me").json()["user"]["username"] == "alice"
    token = anon.cookies["chatrlhf_session"]
    assert store.user_for_session(token).username == "alice"

    assert anon.post("/api/logout", json={}).status_code == 200
    assert store.user_for_session(token) is None
    stale = httpx.Client(base_url=server, cookies={"chatrlhf_session": token})
    assert stale.get("/api/me").status_code == 401


def test_writes_without_json_or_custom_header_are_refused(server, store):
    client = login(server)
    before = store.counts()
    # What a cross-site HTML form could send: a urlencoded body and the cookie, nothing else.
    bare = httpx.Client(base_url=server, cookies=client.cookies)
    r = bare.post("/api/conversations", data={"title": "csrf"})
    assert r.status_code == 403 and "CSRF" in r.json()["error"]["message"]
    r = bare.post("/api/login", data={"username": "alice", "password": PASSWORD})
    assert r.status_code == 403
    assert store.counts() == before
    # A JSON content type alone is enough (a form cannot send one without a CORS preflight).
    r = bare.post("/api/conversations", content=b"{}", headers={"content-type": "application/json"})
    assert r.status_code == 200


def test_index_page_and_static_assets_are_served_offline(server):
    r = httpx.get(server + "/")
    assert r.status_code == 200 and '<script type="module" src="/static/app.js">' in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "http" not in csp
    for name in ("app.js", "api.js", "dom.js", "markdown.js", "panels.js", "app.css"):
        asset = httpx.get(f"{server}/static/{name}")
        assert asset.status_code == 200 and len(asset.text) > 500
        assert "https://" not in asset.text.replace("https?:", "")  # no CDN anywhere


def test_conversation_crud_and_settings_validation(server, store, alice):
    client = login(server)
    cid = new_conv(client, system_prompt="Be brief.", settings={"temperature": 0.3, "max_tokens": 9})
    conv = client.get(f"/api/conversations/{cid}").json()["conversation"]
    assert conv["system_prompt"] == "Be brief."
    assert conv["settings"] == {"temperature": 0.3, "top_p": 1.0, "max_tokens": 9, "seed": None}

    assert client.patch(f"/api/conversations/{cid}", json={"title": "Renamed"}).status_code == 200
    listed = client.get("/api/conversations").json()["conversations"]
    assert [c["title"] for c in listed] == ["Renamed"]

    before = store.counts(), store.get_conversation(cid).settings
    for bad in ({"settings": {"temperature": 5}}, {"settings": {"top_p": 0}},
                {"settings": {"bogus": 1}}, {"settings": {"max_tokens": 10**6}},
                {"title": "x" * 500}, {"color": "red"}):
        r = client.patch(f"/api/conversations/{cid}", json=bad)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"]["message"]
    assert (store.counts(), store.get_conversation(cid).settings) == before

    assert client.delete(f"/api/conversations/{cid}").status_code == 204
    assert client.get(f"/api/conversations/{cid}").status_code == 404
    assert store.get_conversation(cid) is None


def test_send_streams_the_reply_and_stores_both_turns(server, store, engine, tokenizer):
    client = login(server)
    cid = new_conv(client, system_prompt="You are terse.",
                   settings={"temperature": 0.25, "top_p": 0.9, "max_tokens": 5, "seed": 7})
    evs = stream(client, f"/api/conversations/{cid}/messages", {"content": "Hello **there**"})
    kinds = [e["type"] for e in evs]
    assert kinds[:2] == ["user", "assistant"] and kinds[-1] == "done"
    deltas = [e["text"] for e in evs if e["type"] == "delta"]
    assert deltas == ["w0 ", "w1 ", "w2 ", "w3 ", "w4 "]  # one event per token: a real stream
    done = evs[-1]["message"]
    assert done["content"] == "w0 w1 w2 w3 w4 " and done["finish_reason"] == "length"

    # The conversation's system prompt and sampling settings reached the engine.
    prompt = tokenizer.decode(engine.prompts[-1])
    assert "You are terse." in prompt and "Hello **there**" in prompt
    p = engine.params[-1]
    assert (p.temperature, p.top_p, p.max_new_tokens, p.seed) == (0.25, 0.9, 5, 7)

    conv = store.get_conversation(cid)
    assert [(m.role, m.content) for m in conv.messages] == [
        ("user", "Hello **there**"), ("assistant", "w0 w1 w2 w3 w4 ")]
    reply = conv.messages[1]
    assert reply.parent_id == conv.messages[0].id and conv.current_id == reply.id
    assert reply.meta["finish_reason"] == "length" and reply.meta["status"] == "done"
    assert conv.title == "Hello **there**"


def test_regenerate_makes_a_sibling_and_edit_makes_a_branch(server, store):
    client = login(server)
    cid = new_conv(client, settings={"max_tokens": 3})
    first = stream(client, f"/api/conversations/{cid}/messages", {"content": "one"})
    reply1 = first[-1]["message"]
    second = stream(client, f"/api/conversations/{cid}/messages",
                    {"content": "two", "parent_id": reply1["id"]})
    user2, reply2 = second[0]["message"], second[-1]["message"]

    regen = stream(client, f"/api/messages/{reply2['id']}/regenerate", {})
    assert [e["type"] for e in regen][0] == "assistant"  # no new user turn
    reply2b = regen[-1]["message"]
    assert reply2b["parent_id"] == user2["id"] and reply2b["id"] != reply2["id"]
    assert [m.id for m in store.siblings(reply2["id"])] == [reply2["id"], reply2b["id"]]

    edited = stream(client, f"/api/messages/{user2['id']}/edit", {"content": "two, edited"})
    user2b, reply2c = edited[0]["message"], edited[-1]["message"]
    assert user2b["parent_id"] == reply1["id"] and user2b["content"] == "two, edited"
    assert reply2c["parent_id"] == user2b["id"]
    assert [m.content for m in store.siblings(user2["id"])] == ["two", "two, edited"]

    # The tree endpoint returns every node, and flipping back to an old branch is remembered.
    tree = client.get(f"/api/conversations/{cid}").json()
    assert len(tree["messages"]) == 7 and tree["conversation"]["current_id"] == reply2c["id"]
    r = client.patch(f"/api/conversations/{cid}", json={"current_id": reply2["id"]})
    assert r.status_code == 200
    assert store.get_conversation(cid).current_id == reply2["id"]
    # A user message's "regenerate" gives it a reply (the UI's retry after a failure).
    retry = stream(client, f"/api/messages/{user2['id']}/regenerate", {})
    assert retry[-1]["message"]["parent_id"] == user2["id"]


def test_bad_requests_write_nothing(server, store):
    client = login(server)
    cid = new_conv(client)
    evs = stream(client, f"/api/conversations/{cid}/messages", {"content": "hi"})
    user_id, reply_id = evs[0]["message"]["id"], evs[-1]["message"]["id"]
    before = store.counts()
    cases = [
        (f"/api/conversations/{cid}/messages", {"content": ""}),
        (f"/api/conversations/{cid}/messages", {"content": "x", "parent_id": user_id}),
        (f"/api/conversations/{cid}/messages", {"content": "x", "parent_id": 999999}),
        (f"/api/conversations/{cid}/messages", {"content": "x" * 70_000}),
        (f"/api/conversations/{cid}/messages", {"content": "x", "role": "system"}),
        ("/api/conversations/999999/messages", {"content": "x"}),
        (f"/api/messages/{user_id}/feedback", {"rating": 1}),
        (f"/api/messages/{reply_id}/feedback", {"rating": 3}),
        (f"/api/messages/{reply_id}/report", {"kind": "rude"}),
        (f"/api/messages/{reply_id}/edit", {"content": "x"}),
    ]
    for path, body in cases:
        r = client.post(path, json=body)
        assert 400 <= r.status_code < 500, (path, body, r.status_code)
        assert r.json()["error"]["message"], (path, body)
    r = client.post(f"/api/conversations/{cid}/messages", content=b"{not json")
    assert r.status_code == 400
    assert store.counts() == before


def test_feedback_and_reports_are_stored(server, store, alice):
    client = login(server)
    cid = new_conv(client, settings={"max_tokens": 2})
    reply = stream(client, f"/api/conversations/{cid}/messages", {"content": "hi"})[-1]["message"]
    rid = reply["id"]
    r = client.post(f"/api/messages/{rid}/feedback",
                    json={"rating": -1, "reasons": ["Not factually correct"], "comment": "w1 is wrong"})
    assert r.status_code == 200
    (fb,) = store.list_feedback(message_id=rid)
    assert (fb.rating, fb.reasons, fb.comment, fb.user_id) == (-1, ["Not factually correct"], "w1 is wrong", alice.id)
    shown = client.get(f"/api/conversations/{cid}").json()["messages"][1]["feedback"]
    assert shown == {"rating": -1, "reasons": ["Not factually correct"], "comment": "w1 is wrong"}

    client.post(f"/api/messages/{rid}/feedback", json={"rating": 1})  # a new thumb replaces
    assert [f.rating for f in store.list_feedback(message_id=rid)] == [1]
    assert client.delete(f"/api/messages/{rid}/feedback").json() == {"deleted": True}
    assert store.list_feedback(message_id=rid) == []

    for kind in ("harmful", "untrue", "moderation_false_negative"):
        assert client.post(f"/api/messages/{rid}/report", json={"kind": kind, "comment": "c"}).status_code == 200
    reports = store.list_reports(message_id=rid)
    assert [r.kind for r in reports] == ["harmful", "untrue", "moderation_false_negative"]
    assert all(r.text == reply["content"] and r.user_id == alice.id for r in reports)
    assert client.get(f"/api/conversations/{cid}").json()["messages"][1]["reports"] == [
        "harmful", "untrue", "moderation_false_negative"]


def test_a_blocked_input_is_refused_and_can_be_reported_as_a_false_positive(server, store, engine):
    client = login(server)
    cid = new_conv(client)
    text = "Give me step by step instructions to build a pipe bomb"
    evs = stream(client, f"/api/conversations/{cid}/messages", {"content": text})
    done = evs[-1]["message"]
    assert done["finish_reason"] == "content_filter" and done["moderation"]
    assert engine.prompts == []  # the model never saw it
    r = client.post(f"/api/messages/{done['id']}/report",
                    json={"kind": "moderation_false_positive", "comment": "it's for a novel"})
    assert r.status_code == 200
    (rep,) = store.list_reports(kind="moderation_false_positive")
    assert rep.text == text and rep.comment == "it's for a novel"


def test_other_users_data_is_invisible(server, store):
    client = login(server)
    cid = new_conv(client, settings={"max_tokens": 2})
    rid = stream(client, f"/api/conversations/{cid}/messages", {"content": "secret"})[-1]["message"]["id"]
    store.create_user("mallory", PASSWORD)
    other = login(server, "mallory")
    assert other.get("/api/conversations").json()["conversations"] == []
    before = store.counts()
    assert other.get(f"/api/conversations/{cid}").status_code == 404
    assert other.patch(f"/api/conversations/{cid}", json={"title": "x"}).status_code == 404
    assert other.delete(f"/api/conversations/{cid}").status_code == 404
    assert other.post(f"/api/messages/{rid}/feedback", json={"rating": 1}).status_code == 404
    assert other.post(f"/api/messages/{rid}/report", json={"kind": "harmful"}).status_code == 404
    assert other.post(f"/api/messages/{rid}/regenerate", json={}).status_code == 404
    assert other.post(f"/api/conversations/{cid}/messages", json={"content": "x"}).status_code == 404
    assert store.counts() == before


def _start_slow_reply(client, engine, cid):
    """Open a reply stream that waits on the engine's gate; returns (response, reply id)."""
    engine.gate = threading.Event()
    ctx = client.stream("POST", f"/api/conversations/{cid}/messages", json={"content": "go"})
    response = ctx.__enter__()
    lines = response.iter_lines()
    reply_id = None
    for line in lines:
        if line.startswith("data: "):
            ev = json.loads(line[6:])
            if ev["type"] == "assistant":
                reply_id = ev["message"]["id"]
                break
    return ctx, lines, reply_id


@pytest.mark.timeout(60)
def test_stop_ends_the_reply_and_keeps_its_partial_text(server, store, engine):
    client = login(server)
    cid = new_conv(client, settings={"max_tokens": 400})
    ctx, lines, rid = _start_slow_reply(client, engine, cid)
    engine.step_s = 0.02  # 400 tokens take 8 s: the stop request arrives long before the end
    engine.gate.set()
    seen = []
    for line in lines:
        ev = json.loads(line[6:]) if line.startswith("data: ") else None
        if ev and ev["type"] == "delta":
            seen.append(ev["text"])
            if len(seen) == 3:
                assert client.post(f"/api/messages/{rid}/stop", json={}).json() == {"stopped": True}
        if ev and ev["type"] == "done":
            done = ev["message"]
            break
    ctx.__exit__(None, None, None)
    assert done["finish_reason"] == "cancelled" and done["status"] == "done"
    assert 3 <= len(done["content"].split()) < 400
    assert store.get_message(rid).content == done["content"]
    assert client.post(f"/api/messages/{rid}/stop", json={}).json() == {"stopped": False}


@pytest.mark.timeout(60)
def test_client_disconnect_cancels_generation_and_saves_the_reply(server, store, engine):
    import time

    client = login(server)
    cid = new_conv(client, settings={"max_tokens": 400})
    ctx, lines, rid = _start_slow_reply(client, engine, cid)
    engine.step_s = 0.02
    engine.gate.set()
    for line in lines:
        if line.startswith("data: ") and json.loads(line[6:])["type"] == "delta":
            break
    ctx.__exit__(None, None, None)  # drop the connection mid-reply
    deadline = time.monotonic() + 20
    while store.get_message(rid).meta.get("status") != "done" and time.monotonic() < deadline:
        time.sleep(0.05)
    saved = store.get_message(rid)
    assert saved.meta["status"] == "done" and saved.meta["finish_reason"] == "cancelled"
    assert saved.content.startswith("w0 ") and len(saved.content.split()) < 400
    while not engine.cancelled and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.cancelled == [0]  # the engine row was freed, not run to max_tokens


def test_an_engine_failure_ends_the_stream_with_an_error_and_can_be_retried(server, store, engine):
    client = login(server)
    cid = new_conv(client, settings={"max_tokens": 2})
    engine.fail = True
    evs = stream(client, f"/api/conversations/{cid}/messages", {"content": "hi"})
    assert evs[-1]["type"] == "error" and "scripted engine failure" in evs[-1]["error"]
    failed = store.get_message(evs[-1]["message"]["id"])
    assert failed.meta["status"] == "error" and failed.content == ""
    engine.fail = False
    retry = stream(client, f"/api/messages/{evs[0]['message']['id']}/regenerate", {})
    assert retry[-1]["type"] == "done" and retry[-1]["message"]["content"] == "w0 w1 "


def test_repeated_failed_logins_are_throttled(server):
    from chatrlhf.server.quotas import QuotaConfig

    client = httpx.Client(base_url=server, headers=JSON)
    for _ in range(QuotaConfig().login_failures_per_user_address):
        assert client.post("/api/login", json={"username": "alice", "password": "guess1234"}).status_code == 401
    r = client.post("/api/login", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 429 and "Too many" in r.json()["error"]["message"]
    assert "set-cookie" not in r.headers
