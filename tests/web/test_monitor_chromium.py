"""The monitoring page (/workspace/monitor) in headless Chromium, against a live server whose
store holds conversations on known topics by two versions, with thumbs, flags, reports and
latency: the charts render (a Chart.js chart on every canvas, under the page's CSP, no console
errors), the per-version table and the topics show, a small group's words never reach the page,
the admin nav links the page, and a trainer gets 403 from the page and the API."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
