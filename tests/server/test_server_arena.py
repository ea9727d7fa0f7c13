"""The arena on a live server: two tiny versions with different weights under a traffic split, an
arena share of 1 (every new turn) or 0 (off). Both versions answer an arena turn, both replies are
stored under their version with the arena marker, the versions stay hidden until the pick, and the
pick route checks ownership, input, CSRF and double picks; the admin stats route is admin-only."""

from __future__ import annotations

import contextlib
import json
from collections import Counter

import httpx
import pytest

from uvicorn_live import run_uvicorn

pytestmark = pytest.mark.timeout(120)


@contextlib.contextmanager
def served(tmp_path, dirs, share):
    from chatrlhf.deploy import registry
    from chatrlhf.server.app import create_app
    from chatrlhf.server.arena import ArenaConfig
    from chatrlhf.server.launch import build_service
    from chatrlhf.store import Store

    store = Store(f"sqlite:///{tmp_path}/db.sqlite")
    store.upgrade()
    for name, d in dirs.items():
        registry.register(store, name, d, kind="ppo")
    registry.promote(store, "tiny-a", actor="test")
    registry.split(store, {"tiny-a": 0.5, "tiny-b": 0.5}, actor="test")
    service = build_service("tiny", "chatrlhf", store=store, max_batch_size=8, batch_wait_ms=5,
                            moderation="off", poll_s=0.2)
    app = create_app(service, store=store)
    app.state.arena = ArenaConfig(share=share)
    keys = {"admin": store.create_api_key("admin", role="admin"), "alice": store.create_api_key("alice"),
            "bob": store.create_api_key("bob"), "sim": store.create_api_key("sim")}
    try:
        with run_uvicorn(app) as url:
            yield url, store, keys
    finally:
        store.dispose()


def _h(key):
    return {"Authorization": f"Bearer {key}"}


def _send(url, key, conv, content, parent=None):
    events = []
    with httpx.stream("POST", f"{url}/api/conversations/{conv}/messages", headers=_h(key), timeout=60,
                      json={"content": content, "parent_id": parent}) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


def _conversation(url, key):
    r = httpx.post(f"{url}/api/conversations", headers=_h(key), json={"settings": {"max_tokens": 6, "seed": 1}})
    return r.json()["conversation"]["id"]


@pytest.fixture(scope="module")
def arena_site(two_versions, tmp_path_factory):
    """Every new web turn an arena turn (share 1); each test uses its own users."""
    with served(tmp_path_factory.mktemp("arena"), two_versions, share=1.0) as site:
        yield site


