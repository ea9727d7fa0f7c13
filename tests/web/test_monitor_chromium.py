"""The monitoring page (/workspace/monitor) in headless Chromium, against a live server whose
store holds conversations on known topics by two versions, with thumbs, flags, reports and
latency: the charts render (a Chart.js chart on every canvas, under the page's CSP, no console
errors), the per-version table and the topics show, a small group's words never reach the page,
the admin nav links the page, and a trainer gets 403 from the page and the API. The arena card: a
clear line with no picks; with picks, the window's numbers per version in the table and a Chart.js
interval chart, a version named in HTML shown as text, and a wider window taking in an older pick."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from topic_fixture import NOISE, SMALL, TOPICS

# Not imported from conftest (see test_admin_models_chromium.py for why).
SHOTS = os.environ.get("CHATRLHF_SCREENSHOTS")
PASSWORD = "correct horse battery"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
CHARTS = ["chart-traffic", "chart-thumbs", "chart-flags", "chart-reports", "chart-ttft", "chart-tps"]


def fill(store, user):
    texts = [t for ts in TOPICS.values() for t in ts] + SMALL + NOISE
    for i, text in enumerate(texts):
        version = "v1" if i % 2 else "v2"
        meta = {"ttft_s": 0.1 + i / 100, "tokens_per_s": 20.0 - i / 10}
        if i % 9 == 0:
            meta["moderation"] = ["violence"]
        conv = store.create_conversation(user.id, model_version=version, messages=[
            {"role": "user", "content": text}, {"role": "assistant", "content": "ok", "meta": meta}])
        reply = conv.messages[-1]
        if i % 3:
            store.set_feedback(reply.id, user.id, 1 if i % 4 else -1)
        if i % 11 == 0:
            store.add_report(user.id, "untrue", message_id=reply.id)


def log_in(browser, url, name, path):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{url}/?next={path}")
    page.fill("#login-username", name)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"{url}{path}")
    return context, page


def test_the_monitoring_page_draws_its_charts_and_topics(browser, server, store, alice, tmp_path):
    store.create_user("root", PASSWORD, "admin")
    fill(store, alice)
    context, page = log_in(browser, server, "root", "/workspace/monitor")
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on("console", lambda m: m.type in ("error", "warning") and problems.append(f"{m.type}: {m.text}"))
    page.wait_for_selector("body[data-loaded='1']", timeout=30_000)

    # Every metric canvas holds a Chart.js chart with one dataset per version (reports: one).
    for cid in CHARTS:
        n = page.evaluate("(id) => window.Chart.getChart(document.getElementById(id))?.data.datasets.length ?? -1", cid)
        assert n == (1 if cid == "chart-reports" else 2), (cid, n)
        box = page.locator(f"#{cid}").bounding_box()
        assert box["width"] > 200 and box["height"] > 150  # drawn at the size of its card
    rows = page.locator("#mon-versions tr")
    assert rows.count() == 2 and page.locator("#mon-versions td:first-child").all_inner_texts() == ["v1", "v2"]
    assert "55 conversations, 55 replies" in page.inner_text("#mon-status")

    # Topics arrive once the server has embedded and clustered (the page polls meanwhile).
    page.wait_for_selector("#topics tr[data-topic]", timeout=90_000)
    labels = page.locator("#topics tr[data-topic] td:first-child").all_inner_texts()
    assert any("python" in x for x in labels), labels
    assert page.evaluate("() => window.Chart.getChart(document.getElementById('chart-topics')).data.labels") == labels
    body = page.inner_text("body").lower()
    assert "zorblat" not in body and "quilt" not in body  # 5 conversations: under the minimum
    assert all(t.lower() not in body for t in SMALL + NOISE + TOPICS["python"])
    assert page.locator("nav a[href='/workspace/monitor']").count() == 1
    # No arena picks: one line says so, and neither table nor chart is shown.
    assert page.inner_text("#arena-status") == "No arena picks in this window."
    assert not page.locator("#arena-table").is_visible() and page.locator("#arena-versions tr").count() == 0
    assert page.evaluate("() => window.Chart.getChart(document.getElementById('chart-arena')) === undefined")
    page.screenshot(path=str(Path(SHOTS or tmp_path) / "monitor.png"), full_page=True)
    assert problems == []

    # The admin page links here in its nav.
    page.goto(f"{server}/workspace/admin")
    page.click("nav a[href='/workspace/monitor']")
    page.wait_for_selector("body[data-loaded='1']")
    assert problems == []
    context.close()


def test_a_trainer_gets_403_from_the_page_and_the_api(browser, server, store):
    store.create_user("ann", PASSWORD, "trainer")
    context, page = log_in(browser, server, "ann", "/workspace")
    page.wait_for_selector("#whoami")
    assert page.locator("nav a[href='/workspace/monitor']").count() == 0
    resp = page.goto(f"{server}/workspace/monitor")
    assert resp.status == 403 and page.locator("#mon-versions").count() == 0
    r = context.request.get(f"{server}/api/admin/monitor")
    assert r.status == 403 and r.json()["error"]["code"] == "insufficient_role"
    context.close()


HOSTILE = '<img src=x onerror="window.__xss = 1">v<b>3</b>'  # a version name in HTML


def arena_pick(store, user, a_version, b_version, choice):
    """One arena turn (replies by ``a_version`` on side A and ``b_version`` on B) and its pick."""
    from chatrlhf.store.arena_tables import add_pick

    conv = store.create_conversation(user.id)
    turn = store.add_message(conv.id, "user", "Tell me a story.")
    for side, version in zip("AB", (a_version, b_version)):
        store.add_message(conv.id, "assistant", "Once.", parent_id=turn.id, model_version=version,
                          meta={"arena": {"turn": turn.id, "side": side}, "status": "done"})
    return add_pick(store, user.id, turn.id, choice)


def test_the_arena_card_shows_the_window_s_picks(browser, server, store, alice, tmp_path):
    from chatrlhf.store.arena_tables import ArenaPickRow
    from chatrlhf.store.models import utcnow

    store.create_user("root", PASSWORD, "admin")
    for a, b, choice in (("v1", HOSTILE, "A"), (HOSTILE, "v1", "A"), ("v1", HOSTILE, "A"),
                         ("v1", HOSTILE, "tie"), ("v1", HOSTILE, "both_bad")):
        arena_pick(store, alice, a, b, choice)
    old = arena_pick(store, alice, HOSTILE, "v1", "A")  # made 30 days ago: outside the 14-day window
    with store.transaction() as s:
        s.execute(update(ArenaPickRow).where(ArenaPickRow.id == old.id)
                  .values(created_at=utcnow() - timedelta(days=30)))
    context, page = log_in(browser, server, "root", "/workspace/monitor")
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on("console", lambda m: m.type in ("error", "warning") and problems.append(f"{m.type}: {m.text}"))
    page.wait_for_selector("body[data-loaded='1']", timeout=30_000)

    # v1 scored 3 of 5 (2 wins, 1 loss, a tie and a both-bad), the other 2 of 5; Wilson 95%
    # intervals for 3/5 and 2/5; Bradley-Terry with one virtual tie: 3.5 to 2.5, +-ln(1.4)/2.
    assert page.inner_text("#arena-status").startswith("5 picks, 5 games")
    cells = [r.locator("td").all_inner_texts() for r in page.locator("#arena-versions tr").all()]
    assert cells == [["v1", "5", "2 / 1 / 2", "1", "60.0% (23.1%–88.2%)", "0.168", "1029"],
                     [HOSTILE, "5", "1 / 2 / 2", "1", "40.0% (11.8%–76.9%)", "-0.168", "971"]]
    assert page.locator("#mon-arena img, #mon-arena b").count() == 0  # the name is text, not markup
    assert page.evaluate("() => window.__xss") is None
    chart = page.evaluate("""() => { const c = window.Chart.getChart(document.getElementById('chart-arena'));
        return c && { type: c.config.type, labels: c.data.labels, sets: c.data.datasets.map((d) => d.data) }; }""")
    assert chart["type"] == "bar" and chart["labels"] == ["v1", HOSTILE]
    (lo1, hi1), (lo2, hi2) = chart["sets"][0]  # the floating bars: [lo, hi]
    assert (lo1, hi1, lo2, hi2) == pytest.approx((0.230720, 0.882382, 0.117618, 0.769280), abs=1e-5)
    assert chart["sets"][1] == pytest.approx([0.6, 0.4])  # the win-rate points
    box = page.locator("#chart-arena").bounding_box()
    assert box["width"] > 200 and box["height"] > 150
    page.locator("#mon-arena").screenshot(path=str(Path(SHOTS or tmp_path) / "monitor-arena.png"))

    # 90 days take in the older pick: 3 points of 6 each, 50%.
    page.select_option("#mon-days", "90")
    page.click("#mon-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('arena-status').textContent.startsWith('6 picks')")
    rates = page.locator("#arena-versions td:nth-child(5)").all_inner_texts()
    assert [r.split()[0] for r in rates] == ["50.0%", "50.0%"]
    assert problems == []
    context.close()
