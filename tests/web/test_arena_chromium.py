"""The arena view in headless Chromium: a server whose every new turn is an arena turn between two
scripted versions (a traffic split). The two replies appear side by side as A and B with no
version shown, markup in a reply stays text, the composer waits for the pick, a pick with a reason
is stored, the chat goes on from the picked reply, and a reload shows the pick, not the arena."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from uvicorn_live import run_uvicorn

# Not imported from conftest: "conftest" is whichever tests/*/conftest.py pytest loaded first.
SHOTS = os.environ.get("CHATRLHF_SCREENSHOTS")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

PASSWORD = "correct-horse-1"
HOSTILE = "<img src=x onerror=alert(1)>"
WORDS = {"v-alpha": ["alpha ", HOSTILE + " ", "one ", "two ", "three ", "four "],
         "v-beta": ["beta ", "five ", "six ", "seven ", "eight ", "nine "]}


class Scripted:
    """The engine's streaming interface: every row emits ``words`` one per step."""

    def __init__(self, words):
        self.words = words

    def stream(self, prompts, params):
        return _Gen(self.words, len(prompts), params)


class _Gen:
    def __init__(self, words, n, params):
        self.words, self.n, self.params, self.cancelled, self.results = words, n, params, set(), []

    def cancel(self, row):
        self.cancelled.add(row)

    def __iter__(self):
        from chatrlhf.engine import Completion, TokenEvent

        texts, done, step = [""] * self.n, {}, 0
        while len(done) < self.n:
            time.sleep(0.02)
            for r in range(self.n):
                if r in done:
                    continue
                word = self.words[step % len(self.words)]
                last = step + 1 >= min(self.params[r].max_new_tokens, len(self.words))
                reason = "cancelled" if r in self.cancelled else "length" if last else None
                texts[r] += word
                yield TokenEvent(r, step, -1.0, word, reason)
                if reason:
                    done[r] = Completion(list(range(step + 1)), [-1.0] * (step + 1), texts[r], reason)
            step += 1
        self.results = [done[r] for r in range(self.n)]


@pytest.fixture
def site(tmp_path):
    from chatrlhf.models import load_tokenizer
    from chatrlhf.server.app import create_app
    from chatrlhf.server.arena import ArenaConfig
    from chatrlhf.server.router import Backend, Router
    from chatrlhf.server.scheduler import BatchScheduler
    from chatrlhf.server.service import ChatService
    from chatrlhf.store import Store

    tok = load_tokenizer("tiny")
    store = Store(f"sqlite:///{tmp_path}/db.sqlite")
    store.upgrade()
    store.create_user("alice", PASSWORD)
    backends = [Backend(v, BatchScheduler(Scripted(w), max_batch_size=4, batch_wait_s=0.005), tok)
                for v, w in WORDS.items()]
    router = Router(backends[0], alias="chatrlhf")
    router.backends[backends[1].version] = backends[1]
    router.traffic = {"v-alpha": 0.5, "v-beta": 0.5}
    service = ChatService(backends[0].scheduler, tok, model_name="chatrlhf", store=store, router=router)
    app = create_app(service, store=store)
    app.state.arena = ArenaConfig(share=1.0)
    with run_uvicorn(app) as url:
        yield url, store
    store.dispose()


def test_arena_view_and_picking(browser, site, tmp_path):
    from chatrlhf.store.arena_tables import list_picks

    url, store = site
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors, dialogs = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url + "/")
    page.fill("#login-username", "alice")
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("body[data-ready=true]")

    page.fill("#composer-input", "Tell me a story.")
    page.press("#composer-input", "Enter")
    page.wait_for_selector(".arena .arena-choice:not([disabled])", timeout=30_000)
    a, b = page.locator(".arena-reply[data-side=A]"), page.locator(".arena-reply[data-side=B]")
    assert a.locator(".msg-role").inner_text().lower() == "assistant a"
    assert b.locator(".msg-role").inner_text().lower() == "assistant b"
    texts = {a.locator(".msg-body").inner_text(), b.locator(".msg-body").inner_text()}
    assert {t.split()[0] for t in texts} == {"alpha", "beta"}  # both versions answered
    assert any(HOSTILE in t for t in texts)  # markup in a reply is text
    assert page.locator(".messages img").count() == 0
    body = page.locator("body").inner_text()
    assert "v-alpha" not in body and "v-beta" not in body  # versions hidden before the pick
    assert page.locator("#composer-input").is_disabled()  # pick first
    assert [c.get_attribute("data-choice") for c in page.locator(".arena-choice").all()] == ["A", "B", "tie", "both_bad"]
    page.screenshot(path=str(Path(SHOTS or tmp_path) / "arena-before-pick.png"))

    b_text = b.locator(".msg-body").inner_text()
    b_id = int(b.get_attribute("data-id"))
    page.fill(".arena-reason", "B tells it " + HOSTILE)
    page.click(".arena-choice.choice-B")
    page.wait_for_selector(".arena-note")
    assert page.locator(".arena").count() == 0
    shown = page.locator(".msg.assistant").last
    assert int(shown.get_attribute("data-id")) == b_id and shown.locator(".msg-body").inner_text() == b_text
    note = shown.locator(".arena-note").inner_text()
    assert "you picked B" in note and ("v-alpha" in note or "v-beta" in note)  # revealed now
    assert shown.locator(".sib-count").inner_text() == "2 / 2"  # A and B are siblings
    assert not page.locator("#composer-input").is_disabled()
    (pick,) = list_picks(store)
    assert (pick.choice, pick.reason, pick.b_message_id) == ("B", "B tells it " + HOSTILE, b_id)
    assert {pick.a_version, pick.b_version} == {"v-alpha", "v-beta"}

    # The chat goes on from the picked reply; this turn is a tie, which goes on from A.
    page.fill("#composer-input", "And then?")
    page.press("#composer-input", "Enter")
    page.wait_for_selector(".arena .arena-choice:not([disabled])", timeout=30_000)
    a2_id = int(page.locator(".arena-reply[data-side=A]").get_attribute("data-id"))
    page.click(".arena-choice.choice-tie")
    page.wait_for_selector(".arena-note:has-text('a tie')")
    picks = list_picks(store)
    assert picks[1].choice == "tie" and store.get_message(picks[1].turn_id).parent_id == b_id
    page.screenshot(path=str(Path(SHOTS or tmp_path) / "arena-after-pick.png"))

    # A reload shows the branch that was picked, with its notes, and no arena view.
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector(".arena-note")
    ids = [int(x) for x in page.locator(".msg.assistant").evaluate_all("ns => ns.map(n => n.dataset.id)")]
    assert ids == [b_id, a2_id] and page.locator(".arena").count() == 0
    time.sleep(0.2)  # give an injected handler the chance to run
    assert dialogs == [] and errors == []
    context.close()
