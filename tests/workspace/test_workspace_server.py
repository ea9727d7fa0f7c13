"""The workspace's HTTP layer: role checks on every route, CSRF on cookie writes, and the API
flows (drafts, tasks, rankings, admin) against a stub service (no model needed)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from conftest import uid
from fastapi.testclient import TestClient

from chatrlhf import workspace as ws
from chatrlhf.server.app import create_app
from chatrlhf.server.auth import SESSION_COOKIE
from chatrlhf.server.service import ServiceLimits
from chatrlhf.server.workspace import router


class _StubScheduler:
    def start(self) -> None: ...
    def stop(self) -> None: ...


class _StubRouter:
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def _stub_service():
    return SimpleNamespace(scheduler=_StubScheduler(), router=_StubRouter(), limits=ServiceLimits(),
                           model_name="stub", model_version="stub", moderation=None)


@pytest.fixture
def client(store):
    app = create_app(_stub_service(), store=store)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture(scope="module")
def shared():
    """One app for the many read-only role checks (a store per test would dominate the time)."""
    from chatrlhf.store import Store

    st = Store("sqlite://")
    st.upgrade()
    headers = {}
    for name, role in [("ann", "trainer"), ("joe", "user")]:
        user = st.create_user(name, role=role)
        headers[name] = {"Authorization": "Bearer " + st.create_api_key(f"k-{name}", user_id=user.id)}
    with TestClient(create_app(_stub_service(), store=st), base_url="http://127.0.0.1") as c:
        yield c, headers
    st.dispose()


def _key(store, name):
    """Bearer headers for ``name``: a fresh key per call (keys are cheap; names must be unique)."""
    n = len(store.list_api_keys())
    return {"Authorization": "Bearer " + store.create_api_key(f"k-{name}-{n}", user_id=uid(store, name))}


def _routes():
    for r in router.routes:
        path = re.sub(r"\{[^}]+\}", "1", r.path)
        for m in sorted(r.methods - {"HEAD"}):
            yield m, path, r.path


ROUTES = list(_routes())
ADMIN_PAGES = {"/workspace/admin", "/workspace/monitor"}  # every other page needs trainer


def test_router_covers_pages_and_apis():
    paths = {p for _, _, p in ROUTES}
    assert {"/workspace/demo", "/workspace/rank", "/workspace/admin", "/workspace/guidelines",
            "/api/workspace/suggest", "/api/workspace/tasks/next", "/api/workspace/admin/tasks"} <= paths
    assert len(ROUTES) >= 25


@pytest.mark.parametrize("method,path,template", ROUTES)
def test_a_user_without_the_trainer_role_gets_403(shared, method, path, template):
    client, headers = shared
    r = client.request(method, path, headers=headers["joe"], json={})
    assert r.status_code == 403, (method, path, r.status_code, r.text)
    if template.startswith("/api/"):
        assert r.json()["error"]["code"] == "insufficient_role"
    else:  # a page: a short HTML explanation
        need = "admin" if template in ADMIN_PAGES else "trainer"
        assert f"needs the <b>{need}</b> role" in r.text and "<b>joe</b>" in r.text


@pytest.mark.parametrize("method,path,template", [r for r in ROUTES if "admin" in r[2] or r[2] in ADMIN_PAGES])
def test_a_trainer_gets_403_on_admin_routes(shared, method, path, template):
    client, headers = shared
    r = client.request(method, path, headers=headers["ann"], json={})
    assert r.status_code == 403, (method, path, r.status_code)
    assert "admin" in r.text


def test_anonymous_gets_401_on_api_and_a_login_redirect_on_pages(shared):
    client, _ = shared
    assert client.get("/api/workspace/tasks/next").status_code == 401
    r = client.get("/workspace/rank", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/?next=/workspace/rank"


def test_cookie_writes_need_the_csrf_header(client, store):
    client.cookies.set(SESSION_COOKIE, store.create_session(uid(store, "ann")))
    body = {"messages": [{"role": "user", "content": "hi"}]}
    assert client.post("/api/workspace/demos", json=body).status_code == 403
    r = client.post("/api/workspace/demos", json=body, headers={"X-Requested-With": "chatrlhf"})
    assert r.status_code == 200 and r.json()["status"] == "draft"
    assert client.get("/workspace/demo").status_code == 200  # pages are GETs


def test_trainer_flow_over_http(client, store):
    ann = _key(store, "ann")
    d = client.post("/api/workspace/demos", headers=ann, json={"messages": [{"role": "user", "content": "Hi"}]}).json()
    r = client.post(f"/api/workspace/demos/{d['id']}/submit", headers=ann,
                    json={"messages": [{"role": "user", "content": "Hi"}]})
    assert r.status_code == 400 and "assistant" in r.json()["error"]["message"]
    final = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    assert client.post(f"/api/workspace/demos/{d['id']}/submit", headers=ann, json={"messages": final}).status_code == 200
    assert client.put(f"/api/workspace/demos/{d['id']}", headers=_key(store, "bob"),
                      json={"messages": []}).status_code == 404  # not bob's draft
    assert client.get("/api/workspace/tasks/next", headers=ann).json() == {"task": None}
    tid = ws.create_task(store, [{"role": "user", "content": "Q"}], [(f"a{i}", "secret-model") for i in range(4)])
    task = client.get("/api/workspace/tasks/next", headers=ann).json()["task"]
    assert task["id"] == tid and "secret-model" not in str(task)
    assert client.get(f"/api/workspace/tasks/{tid}", headers=ann).json()["task"] == task
    assert client.get(f"/api/workspace/tasks/{tid}", headers=_key(store, "bob")).status_code == 404  # not bob's
    bad = client.post(f"/api/workspace/tasks/{tid}/ranking", headers=ann, json={"ranks": [0, 1]})
    assert bad.status_code == 400 and "ranks" in bad.json()["error"]["message"]
    ok = client.post(f"/api/workspace/tasks/{tid}/ranking", headers=ann,
                     json={"ranks": [0, 0, 1, 2], "flags": {"3": ["harmful"]}, "all_unacceptable": False})
    assert ok.status_code == 200
    root = _key(store, "root")
    detail = client.get(f"/api/workspace/admin/tasks/{tid}", headers=root).json()
    assert detail["aggregate"] == [0, 0, 1, 2] and detail["completions"][0]["model"] == "secret-model"
    bt = client.get(f"/api/workspace/admin/tasks/{tid}?method=bradley_terry", headers=root)
    assert bt.json()["aggregate"] == [0, 0, 1, 2]
    assert client.get(f"/api/workspace/admin/tasks/{tid}?method=borda", headers=root).status_code == 400
    (rk,) = ws.export_rankings(store)
    assert rk.ranks == [0, 0, 1, 2] and rk.flags == {3: ["harmful"]} and rk.annotator == "ann"


def test_admin_uploads_prompts_and_manages_roles(client, store):
    root = _key(store, "root")
    text = '"How do magnets work?"\n{broken\n"Write a haiku."\n'
    r = client.post("/api/workspace/admin/prompts", headers=root, json={"name": "w1", "text": text})
    assert r.status_code == 200 and r.json()["prompts"] == 2
    assert r.json()["errors"] == ["upload:2: invalid JSON: Expecting property name enclosed in double quotes at column 2"]
    joe = uid(store, "joe")
    assert client.post(f"/api/workspace/admin/users/{joe}/role", headers=root, json={"role": "trainer"}).status_code == 200
    assert client.get("/api/workspace/tasks/next", headers=_key(store, "joe")).status_code == 200
    r = client.post(f"/api/workspace/admin/users/{uid(store, 'root')}/role", headers=root, json={"role": "user"})
    assert r.status_code == 400


def test_an_upload_with_a_nested_or_surrogate_line_reports_it_and_keeps_the_rest(client, store):
    root = _key(store, "root")
    text = '"First prompt"\n' + "[" * 50_000 + "]" * 50_000 + '\n"\\udc00"\n"Second prompt"\n'
    r = client.post("/api/workspace/admin/prompts", headers=root, json={"name": "deep", "text": text})
    assert r.status_code == 200, r.text
    assert r.json()["prompts"] == 2
    errors = r.json()["errors"]
    assert errors[0].startswith("upload:2: ") and "nested too deeply" in errors[0]
    assert errors[1].startswith("upload:3: ") and "surrogate" in errors[1]
