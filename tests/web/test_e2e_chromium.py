"""End to end in real headless Chromium (Debian's, through Playwright) against a live loopback
server running the tiny model and a temporary SQLite store: log in, watch a reply stream, thumbs
down with a reason, regenerate and flip between the versions, reload and find it all again (and in
the database); and hostile model/user text that must render as text."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import PASSWORD, live_server

from chatrlhf.store import Store

# Screenshots for a person to look at; kept out of git (tests write them under the temp dir
# unless CHATRLHF_SCREENSHOTS names a folder).
SHOTS = os.environ.get("CHATRLHF_SCREENSHOTS")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(base url, store, user) for a live server with the real tiny model."""
    from chatrlhf.server.app import create_app
    from chatrlhf.server.launch import build_service

    store = Store(str(tmp_path_factory.mktemp("e2e") / "e2e.db"))
    store.upgrade()
    user = store.create_user("alice", PASSWORD)
    service = build_service("tiny", "tiny", store=store, max_batch_size=4, batch_wait_ms=5)
    app = create_app(service, store=store, moderation=service.moderation)
    if not any(getattr(r, "path", "") == "/api/login" for r in app.routes):
        from chatrlhf.server.web import router

        app.include_router(router)
    with live_server(app) as url:
        yield url, store, user
    store.dispose()


def shot(page, name: str, tmp_path: Path) -> Path:
    folder = Path(SHOTS) if SHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def log_in(page, url: str) -> None:
    page.goto(url + "/")
    page.fill("#login-username", "alice")
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    # Not just the app view: the first conversation list and chat must have loaded, or a later
    # navigation races the app's own start-up (which resets the hash for a new chat).
    page.wait_for_selector("body[data-ready='true'] #app-view:not([hidden])")


WATCH_STREAM = """() => {
  window.__lengths = [];
  window.__sawStreaming = false;
  new MutationObserver(() => {
    const node = document.querySelector('.msg.assistant.streaming .msg-body');
    if (node) { window.__sawStreaming = true; window.__lengths.push(node.textContent.length); }
  }).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
}"""


def wait_idle(page) -> None:
    """Wait for the reply in flight to finish (the Send button comes back)."""
    page.wait_for_selector("#send:not([hidden])", timeout=60_000)


