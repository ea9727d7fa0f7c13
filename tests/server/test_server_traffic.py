"""Simulated traffic (``simulate.traffic``) against a live server with the tiny random model: a
whole run, checked row by row against the store, and a rejected key. (The users' decisions, and
an unreachable server, are tested in tests/simulate/test_traffic.py.)"""

from __future__ import annotations

import json

import pytest
from server_live import live_server

from chatrlhf.simulate.traffic import TrafficConfig, TrafficError, plan, run_traffic


@pytest.fixture(scope="module")
def server(tiny, tmp_path_factory):
    """One server (SQLite store) for the module: each test reads only its own rows."""
    url = "sqlite:///" + str(tmp_path_factory.mktemp("traffic") / "store.db")
    with live_server(tiny, url) as s:
        yield s


def test_rejected_key_is_a_clear_error(server):
    with pytest.raises(TrafficError, match="rejected the API key"):
        run_traffic(TrafficConfig(url=server.url, key="not-a-key", users=1, conversations=1))


def test_traffic_lands_in_the_store(server, tmp_path):
    cfg = TrafficConfig(url=server.url, key=server.key, users=3, conversations=2, seed=1,
                        families=["verifiable", "correction", "harmful"], v1_share=0.3,
                        feedback_rate=1.0, regenerate_rate=1.0, report_rate=1.0, max_tokens=8,
                        concurrency=3, out_dir=str(tmp_path))
    channels = [p.channel for p in plan(cfg)]
    assert "web" in channels and "v1" in channels  # the seed exercises both paths
    summary = run_traffic(cfg)
    assert summary["errors"] == 0, summary["error_kinds"]
    records = [json.loads(line) for line in (tmp_path / "traffic.jsonl").read_text().splitlines()]
    assert json.loads((tmp_path / "summary.json").read_text())["replies"] == len(records)
    assert "key" not in summary["config"]

    store = server.store
    user = store.verify_api_key(server.key)
    convs = store.list_conversations(user.id, limit=100)
    web = [store.get_conversation(c.id) for c in convs if c.source == "web"]
    assert summary["conversations"] == 6 == summary["web_conversations"] + summary["v1_conversations"]
    assert len(web) == summary["web_conversations"] == channels.count("web")
    assert sum(c.source == "api" for c in convs) == summary["v1_conversations"] == channels.count("v1")

    # Every web reply is a stored assistant message with the text the user judged.
    replies = {m.id: m for c in web for m in c.messages if m.role == "assistant"}
    web_recs = [r for r in records if r["channel"] == "web"]
    assert {r["message_id"]: r["reply"] for r in web_recs} == {i: m.content for i, m in replies.items()}
    user_turns = sum(m.role == "user" for c in web for m in c.messages)
    assert user_turns == sum(not r["regenerated"] for r in web_recs)
    assert summary["turns"] == user_turns + summary["v1_conversations"]

    # Feedback rows: one per rated reply, with the rating and reasons the user chose.
    feedback = {f.message_id: (f.rating, f.reasons) for f in store.list_feedback(user_id=user.id)}
    assert feedback == {r["message_id"]: (r["thumbs"], r["reasons"]) for r in web_recs}
    assert len(feedback) == summary["thumbs_up"] + summary["thumbs_down"] == len(web_recs)

    # Regenerations are siblings of the reply they replaced; reports are stored with their kind.
    regenerated = [r for r in web_recs if r["regenerated"]]
    assert regenerated and len(regenerated) == summary["regenerations"]
    for r in regenerated:
        assert len(store.siblings(r["message_id"])) == 2
    reports = store.list_reports()
    assert len(reports) == summary["reports"] > 0
    assert sorted((x.message_id, x.kind) for x in reports) == sorted(
        (r["message_id"], r["report"]) for r in web_recs if r["report"])

    assert summary["model_versions"] == {"tiny": 1.0}
    assert 0.0 <= summary["mean_gold"] <= 1.0
    assert set(summary["families"]) == {"verifiable", "correction", "harmful"}
    assert sum(f["replies"] for f in summary["families"].values()) == summary["replies"]
