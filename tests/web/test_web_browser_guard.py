"""Browser safety against a live server, with and without ``--no-auth``: a foreign Host header
(DNS rebinding) and cross-origin writes are refused on every route, ``/v1`` included, and the
CSRF check holds for cookie-less no-auth writes too."""

from __future__ import annotations

import httpx
import pytest
from conftest import PASSWORD, live_server, make_app

from chatrlhf.server.browser import HostAllowList, host_allow_list

JSON = {"X-Requested-With": "chatrlhf"}
EVIL = "http://evil.example"


@pytest.fixture(params=["auth", "no-auth"])
def site(request, engine, tokenizer, store, alice):
    """(base url, a client acting as alice or as the no-auth local user, mode)."""
    app = make_app(engine, tokenizer, store)
    app.state.no_auth = request.param == "no-auth"
    with live_server(app) as url:
        client = httpx.Client(base_url=url, headers=JSON, timeout=30)
        if request.param == "auth":
            r = client.post("/api/login", json={"username": "alice", "password": PASSWORD})
            assert r.status_code == 200, r.text
        yield url, client, request.param
        client.close()


def _code(r: httpx.Response) -> str:
    assert r.status_code == 403, (r.status_code, r.text)
    return r.json()["error"]["code"]


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/conversations"), ("GET", "/api/me"), ("GET", "/v1/models"), ("GET", "/health"),
    ("POST", "/api/conversations"), ("GET", "/"), ("GET", "/api/workspace/tasks/next"),
])
def test_a_foreign_host_header_is_refused(site, method, path):
    url, client, _ = site
    # what a DNS-rebinding page's requests carry: the attacker's name, resolved to 127.0.0.1
    r = client.request(method, path, headers={"Host": "evil.example"}, json={} if method == "POST" else None)
    assert _code(r) == "host_not_allowed"
    r = client.request(method, path, headers={"Host": "evil.example:" + url.rsplit(":", 1)[1]})
    assert _code(r) == "host_not_allowed"


def test_cross_origin_writes_are_refused_and_write_nothing(site, store):
    url, client, _ = site
    client.get("/api/me")  # the no-auth local user now exists, so counts compare like for like
    before = store.counts()
    for headers in ({"Origin": EVIL}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": url.replace("127.0.0.1", "127.0.0.2")}):
        assert _code(client.post("/api/conversations", json={}, headers=headers)) == "origin_not_allowed"
        r = client.post("/v1/chat/completions", headers=headers,
                        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        assert _code(r) == "origin_not_allowed"
    assert store.counts() == before
    # the page's own origin is fine
    assert client.post("/api/conversations", json={}, headers={"Origin": url}).status_code == 200


def test_a_write_without_a_key_needs_the_csrf_header_with_or_without_a_cookie(site, store):
    url, client, mode = site
    bare = httpx.Client(base_url=url, cookies=client.cookies, timeout=30)
    # what a no-cors fetch with a text Blob body could send, on /v1 too
    for path in ("/api/conversations", "/v1/chat/completions", "/api/workspace/admin/prompts"):
        r = bare.post(path, content=b"{}", headers={"Content-Type": "text/plain"})
        assert _code(r) == "csrf_failed", path
    # an API client with a key is not a browser page acting with the user's cookie
    if mode == "no-auth":
        r = bare.post("/v1/chat/completions", headers={"Authorization": "Bearer anything"},
                      json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        assert r.status_code == 200, r.text
    bare.close()


def test_allow_lists():
    hosts = HostAllowList(host_allow_list("127.0.0.1", 8000, ["chat.example.org"]))
    assert hosts.allows("127.0.0.1:8000") and hosts.allows("LOCALHOST:8000") and hosts.allows("[::1]:8000")
    assert not hosts.allows("127.0.0.1:8001") and not hosts.allows("localhost") and not hosts.allows("")
    assert hosts.allows("chat.example.org") and hosts.allows("chat.example.org:443")
    assert not hosts.allows("evil.example:8000") and not hosts.allows("chat.example.org.evil.example")
    assert hosts.allows_origin("http://localhost:8000") and hosts.allows_origin("https://chat.example.org")
    assert not hosts.allows_origin("null") and not hosts.allows_origin("file://")
    assert not hosts.allows_origin("http://evil.example") and not hosts.allows_origin("ftp://localhost:8000")
    # a wildcard bind adds no name: only the loopback ones (and --allowed-host) work
    assert host_allow_list("0.0.0.0", 80) == ["localhost:80", "127.0.0.1:80", "[::1]:80",
                                             "localhost", "127.0.0.1", "[::1]"]
    assert "10.0.0.5:8000" in host_allow_list("10.0.0.5", 8000)
