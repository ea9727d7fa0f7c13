"""deploy.monitor on a small hand-built store: counts, thumbs ratios, flag rates, reports and
latency by version and by day (and hour), with the window's edges; the arena block (picks made in
the window only) against hand-computed win rates, Wilson intervals and Bradley-Terry / Elo."""

import math
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from chatrlhf.deploy import monitor
from chatrlhf.deploy.arena import arena_stats
from chatrlhf.store.arena_tables import ArenaPickRow, add_pick, list_picks
from chatrlhf.store.models import ConversationRow, MessageRow, ReportRow

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=timezone.utc)


def at(store, model, row_id, when):
    with store.transaction() as s:
        s.execute(update(model).where(model.id == row_id).values(created_at=when))


def chat(store, user, version, when, *, meta=None, thumbs=(), text="hi"):
    """One conversation with one reply by ``version`` at ``when``; ``thumbs``: (user, rating)."""
    conv = store.create_conversation(user.id, messages=[
        {"role": "user", "content": text}, {"role": "assistant", "content": "hello", "meta": meta or {}}],
        model_version=version)
    at(store, ConversationRow, conv.id, when)
    for m in conv.messages:
        at(store, MessageRow, m.id, when)
    reply = conv.messages[-1]
    for u, rating in thumbs:
        store.set_feedback(reply.id, u.id, rating)
    return reply


def test_metrics_by_version_and_day(store):
    a, b = store.create_user("a"), store.create_user("b")
    d0, d1 = NOW - timedelta(days=1), NOW - timedelta(hours=1)  # 2026-11-19 and 2026-11-20
    r1 = chat(store, a, "v1", d0, meta={"ttft_s": 0.2, "tokens_per_s": 10.0}, thumbs=[(a, 1), (b, 1)])
    chat(store, b, "v1", d0, meta={"ttft_s": 0.4, "tokens_per_s": 20.0, "moderation": ["violence"]},
         thumbs=[(a, -1)])
    chat(store, a, "v2", d1, meta={"ttft_s": 1.0, "finish_reason": "content_filter"}, thumbs=[(b, 1)])
    r4 = chat(store, a, "v2", d1, meta={"input_moderation": ["hate"]})
    # A regeneration under the first conversation's user message, by v2, today.
    regen = store.add_message(r1.conversation_id, "assistant", "again", parent_id=r1.parent_id,
                              model_version="v2", meta={"ttft_s": 0.6})
    at(store, MessageRow, regen.id, d1)
    chat(store, a, "v1", NOW - timedelta(days=30))  # outside the window
    for kind, mid in (("harmful", r4.id), ("untrue", r1.id), ("moderation_false_negative", None)):
        rep = store.add_report(a.id, kind, message_id=mid, comment="x")
        at(store, ReportRow, rep.id, d1)

    m = monitor.metrics(store, days=2, bucket="day", now=NOW)
    assert m["buckets"] == ["2026-11-18", "2026-11-19", "2026-11-20"]
    assert m["versions"] == ["v1", "v2"]
    t = m["totals"]
    assert (t["conversations"], t["users"], t["replies"]) == (4, 2, 5)
    assert (t["thumbs_up"], t["thumbs_down"], t["up_ratio"]) == (3, 1, 0.75)
    assert (t["flagged"], t["flag_rate"]) == (3, 0.6)
    assert t["reports"] == 3 and m["reports_by_kind"] == {"harmful": 1, "moderation_false_negative": 1, "untrue": 1}
    assert (t["ttft_p50"], t["ttft_p90"], t["latency_n"]) == (0.4, 1.0, 4)

    v1, v2 = m["by_version"]["v1"], m["by_version"]["v2"]
    assert (v1["conversations"], v1["replies"], v1["up_ratio"], v1["flag_rate"]) == (2, 2, 0.6667, 0.5)
    assert (v1["ttft_p50"], v1["tps_p50"], v1["reports"]) == (0.2, 10.0, 1)  # nearest rank
    assert (v2["conversations"], v2["replies"], v2["up_ratio"], v2["flagged"]) == (3, 3, 1.0, 2)
    assert v2["reports"] == 1 and v2["tps_p50"] is None  # the report without a message: no version

    days = {b["bucket"]: b for b in m["by_bucket"]}
    assert days["2026-11-18"]["replies"] == 0 and days["2026-11-18"]["up_ratio"] is None
    assert (days["2026-11-19"]["replies"], days["2026-11-19"]["thumbs_up"]) == (2, 2)
    assert (days["2026-11-20"]["conversations"], days["2026-11-20"]["replies"]) == (3, 3)
    assert days["2026-11-20"]["reports"] == 3
    # The sparse per-version series: v1 only on the 19th (its report is about a reply from then
    # but was made on the 20th, so it counts there).
    assert [c["bucket"] for c in m["by_version_bucket"]["v1"]] == ["2026-11-19", "2026-11-20"]
    assert [c["bucket"] for c in m["by_version_bucket"]["v2"]] == ["2026-11-20"]
    assert m["by_version_bucket"]["v1"][1] | {"reports": 0} == \
        {"bucket": "2026-11-20", **monitor._Cell().json()}

    hours = monitor.metrics(store, days=1, bucket="hour", now=NOW)
    assert len(hours["buckets"]) == 25 and hours["buckets"][-1] == "2026-11-20T12:00"
    assert {b["bucket"]: b["replies"] for b in hours["by_bucket"] if b["replies"]} == {
        "2026-11-20T11:00": 3, "2026-11-19T12:00": 2}