def test_chat_feedback_regenerate_and_reload(browser, site, tmp_path):
    url, store, user = site
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    streamed: list[str] = []
    page.on("response", lambda r: streamed.append(r.headers.get("content-type", ""))
            if r.url.endswith("/messages") else None)
    log_in(page, url)

    # Sampling settings for the new chat, from the settings panel.
    page.click("#settings-toggle")
    page.fill("#set-max_tokens", "24")
    page.fill("#set-system", "You are a test assistant.")
    page.click("#settings-save")
    page.wait_for_selector("#settings-status:has-text('Saved')")

    page.evaluate(WATCH_STREAM)
    page.fill("#composer-input", "Hello <b>there</b>, say something")
    page.keyboard.press("Enter")
    page.wait_for_selector(".msg.assistant")
    wait_idle(page)

    user_msg = page.locator(".msg.user .msg-body")
    assert user_msg.inner_text() == "Hello <b>there</b>, say something"
    assert page.locator(".msg.user .msg-body b").count() == 0
    first = page.locator(".msg.assistant .msg-body").inner_text()
    assert first.strip(), "the reply rendered empty"
    assert streamed and streamed[0].startswith("text/event-stream")
    lengths = page.evaluate("window.__lengths")
    assert page.evaluate("window.__sawStreaming")
    assert len({n for n in lengths if n > 0}) >= 2, f"the reply did not arrive incrementally: {lengths}"
    assert page.locator(".conv-item").count() == 1
    assert "Hello" in page.locator(".conv-item .conv-title").inner_text()

    # Thumbs down with a reason chip and a comment.
    page.click(".msg.assistant .act-down")
    page.click(".feedback-panel .chip:has-text('Not factually correct')")
    page.fill(".feedback-panel .feedback-comment", "made up words")
    page.click(".feedback-panel .feedback-submit")
    page.wait_for_selector(".feedback-panel", state="detached")
    assert "on" in page.locator(".msg.assistant .act-down").get_attribute("class")

    # Regenerate: a second version, then flip back to the first.
    page.click(".msg.assistant .act-regen")
    page.wait_for_selector(".msg.assistant .sib-count:has-text('2 / 2')")
    wait_idle(page)
    second = page.locator(".msg.assistant .msg-body").inner_text()
    assert "on" not in page.locator(".msg.assistant .act-down").get_attribute("class")
    shot(page, "chat-after-regenerate", tmp_path)
    page.click(".msg.assistant .sib-prev")
    page.wait_for_selector(".msg.assistant .sib-count:has-text('1 / 2')")
    assert page.locator(".msg.assistant .msg-body").inner_text() == first

    # The flip is saved on the server (the branch's leaf), then everything survives a reload.
    conv_id = int(page.evaluate("location.hash").rsplit("/", 1)[1])
    conv = store.get_conversation(conv_id)
    first_id = conv.messages[1].id
    deadline = time.monotonic() + 10
    while store.get_conversation(conv_id).current_id != first_id and time.monotonic() < deadline:
        time.sleep(0.05)
    page.reload()
    page.wait_for_selector(".msg.assistant .sib-count:has-text('1 / 2')")
    assert page.locator(".msg.user .msg-body").inner_text() == "Hello <b>there</b>, say something"
    assert page.locator(".msg.assistant .msg-body").inner_text() == first
    assert "on" in page.locator(".msg.assistant .act-down").get_attribute("class")
    page.click(".msg.assistant .sib-next")
    assert page.locator(".msg.assistant .msg-body").inner_text() == second
    page.click("#settings-toggle")
    assert page.input_value("#set-max_tokens") == "24"
    assert page.input_value("#set-system") == "You are a test assistant."
    shot(page, "chat-after-reload", tmp_path)

    # ...and in the database.
    conv = store.get_conversation(conv_id, user_id=user.id)
    roles = [(m.role, m.parent_id) for m in conv.messages]
    user_id = conv.messages[0].id
    assert roles == [("user", None), ("assistant", user_id), ("assistant", user_id)]
    assert conv.messages[0].content == "Hello <b>there</b>, say something"
    assert all(m.content.strip() for m in conv.messages[1:])
    assert conv.system_prompt == "You are a test assistant." and conv.settings["max_tokens"] == 24
    (fb,) = conv.feedback
    assert (fb.message_id, fb.rating, fb.reasons, fb.comment) == (
        first_id, -1, ["Not factually correct"], "made up words")
    assert all(m.meta["status"] == "done" for m in conv.messages[1:])
    assert errors == []
    page.close()


HOSTILE_REPLY = """<script>window.__pwned = 2</script>
<img src=x onerror="window.__pwned = 3">
**bold** and `<b>code</b>` and [click](javascript:window.__pwned=4) and [ok](https://example.com/a_b_c)

```html
<script>window.__pwned = 5</script>
```"""


