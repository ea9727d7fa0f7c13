"""The admin page's "Model versions" section in headless Chromium, against a live server whose
store has two registered tiny versions with different weights (tiny-a served) and one whose name
is markup with a slash: an admin promotes and rolls back through the page and the server really moves; a
trainer gets neither the page nor the API; the hostile name renders as text."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
import torch
from uvicorn_live import run_uvicorn

# Not imported from conftest or test_e2e_chromium: "conftest" is whichever tests/*/conftest.py
# pytest loaded first, so such an import breaks when this file runs beside another folder's tests.
SHOTS = os.environ.get("CHATRLHF_SCREENSHOTS")  # a folder for screenshots (default: the temp dir)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

PASSWORD = "correct-horse-1"
# Markup, and a "/" as in the names `chatrlhf serve runs/r7` registers ("r7/ppo-2").
HOSTILE = "r7/<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def site(tiny, tmp_path_factory):
    """(base url, store, admin API key, user API key); tiny-a is deployed, tiny-b and HOSTILE are
    candidates (HOSTILE is tiny-a's weights under another name, added to the store directly)."""
    from chatrlhf.deploy import registry
    from chatrlhf.server.app import create_app
    from chatrlhf.server.launch import build_service
    from chatrlhf.store import Store

    model, tok = tiny
    root = tmp_path_factory.mktemp("admin-models")
    g = torch.Generator().manual_seed(1)
    store = Store(f"sqlite:///{root}/db.sqlite")
    store.upgrade()
    for name, noise in (("tiny-a", 0.0), ("tiny-b", 0.5)):
        m = type(model)(model.config)
        m.load_state_dict({k: v + noise * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
                           for k, v in model.state_dict().items()})
        m.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        registry.register(store, name, str(root / name), kind="ppo", parent="tiny-a" if name == "tiny-b" else None)
    registry.promote(store, "tiny-a", actor="test", report="first release\nsecond line")
    store.add_model_version(HOSTILE, str(root / "tiny-a"), kind="sft")
    store.create_user("root", PASSWORD, "admin")
    store.create_user("ann", PASSWORD, "trainer")
    service = build_service("tiny", "chatrlhf", store=store, max_batch_size=4, batch_wait_ms=5,
                            moderation="off", poll_s=0.2)
    app = create_app(service, store=store, moderation=None)
    admin, user = store.create_api_key("admin", role="admin"), store.create_api_key("user")
    with run_uvicorn(app) as url:
        yield url, store, admin, user
    store.dispose()


def log_in(browser, url, name):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{url}/?next=/workspace/admin")
    page.fill("#login-username", name)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"{url}/workspace/admin")
    return context, page


def serving(url, key):
    r = httpx.get(url + "/api/admin/models", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["serving"]


def fingerprint(url, key):
    r = httpx.post(url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=60,
                   json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1})
    assert r.status_code == 200, r.text
    return r.json()["system_fingerprint"]


def row(page, name):
    return page.locator("#versions tr").filter(has=page.locator("td:first-child", has_text=name))