def pick(store, user, a_version, b_version, choice, when):
    """One arena turn answered by ``a_version`` (side A) and ``b_version`` (B), picked at ``when``."""
    conv = store.create_conversation(user.id)
    turn = store.add_message(conv.id, "user", "2+2?")
    for side, version in zip("AB", (a_version, b_version)):
        store.add_message(conv.id, "assistant", "4", parent_id=turn.id, model_version=version,
                          meta={"arena": {"turn": turn.id, "side": side}, "status": "done"})
    p = add_pick(store, user.id, turn.id, choice)
    at(store, ArenaPickRow, p.id, when)
    return p


def test_the_arena_block_counts_the_window_s_picks(store):
    u = store.create_user("u")
    d0, d1 = NOW - timedelta(days=1), NOW - timedelta(hours=1)  # 2026-11-19 and 2026-11-20
    pick(store, u, "va", "vb", "A", d0)        # va 1, vb 0
    pick(store, u, "va", "vb", "B", d1)        # va 0, vb 1
    pick(store, u, "vb", "va", "B", d1)        # va 1 (on side B), vb 0
    pick(store, u, "va", "vb", "tie", d1)      # 1/2 each
    pick(store, u, "va", "vb", "both_bad", d1)  # 1/2 each
    pick(store, u, "va", "va", "A", d1)        # one version on both sides: a pick, no game
    pick(store, u, "vb", "vc", "A", NOW - timedelta(days=2, minutes=1))  # just before the window
    pick(store, u, "va", "vb", "B", NOW - timedelta(days=30))

    a = monitor.metrics(store, days=2, bucket="day", now=NOW)["arena"]
    assert (a["picks"], a["games"]) == (6, 5)
    assert a["choices"] == {"A": 2, "B": 2, "tie": 1, "both_bad": 1}
    assert [r["version"] for r in a["versions"]] == ["va", "vb"]  # vc picked outside only: absent
    va, vb = a["versions"]
    assert {k: va[k] for k in ("games", "wins", "losses", "ties", "both_bad")} == \
        {"games": 5, "wins": 2, "losses": 1, "ties": 2, "both_bad": 1}
    assert {k: vb[k] for k in ("games", "wins", "losses", "ties", "both_bad")} == \
        {"games": 5, "wins": 1, "losses": 2, "ties": 2, "both_bad": 1}
    # va 3 points of 5, vb 2 of 5. Wilson (z = 1.96) for 3/5, by hand: centre
    # (0.6 + 3.8416/10) / (1 + 3.8416/5) = 0.556551, half-width
    # 1.96 * sqrt(0.24/5 + 3.8416/100) / 1.76832 = 0.325831; 2/5 is its mirror image.
    assert va["win_rate"] == pytest.approx(0.6) and vb["win_rate"] == pytest.approx(0.4)
    assert va["ci"] == pytest.approx([0.230720, 0.882382], abs=1e-5)
    assert vb["ci"] == pytest.approx([0.117618, 0.769280], abs=1e-5)
    # Bradley-Terry with one virtual tie: 3.5 points to 2.5, so p_va / p_vb = 7/5, mean log 0.
    assert va["bt"] == pytest.approx(math.log(1.4) / 2) and vb["bt"] == pytest.approx(-math.log(1.4) / 2)
    assert va["elo"] == pytest.approx(1029.2256, abs=1e-3) and vb["elo"] == pytest.approx(970.7744, abs=1e-3)
    assert a["by_bucket"] == [{"bucket": "2026-11-18", "picks": 0}, {"bucket": "2026-11-19", "picks": 1},
                              {"bucket": "2026-11-20", "picks": 5}]

    hours = monitor.metrics(store, days=1, bucket="hour", now=NOW)["arena"]
    # d0 is exactly a day back: on the 1-day window's first edge, which is included.
    assert hours["picks"] == 6 and {b["bucket"]: b["picks"] for b in hours["by_bucket"] if b["picks"]} == \
        {"2026-11-19T12:00": 1, "2026-11-20T11:00": 5}
    # The all-time statistics (GET /api/admin/arena) still hold every pick.
    assert arena_stats(list_picks(store))["picks"] == 8
    # list_picks' window includes both ends: the vb-vc pick and d0's pick (at ``until`` exactly).
    assert [(p.a_version, p.b_version) for p in list_picks(store, since=NOW - timedelta(days=3), until=d0)] == \
        [("va", "vb"), ("vb", "vc")]


def test_an_empty_store_and_bad_arguments(store):
    m = monitor.metrics(store, days=7, now=NOW)
    assert m["totals"]["replies"] == 0 and m["totals"]["up_ratio"] is None and m["versions"] == []
    assert m["arena"]["picks"] == 0 and m["arena"]["versions"] == [] and len(m["arena"]["by_bucket"]) == 8
    assert len(m["by_bucket"]) == 8
    for kw in ({"bucket": "week"}, {"days": 0}, {"days": 1000}):
        try:
            monitor.metrics(store, now=NOW, **kw)
        except ValueError:
            continue
        raise AssertionError(f"{kw} was accepted")