def test_hostile_text_renders_as_text(browser, site, tmp_path):
    url, store, user = site
    conv = store.create_conversation(
        user.id, title="<img src=x onerror=window.__pwned=1>", messages=[
            {"role": "user", "content": "<img src=x onerror=\"window.__pwned = 6\"> hi"},
            {"role": "assistant", "content": HOSTILE_REPLY},
        ])
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    log_in(page, url)
    page.goto(f"{url}/#/c/{conv.id}")
    page.reload()
    page.wait_for_selector(".msg.assistant")
    time.sleep(0.3)  # give any injected handler the chance to run

    assert page.evaluate("window.__pwned") is None
    assert page.locator("#messages img, #messages script, #conversation-list img").count() == 0
    body = page.locator(".msg.assistant .msg-body")
    text = body.inner_text()
    assert "<script>window.__pwned = 2</script>" in text and 'onerror="window.__pwned = 3"' in text
    assert body.locator("strong").inner_text() == "bold"
    assert body.locator("code").first.inner_text() == "<b>code</b>"
    assert body.locator("pre code").inner_text() == "<script>window.__pwned = 5</script>"
    assert body.locator("a").count() == 1  # the https link only; javascript: stays text
    assert body.locator("a").get_attribute("href") == "https://example.com/a_b_c"
    assert page.locator(".msg.user .msg-body").inner_text().startswith("<img src=x")
    assert page.locator(f".conv-item[data-id='{conv.id}'] .conv-title").inner_text() == \
        "<img src=x onerror=window.__pwned=1>"

    # The renderer itself, on the cases a model is likely to produce.
    html = page.evaluate("""async () => {
        const {renderMarkdown} = await import('/static/markdown.js');
        return [
          renderMarkdown('- a\\n- **b**\\n\\n1. x\\n2. y'),
          renderMarkdown('say "hi" & <b>'),
          renderMarkdown('```py\\nprint(1)'),
        ];
    }""")
    assert html[0] == "<ul><li>a</li><li><strong>b</strong></li></ul>\n<ol><li>x</li><li>y</li></ol>"
    assert html[1] == "<p>say &quot;hi&quot; &amp; &lt;b&gt;</p>"
    assert "<code class=\"lang-py\">print(1)</code>" in html[2]  # an open fence (still streaming)
    shot(page, "hostile-text", tmp_path)

    # Report the reply as untrue from its report panel.
    page.click(".msg.assistant .act-report")
    page.click(".report-panel .report-kind[data-kind='untrue']")
    page.fill(".report-panel .report-comment", "it claims things")
    page.click(".report-panel .report-submit")
    page.wait_for_selector(".msg.assistant .thanks:has-text('Reported')")
    (report,) = store.list_reports(message_id=conv.messages[1].id)
    assert (report.kind, report.comment, report.user_id) == ("untrue", "it claims things", user.id)
    page.close()


def test_stop_button_and_edit_branch(browser, site, tmp_path):
    url, store, user = site
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    log_in(page, url)
    page.click("#new-chat")
    page.click("#settings-toggle")
    page.fill("#set-max_tokens", "2000")
    page.click("#settings-save")
    page.fill("#composer-input", "Write a very long story")
    page.keyboard.press("Enter")
    page.wait_for_selector(".msg.assistant.streaming")
    page.wait_for_function("() => document.querySelector('.msg.assistant .msg-body').textContent.length > 20")
    page.click("#stop")
    wait_idle(page)
    assert page.locator(".msg.assistant .msg-note").inner_text() == "Stopped"
    conv_id = int(page.evaluate("location.hash").rsplit("/", 1)[1])
    reply = store.get_conversation(conv_id).messages[1]
    assert reply.meta["finish_reason"] == "cancelled" and 0 < reply.meta["completion_tokens"] < 2000

    # Edit the question: a new branch with its own reply; the old one is a flip away.
    page.click(".msg.user .act-edit")
    page.fill(".edit-box .edit-input", "Write a short story instead")
    page.fill("#set-max_tokens", "8")
    page.click("#settings-save")
    page.wait_for_selector("#settings-status:has-text('Saved')")
    page.click(".edit-box .edit-submit")
    page.wait_for_selector(".msg.user .sib-count:has-text('2 / 2')")
    wait_idle(page)
    assert page.locator(".msg.user .msg-body").inner_text() == "Write a short story instead"
    page.click(".msg.user .sib-prev")
    assert page.locator(".msg.user .msg-body").inner_text() == "Write a very long story"
    assert page.locator(".msg.assistant .msg-note").inner_text() == "Stopped"
    conv = store.get_conversation(conv_id)
    users = [m for m in conv.messages if m.role == "user"]
    assert [m.parent_id for m in users] == [None, None]  # siblings at the root
    assert len(conv.children(users[1].id)) == 1
    shot(page, "stop-and-edit", tmp_path)
    page.close()


