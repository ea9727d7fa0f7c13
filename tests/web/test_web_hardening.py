"""The live app under hostile or careless requests: out-of-range numbers and ids get a 4xx that
names them (never a 500), and a bad request never fails a good one that arrives with it."""

from __future__ import annotations

import concurrent.futures

import httpx
import pytest
from conftest import PASSWORD

JSON = {"X-Requested-With": "chatrlhf"}
HUGE = 2**70


def login(url: str, username: str = "alice") -> httpx.Client:
    client = httpx.Client(base_url=url, headers=JSON, timeout=30)
    r = client.post("/api/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return client


def chat_body(**kw) -> dict:
    return {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 3, **kw}


@pytest.fixture
def api(server, store, alice):
    key = store.create_api_key("hardening", user_id=alice.id)
    with httpx.Client(base_url=server, timeout=30, headers={"Authorization": f"Bearer {key}"}) as c:
        yield c


@pytest.mark.parametrize("field, value", [
    ("seed", HUGE), ("seed", -HUGE), ("max_tokens", HUGE), ("max_completion_tokens", HUGE),
    ("n", HUGE), ("temperature", 1e308), ("top_p", 7), ("n", 0),
])
def test_out_of_range_numbers_get_a_400_naming_the_field(api, engine, field, value):
    r = api.post("/v1/chat/completions", json=chat_body(**{field: value}))
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == field and err["type"] == "invalid_request_error"
    assert engine.prompts == []  # refused before batching


def test_nan_in_the_body_is_refused(api):
    body = '{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}'
    r = api.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "temperature"


def test_a_bad_seed_does_not_fail_the_good_requests_beside_it(api, engine):
    engine.step_s = 0.02  # so the requests overlap and would share a batch
    bodies = [chat_body(seed=HUGE), chat_body(seed=1), chat_body(), chat_body(seed=2**63 - 1, n=2)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        rs = list(pool.map(lambda b: api.post("/v1/chat/completions", json=b), bodies))
    assert [r.status_code for r in rs] == [400, 200, 200, 400]
    assert rs[0].json()["error"]["param"] == "seed" and rs[3].json()["error"]["param"] == "seed"
    for r in rs[1:3]:
        assert r.json()["choices"][0]["message"]["content"] == "w0 w1 w2 "
    assert len(engine.prompts) == 2  # only the good rows reached the engine


ID_ROUTES = [
    ("GET", "/api/conversations/{id}", None),
    ("PATCH", "/api/conversations/{id}", {"title": "x"}),
    ("DELETE", "/api/conversations/{id}", None),
    ("POST", "/api/conversations/{id}/messages", {"content": "hi"}),
    ("POST", "/api/messages/{id}/feedback", {"rating": 1}),
    ("DELETE", "/api/messages/{id}/feedback", None),
    ("POST", "/api/messages/{id}/report", {"kind": "harmful"}),
    ("POST", "/api/messages/{id}/regenerate", None),
    ("POST", "/api/messages/{id}/edit", {"content": "hi"}),
    ("POST", "/api/messages/{id}/stop", None),
    ("GET", "/api/workspace/demos/{id}", None),
    ("PUT", "/api/workspace/demos/{id}", {"messages": []}),
    ("POST", "/api/workspace/demos/{id}/submit", {"messages": []}),
    ("DELETE", "/api/workspace/demos/{id}", None),
    ("GET", "/api/workspace/tasks/{id}", None),
    ("POST", "/api/workspace/tasks/{id}/ranking", {"ranks": [0, 1]}),
    ("POST", "/api/workspace/tasks/{id}/skip", None),
    ("POST", "/api/workspace/admin/users/{id}/role", {"role": "user"}),
    ("GET", "/api/workspace/admin/tasks/{id}", None),
]


@pytest.mark.parametrize("method, path, body", ID_ROUTES, ids=[f"{m} {p}" for m, p, _ in ID_ROUTES])
def test_ids_past_64_bits_are_a_400_not_a_500(server, store, method, path, body):
    store.create_user("root", PASSWORD, role="admin")
    client = login(server, "root")
    for ident in (HUGE, -HUGE, 2**63):
        r = client.request(method, path.format(id=ident), json=body)
        assert r.status_code == 400, (ident, r.status_code, r.text)
        param = r.json()["error"]["param"]
        assert param.startswith("path.") and param.endswith("_id"), param


@pytest.mark.parametrize("field", ["parent_id", "current_id"])
def test_body_ids_past_64_bits_are_a_400(server, field):
    client = login(server)
    cid = client.post("/api/conversations", json={}).json()["conversation"]["id"]
    if field == "parent_id":
        r = client.post(f"/api/conversations/{cid}/messages", json={"content": "hi", field: HUGE})
    else:
        r = client.patch(f"/api/conversations/{cid}", json={field: HUGE})
    assert r.status_code == 400 and r.json()["error"]["param"] == field
