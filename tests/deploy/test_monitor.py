"""deploy.monitor on a small hand-built store: counts, thumbs ratios, flag rates, reports and
latency by version and by day (and hour), with the window's edges."""

from datetime import datetime, timedelta, timezone

from sqlalchemy import update

from chatrlhf.deploy import monitor
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


def test_an_empty_store_and_bad_arguments(store):
    m = monitor.metrics(store, days=7, now=NOW)
    assert m["totals"]["replies"] == 0 and m["totals"]["up_ratio"] is None and m["versions"] == []
    assert len(m["by_bucket"]) == 8
    for kw in ({"bucket": "week"}, {"days": 0}, {"days": 1000}):
        try:
            monitor.metrics(store, now=NOW, **kw)
        except ValueError:
            continue
        raise AssertionError(f"{kw} was accepted")
