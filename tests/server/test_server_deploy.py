"""Hot swap, rollback and routing by version on a live server (tiny models, SQLite store).

Two versions with different weights are registered; the server follows the deployment log."""

from __future__ import annotations

import contextlib
import threading
import time

import httpx
import pytest

from uvicorn_live import run_uvicorn

BODY = {"messages": [{"role": "user", "content": "Tell me a story."}], "ignore_eos": True}


@contextlib.contextmanager
def served(tmp_path, dirs, *, deploy_first: str | None = "tiny-a"):
    from chatrlhf.deploy import registry
    from chatrlhf.moderation import moderate
    from chatrlhf.server.app import create_app
    from chatrlhf.server.launch import build_service
    from chatrlhf.store import Store

    store = Store(f"sqlite:///{tmp_path}/db.sqlite")
    store.upgrade()
    for name, d in dirs.items():
        registry.register(store, name, d, kind="ppo")
    if deploy_first:
        registry.promote(store, deploy_first, actor="test")
    service = build_service("tiny", "chatrlhf", store=store, max_batch_size=8, batch_wait_ms=5,
                            moderation="off", poll_s=0.2)
    app = create_app(service, store=store, moderation=moderate)
    admin = store.create_api_key("admin", role="admin")
    user = store.create_api_key("user")
    try:
        with run_uvicorn(app) as url:
            yield url, store, service, admin, user
    finally:
        store.dispose()