def test_an_arena_turn_is_answered_by_both_versions_and_picked(arena_site):
    url, store, keys = arena_site
    alice = keys["alice"]
    conv = _conversation(url, alice)
    events = _send(url, alice, conv, "Tell me a story.")
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["user", "arena"] and kinds[-1] == "done"
    assert {e["side"] for e in events if e["type"] == "delta"} == {"A", "B"}
    assert sorted(e["side"] for e in events if e["type"] == "arena_reply") == ["A", "B"]
    turn = events[0]["message"]["id"]
    done = events[-1]
    a, b = done["arena"]["messages"]
    assert done["message"]["id"] == a["id"] and done["arena"]["turn"] == turn
    assert (a["arena"], b["arena"]) == ({"turn": turn, "side": "A"}, {"turn": turn, "side": "B"})
    assert a["model_version"] is None and b["model_version"] is None  # hidden until the pick
    assert all(e.get("message", {}).get("model_version") is None for e in events if e["type"] != "user")
    # both are stored, each under the version that wrote it
    stored = {m.id: m for m in store.get_conversation(conv).messages}
    assert {stored[a["id"]].model_version, stored[b["id"]].model_version} == {"tiny-a", "tiny-b"}
    assert stored[a["id"]].content == a["content"] and stored[a["id"]].meta["status"] == "done"
    got = httpx.get(f"{url}/api/conversations/{conv}", headers=_h(alice)).json()
    assert all(m["model_version"] is None for m in got["messages"] if m["role"] == "assistant")

    pick = f"{url}/api/arena/{turn}/pick"
    r = httpx.post(pick, headers=_h(keys["bob"]), json={"choice": "A"})
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    r = httpx.post(pick, headers=_h(alice), json={"choice": "C"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "choice"
    r = httpx.post(pick, headers=_h(alice), json={"choice": "A", "reason": "x" * 1001})
    assert r.status_code == 400
    r = httpx.post(f"{url}/api/arena/{a['id']}/pick", headers=_h(alice), json={"choice": "A"})
    assert r.status_code == 404  # a reply is not a turn
    r = httpx.post(pick, headers=_h(alice) | {"Content-Type": "text/plain"}, content=b'{"choice": "A"}')
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    assert httpx.post(pick, json={"choice": "A"}).status_code == 401
    r = httpx.post(pick, headers=_h(alice), json={"choice": "B", "reason": "more fun"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["chosen_id"] == b["id"] and body["pick"]["choice"] == "B"
    assert body["versions"] == {"A": stored[a["id"]].model_version, "B": stored[b["id"]].model_version}
    assert httpx.post(pick, headers=_h(alice), json={"choice": "A"}).status_code == 409
    got = httpx.get(f"{url}/api/conversations/{conv}", headers=_h(alice)).json()
    assert got["conversation"]["current_id"] == b["id"]
    shown = {m["id"]: m for m in got["messages"]}
    assert shown[b["id"]]["model_version"] == body["versions"]["B"]
    assert shown[a["id"]]["arena"]["choice"] == "B"

    # the chat goes on from the picked reply
    more = _send(url, alice, conv, "And then?", parent=b["id"])
    assert more[0]["message"]["parent_id"] == b["id"]

    # the admin statistics
    assert httpx.get(f"{url}/api/admin/arena", headers=_h(alice)).status_code == 403
    stats = httpx.get(f"{url}/api/admin/arena", headers=_h(keys["admin"])).json()
    assert stats["picks"] == 1 and stats["config"]["comparing"] == ["tiny-a", "tiny-b"]
    best = stats["versions"][0]
    assert best["version"] == body["versions"]["B"] and best["wins"] == 1 and best["win_rate"] == 1.0


def test_share_zero_is_a_plain_turn(two_versions, tmp_path):
    with served(tmp_path, two_versions, share=0.0) as (url, store, keys):
        conv = _conversation(url, keys["alice"])
        events = _send(url, keys["alice"], conv, "Tell me a story.")
        assert [e["type"] for e in events][:2] == ["user", "assistant"] and "arena" not in events[-1]
        assert events[-1]["message"]["model_version"] in ("tiny-a", "tiny-b")
        replies = [m for m in store.get_conversation(conv).messages if m.role == "assistant"]
        assert len(replies) == 1 and "arena" not in replies[0].meta


def test_simulated_traffic_picks_in_the_arena(arena_site, tmp_path):
    from chatrlhf.simulate.traffic import TrafficConfig, run_traffic
    from chatrlhf.store.arena_tables import list_picks

    url, store, keys = arena_site
    cfg = TrafficConfig(url=url, key=keys["sim"], users=1, conversations=2, seed=3, families=["verifiable"],
                        v1_share=0.0, max_tokens=4, concurrency=2, out_dir=str(tmp_path))
    summary = run_traffic(cfg)
    assert summary["errors"] == 0, summary["error_kinds"]
    sim = store.verify_api_key(keys["sim"]).id
    picks = [p for p in list_picks(store) if p.user_id == sim]
    arena = summary["arena"]
    assert arena["turns"] == len(picks) == summary["turns"] > 0  # every web turn was an arena turn
    assert sum(arena["choices"].values()) == len(picks)
    assert arena["choices"] == dict(Counter(p.choice for p in picks))
    assert set(arena["versions"]) == {"tiny-a", "tiny-b"}
    assert all(0 <= v["pick_win_rate"] <= 1 and 0 <= v["gold_win_rate"] <= 1 for v in arena["versions"].values())
    assert summary["replies"] == 2 * len(picks) and summary["thumbs_up"] + summary["thumbs_down"] == 0


def test_simulated_api_traffic_records_the_version_not_the_alias(arena_site, tmp_path):
    # A /v1 response's `model` echoes the alias asked for; the version behind it is in
    # `system_fingerprint`, and that is what the traffic log must attribute the reply to.
    from chatrlhf.simulate.traffic import TrafficConfig, run_traffic

    url, store, keys = arena_site
    cfg = TrafficConfig(url=url, key=keys["sim"], users=2, conversations=1, seed=4, families=["verifiable"],
                        v1_share=1.0, max_tokens=4, concurrency=2, out_dir=str(tmp_path))
    summary = run_traffic(cfg)
    assert summary["errors"] == 0, summary["error_kinds"]
    assert summary["v1_conversations"] == 2
    assert set(summary["model_versions"]) <= {"tiny-a", "tiny-b"}, summary["model_versions"]