def test_login_returns_to_a_same_origin_next_page_only(browser, site):
    url, _, _ = site
    for target, expected in (("/workspace", "/workspace"), ("//example.com/x", "/")):
        context = browser.new_context()  # no session cookie yet
        page = context.new_page()
        page.goto(f"{url}/?next={target}")
        page.fill("#login-username", "alice")
        page.fill("#login-password", PASSWORD)
        page.click("#login-submit")
        if expected == "/":
            page.wait_for_selector("#app-view:not([hidden])")
        else:
            page.wait_for_url(f"{url}{expected}")
        assert page.url.split("?")[0] == url + expected
        context.close()


def test_moderation_block_report_rename_and_delete(browser, site):
    url, store, user = site
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    log_in(page, url)
    page.click("#new-chat")
    text = "Give me step by step instructions to build a pipe bomb"
    page.fill("#composer-input", text)
    page.keyboard.press("Enter")
    page.wait_for_selector(".msg.assistant .msg-note.blocked")
    wait_idle(page)
    assert "withheld by moderation" in page.locator(".msg.assistant .msg-note").inner_text()
    # A blocked reply offers exactly one report: the block was wrong.
    page.click(".msg.assistant .act-report")
    kinds = page.locator(".report-panel .report-kind").evaluate_all("els => els.map(e => e.dataset.kind)")
    assert kinds == ["moderation_false_positive"]
    page.click(".report-panel .report-submit")
    page.wait_for_selector(".msg.assistant .thanks")
    (report,) = store.list_reports(kind="moderation_false_positive")
    assert report.text == text and report.user_id == user.id

    # Rename from the sidebar, then delete (confirming the dialog).
    conv_id = int(page.evaluate("location.hash").rsplit("/", 1)[1])
    item = page.locator(f".conv-item[data-id='{conv_id}']")
    item.hover()
    item.locator(".conv-rename-btn").click()
    page.fill(".conv-rename", "Moderation check")
    page.keyboard.press("Enter")
    page.wait_for_selector(f".conv-item[data-id='{conv_id}'] .conv-title:has-text('Moderation check')")
    assert store.get_conversation(conv_id).title == "Moderation check"
    assert page.locator("#chat-title").inner_text() == "Moderation check"
    page.once("dialog", lambda d: d.accept())
    item.hover()
    item.locator(".conv-delete-btn").click()
    page.wait_for_selector(f".conv-item[data-id='{conv_id}']", state="detached")
    assert store.get_conversation(conv_id) is None
    assert page.locator(".empty").is_visible()  # back to a new chat
    page.close()


def test_hash_links_and_back_switch_conversations(browser, site):
    url, store, user = site
    first = store.create_conversation(user.id, title="first thread", messages=[
        {"role": "user", "content": "one"}, {"role": "assistant", "content": "reply one"}])
    second = store.create_conversation(user.id, title="second thread", messages=[
        {"role": "user", "content": "two"}, {"role": "assistant", "content": "reply two"}])
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    log_in(page, url)
    page.goto(f"{url}/#/c/{first.id}")  # same document: only the hash changes
    page.wait_for_selector(".msg.assistant .msg-body:has-text('reply one')")
    page.goto(f"{url}/#/c/{second.id}")
    page.wait_for_selector(".msg.assistant .msg-body:has-text('reply two')")
    assert page.locator("#chat-title").inner_text() == "second thread"
    page.go_back()
    page.wait_for_selector(".msg.assistant .msg-body:has-text('reply one')")
    assert page.locator("#chat-title").inner_text() == "first thread"
    page.close()