def _chat(url, key, **kw):
    r = httpx.post(url + "/v1/chat/completions", json=BODY | {"max_tokens": 4} | kw,
                   headers={"Authorization": f"Bearer {key}"}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_serves_the_deployed_version_and_routes_by_name(tiny, two_versions, tmp_path):
    with served(tmp_path, two_versions) as (url, store, service, admin, user):
        assert _chat(url, user)["system_fingerprint"] == "tiny-a"
        got = _chat(url, user, model="tiny-b")  # loaded on first use
        assert got["system_fingerprint"] == "tiny-b" and got["model"] == "tiny-b"
        a = _chat(url, user, model="tiny-a", temperature=0, max_tokens=8)
        b = _chat(url, user, model="tiny-b", temperature=0, max_tokens=8)
        assert a["choices"][0]["message"]["content"] != b["choices"][0]["message"]["content"]
        r = httpx.post(url + "/v1/chat/completions", json=BODY | {"model": "tiny-zzz"},
                       headers={"Authorization": f"Bearer {user}"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
        models = httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {user}"}).json()
        assert {"chatrlhf", "tiny-a", "tiny-b"} <= {m["id"] for m in models["data"]}
        # each message is recorded under the version that wrote it
        convs = store.list_conversations(store.verify_api_key(user).id)
        versions = sorted(m.model_version for c in convs
                          for m in store.get_conversation(c.id).messages if m.role == "assistant")
        assert versions == ["tiny-a", "tiny-a", "tiny-b", "tiny-b"]


def test_admin_only_and_bad_names(tiny, two_versions, tmp_path):
    with served(tmp_path, two_versions) as (url, store, service, admin, user):
        h = {"Authorization": f"Bearer {user}"}
        assert httpx.post(url + "/api/admin/models/tiny-b/promote", json={}, headers=h).status_code == 403
        assert httpx.post(url + "/api/admin/models/rollback", json={}, headers=h).status_code == 403
        h = {"Authorization": f"Bearer {admin}"}
        r = httpx.post(url + "/api/admin/models/nope/promote", json={}, headers=h)
        assert r.status_code == 404
        r = httpx.post(url + "/api/admin/models/split", json={"traffic": {"tiny-a": 1}}, headers=h)
        assert r.status_code == 400 and "at least two" in r.json()["error"]["message"]
        # A promote runs the gates: these versions have no evaluation, so they fail closed (409),
        # the candidate is marked rejected, and skipping the gates needs a report.
        r = httpx.post(url + "/api/admin/models/tiny-b/promote", json={}, headers=h, timeout=60)
        assert r.status_code == 409 and r.json()["error"]["code"] == "gates_refused"
        assert "win_rate" in r.json()["error"]["message"]
        assert store.get_model_version("tiny-b").status == "rejected"
        r = httpx.post(url + "/api/admin/models/tiny-b/promote", json={"skip_gates": True}, headers=h)
        assert r.status_code == 400 and r.json()["error"]["param"] == "report"
        assert service.model_version == "tiny-a"  # nothing changed


def test_hot_swap_under_streaming_load_and_rollback(tiny, two_versions, tmp_path):
    with served(tmp_path, two_versions) as (url, store, service, admin, user):
        results: list[tuple[str, int, str]] = []
        errors: list[str] = []

        def stream(i: int) -> None:
            try:
                from openai import OpenAI

                client = OpenAI(base_url=url + "/v1", api_key=user, max_retries=0)
                chunks = list(client.chat.completions.create(
                    model="chatrlhf", messages=BODY["messages"], max_tokens=300, stream=True,
                    stream_options={"include_usage": True}, extra_body={"ignore_eos": True}))
                finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
                results.append((chunks[0].system_fingerprint, chunks[-1].usage.completion_tokens, finish[0]))
            except Exception as e:  # every failure is counted, none may happen
                errors.append(repr(e))

        before = [threading.Thread(target=stream, args=(i,)) for i in range(4)]
        for t in before:
            t.start()
        deadline = time.monotonic() + 30
        while service.router.default_backend.inflight < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert service.router.default_backend.inflight == 4  # the swap happens mid-stream
        h = {"Authorization": f"Bearer {admin}"}
        r = httpx.post(url + "/api/admin/models/tiny-b/promote", json={"report": "test", "skip_gates": True},
                       headers=h, timeout=60)
        assert service.router.backends["tiny-a"].inflight > 0
        assert r.status_code == 200, r.text
        assert r.json()["serving"]["default"] == "tiny-b"
        after = [threading.Thread(target=stream, args=(i,)) for i in range(3)]
        for t in after:
            t.start()
        for t in before + after:
            t.join(60)
        assert errors == []
        # in flight before the swap: finished on tiny-a; started after: tiny-b; all complete
        assert sorted(r[0] for r in results) == ["tiny-a"] * 4 + ["tiny-b"] * 3
        assert {r[2] for r in results} == {"length"} and {r[1] for r in results} == {300}
        # rollback: back to tiny-a, which stayed loaded, so it is a switch, not a load
        t0 = time.perf_counter()
        r = httpx.post(url + "/api/admin/models/rollback", json={}, headers=h, timeout=60)
        assert r.status_code == 200 and r.json()["serving"]["default"] == "tiny-a"
        assert _chat(url, user)["system_fingerprint"] == "tiny-a"
        assert time.perf_counter() - t0 < 10
        log = store.list_deployments()
        assert [d.action for d in log] == ["rollback", "promote", "promote"]
        assert [d.actor for d in log][:2] == ["key:admin", "key:admin"]


def test_a_promote_from_outside_is_followed_by_polling(tiny, two_versions, tmp_path):
    from chatrlhf.deploy import registry

    with served(tmp_path, two_versions) as (url, store, service, admin, user):
        registry.promote(store, "tiny-b", actor="cli")  # as `chatrlhf models promote` does
        deadline = time.monotonic() + 30
        while service.model_version != "tiny-b" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _chat(url, user)["system_fingerprint"] == "tiny-b"


def test_a_split_serves_both_versions_sticky_per_user(tiny, two_versions, tmp_path):
    from chatrlhf.deploy import registry

    with served(tmp_path, two_versions) as (url, store, service, admin, user):
        registry.split(store, {"tiny-a": 1, "tiny-b": 1})
        deadline = time.monotonic() + 30
        while not service.router.traffic and time.monotonic() < deadline:
            time.sleep(0.05)
        keys = [store.create_api_key(f"u{i}") for i in range(12)]
        seen = {k: {_chat(url, k, max_tokens=1)["system_fingerprint"] for _ in range(2)} for k in keys}
        assert all(len(v) == 1 for v in seen.values())  # each user stays on one version
        assert {v.pop() for v in seen.values()} == {"tiny-a", "tiny-b"}  # and both serve