def test_admin_promotes_and_rolls_back_from_the_page(browser, site, tmp_path):
    url, store, admin, user = site
    context, page = log_in(browser, url, "root")
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.wait_for_selector("#versions tr[data-version]")

    # The table: every version, tiny-a marked as served; the log, newest first, report's first line.
    names = page.locator("#versions td:first-child").all_inner_texts()
    assert sorted(names) == sorted(["tiny-a", "tiny-b", HOSTILE])
    assert row(page, "tiny-a").locator(".served").count() == 1
    assert page.locator("#versions .served").count() == 1
    assert row(page, "tiny-b").locator("td").nth(2).inner_text() == "tiny-a"  # parent
    assert row(page, "tiny-a").locator("button.promote").is_disabled()  # already served to all
    assert page.locator("#serving").inner_text().startswith("Serving tiny-a")
    first = page.locator("#deployments tr").first.locator("td")
    assert [first.nth(i).inner_text() for i in (1, 2, 3, 5)] == ["promote", "tiny-a", "test", "first release"]

    # The markup name is text everywhere: no element made from it, no script run.
    assert page.locator("#models img").count() == 0
    assert HOSTILE in page.locator("#sp-b").inner_text()
    time.sleep(0.2)  # give an injected handler the chance to run
    assert dialogs == []

    # A plain promote runs the gates: these tiny versions have no evaluation, so they fail closed,
    # the page shows why, and nothing moves.
    row(page, "tiny-b").locator("button.promote").click()
    page.wait_for_selector("#models-status.error:has-text('the gates refused')", timeout=60_000)
    assert serving(url, admin)["default"] == "tiny-a"
    page.wait_for_selector("#versions tr[data-version=\"tiny-b\"] .pill:has-text('rejected')")

    # Promote tiny-b without the gates, with a report; the page shows the server's answer.
    page.fill("#mv-report", "tiny-b wins\nsecond line")
    page.check("#mv-skip-gates")
    row(page, "tiny-b").locator("button.promote").click()
    page.wait_for_selector("#models-status.ok:has-text('Now serving tiny-b')", timeout=60_000)
    page.wait_for_function("() => document.querySelector('#versions tr[data-version=\"tiny-b\"] .served')")
    assert page.locator("#versions .served").count() == 1
    assert page.input_value("#mv-report") == ""
    first = page.locator("#deployments tr").first.locator("td")
    assert [first.nth(i).inner_text() for i in (1, 2, 3, 5)] == ["promote", "tiny-b", "root", "tiny-b wins"]
    assert serving(url, admin)["default"] == "tiny-b"
    assert fingerprint(url, user) == "tiny-b"
    page.locator("#models").scroll_into_view_if_needed()
    page.screenshot(path=str(Path(SHOTS or tmp_path) / "admin-models-after-promote.png"))

    # Roll back: tiny-a again, on the page and on the server.
    page.click("#mv-rollback")
    page.wait_for_selector("#models-status.ok:has-text('Now serving tiny-a')", timeout=60_000)
    # the status line can show before the table is drawn again (as after the promote above)
    page.wait_for_function("() => document.querySelector('#versions tr[data-version=\"tiny-a\"] .served')")
    assert row(page, "tiny-a").locator(".served").count() == 1
    assert page.locator("#deployments tr").first.locator("td").nth(1).inner_text() == "rollback"
    assert serving(url, admin)["default"] == "tiny-a"
    assert fingerprint(url, user) == "tiny-a"

    # A 90/10 split: the weights in the table and on the server.
    page.select_option("#sp-a", "tiny-a")
    page.select_option("#sp-b", "tiny-b")
    page.fill("#sp-wa", "0.9")
    page.fill("#sp-wb", "0.1")
    page.click("#mv-split button[type=submit]")
    page.wait_for_selector("#models-status.ok:has-text('Traffic split')", timeout=60_000)
    # the table reloads after the answer is shown: wait for the new weights, do not race them
    page.wait_for_selector('#versions tr[data-version="tiny-b"] td:nth-child(6):has-text("weight 0.1 (10%)")')
    assert row(page, "tiny-a").locator(".served").count() == 1  # the heaviest is the default
    assert serving(url, admin)["traffic"] == {"tiny-a": 0.9, "tiny-b": 0.1}

    # A split of one version with itself: the server's error message, nothing changes.
    page.select_option("#sp-b", "tiny-a")
    page.click("#mv-split button[type=submit]")
    page.wait_for_selector("#models-status.error:has-text('at least two versions')")
    assert serving(url, admin)["traffic"] == {"tiny-a": 0.9, "tiny-b": 0.1}

    # Promote the markup-named version: its name travels URL-encoded and comes back as text.
    page.fill("#mv-report", "markup name")
    page.check("#mv-skip-gates")
    row(page, HOSTILE).locator("button.promote").click()
    page.wait_for_selector("#models-status:not(:has-text('…'))", timeout=60_000)
    assert page.locator("#models-status").inner_text().startswith(f"Done (promote, "), \
        page.locator("#models-status").inner_text()
    # the log reloads after the answer is shown: wait for it (the first CI run of session 10 raced it)
    from playwright.sync_api import expect

    expect(page.locator("#deployments tr").first.locator("td").nth(2)).to_have_text(HOSTILE, timeout=30_000)
    assert serving(url, admin)["default"] == HOSTILE and serving(url, admin)["traffic"] == {}
    assert page.locator("#models img").count() == 0 and dialogs == [] and errors == []
    context.close()


def test_a_trainer_gets_neither_the_section_nor_the_api(browser, site):
    url, store, admin, user = site
    before = serving(url, admin)
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{url}/?next=/workspace")
    page.fill("#login-username", "ann")
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"{url}/workspace")
    page.wait_for_selector("#whoami")
    assert page.locator("nav a[href='/workspace/admin']").count() == 0
    resp = page.goto(f"{url}/workspace/admin")
    assert resp.status == 403 and page.locator("#models").count() == 0
    # The same session cookie, straight at the API (with the CSRF header): 403, OpenAI's error shape.
    r = context.request.get(f"{url}/api/admin/models")
    assert r.status == 403 and r.json()["error"]["code"] == "insufficient_role"
    r = context.request.post(f"{url}/api/admin/models/tiny-b/promote", data={"report": "x"},
                             headers={"X-Requested-With": "chatrlhf"})
    assert r.status == 403 and r.json()["error"]["code"] == "insufficient_role"
    assert serving(url, admin)["default"] == before["default"]
    context.close()
