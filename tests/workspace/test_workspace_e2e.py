"""End to end in headless Chromium: a trainer logs in, writes a two-turn demonstration using one
model suggestion, ranks a K=4 task (keyboard, drag, tie, flag); the export yields exactly those
records and the reward stage trains on them with the tiny model."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time

import pytest
from click.testing import CliRunner

from chatrlhf import workspace as ws
from chatrlhf.schema import Conversation, Ranking, read_jsonl

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
PASSWORD = "correct-horse-1"
# Model and user text must reach the page as text: this prompt would run script if it were markup.
PROMPT = 'How do I keep basil alive? <img src=x onerror="window.__pwned=1">'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A real server (tiny model, SQLite file) on a loopback port, in a background thread."""
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"Debian chromium not installed at {CHROMIUM}")
    pytest.importorskip("playwright")
    import uvicorn

    from chatrlhf.server.launch import ServeConfig, build_app
    from chatrlhf.store import Store

    db = tmp_path_factory.mktemp("e2e") / "ws.db"
    store = Store(str(db))
    store.upgrade()
    store.create_user("ann", PASSWORD, "trainer")
    store.create_user("root", PASSWORD, "admin")
    port = _free_port()  # the config names the bound port: the Host allow-list is built from it
    app = build_app(ServeConfig(model="tiny", moderation="off", port=port), store=store)
    app.state.workspace_max_tokens = 12  # suggestions from a random model: short is enough
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", store, str(db)
    server.should_exit = True
    thread.join(timeout=10)
    store.dispose()


def _admin_creates_a_k4_task(base: str, store) -> int:
    """Through the admin API: upload a prompt list, then sample K=4 completions with the model."""
    import httpx

    key = store.create_api_key("admin-key", user_id=store.get_user_by_name("root").id)
    h = {"Authorization": f"Bearer {key}"}
    r = httpx.post(f"{base}/api/workspace/admin/prompts", headers=h, timeout=30,
                   json={"name": "e2e", "text": json.dumps(PROMPT) + "\n"})
    assert r.status_code == 200, r.text
    r = httpx.post(f"{base}/api/workspace/admin/tasks", headers=h, timeout=120,
                   json={"source": "prompt_list", "list_id": r.json()["id"], "k": 4, "required": 1, "max_tokens": 12})
    assert r.status_code == 200, r.text
    (tid,) = r.json()["created"]
    return tid


def _write_demo(page, base):
    page.wait_for_selector("#turns textarea")
    turns = page.locator("#turns textarea")
    turns.nth(0).fill("What should I pack for a day hike?")
    page.click("#add-assistant")
    page.select_option("select[aria-label='Number of suggestions']", "2")
    page.click("button.suggest")
    page.wait_for_selector(".suggestion", timeout=60_000)
    assert page.locator(".suggestion").count() == 2
    suggestion = page.locator(".suggestion .text").nth(1).inner_text()
    page.click("text=Use suggestion 2")
    assert turns.nth(1).input_value() == (suggestion if suggestion != "(empty)" else "")
    turns.nth(1).fill(turns.nth(1).input_value() + " Water, snacks and a map.")
    page.click("#add-user")
    turns.nth(2).fill("And for a rainy day?")
    page.click("#add-assistant")
    turns.nth(3).fill("Add a rain jacket and dry socks.")
    page.wait_for_selector("#save-status:has-text('saved')")
    return suggestion


def _rank(page, base, tid):
    page.goto(f"{base}/workspace/rank")
    page.wait_for_selector(".rank-item")
    assert page.locator(".rank-item").count() == 4
    assert page.locator("#task-id").inner_text() == f"task #{tid}"
    assert page.locator("#prefix .msg .text").inner_text() == PROMPT
    assert page.evaluate("window.__pwned") is None and page.locator("#prefix img").count() == 0
    items = page.locator(".rank-item")
    start = [int(items.nth(i).get_attribute("data-pos")) for i in range(4)]
    assert start == [0, 1, 2, 3]
    items.nth(2).focus()
    page.keyboard.press("ArrowUp")  # keyboard: position 2 moves to second place
    page.keyboard.press("ArrowUp")  # ... and to the top
    page.locator(".rank-item[data-pos='3']").drag_to(page.locator(".rank-item[data-pos='0']"))  # drag: 3 above 0
    page.locator(".rank-item[data-pos='0']").focus()
    page.keyboard.press("t")  # tie 0 with the reply above it (3)
    page.locator(".rank-item[data-pos='1'] .flag-untruthful").check()
    order = [int(items.nth(i).get_attribute("data-pos")) for i in range(4)]
    assert order == [2, 3, 0, 1], order
    assert "tied" in page.locator(".rank-item[data-pos='0']").get_attribute("class")
    page.fill("#comment", "1 looks made up")
    page.click("#submit-ranking")
    page.wait_for_selector(f"#rank-status:has-text('Ranking for task #{tid} saved')")
    page.wait_for_selector("#empty:not([hidden])")  # the only task is done


@pytest.mark.slow
def test_trainer_demo_and_ranking_then_export_and_reward_training(live, tmp_path):
    from playwright.sync_api import sync_playwright

    from chatrlhf.cli import cli
    from chatrlhf.reward import RewardConfig, run

    base, store, db = live
    tid = _admin_creates_a_k4_task(base, store)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        # 1. log in through the chat UI's form, having been sent there by the workspace
        page.goto(f"{base}/workspace/demo")
        assert "/?next=/workspace/demo" in page.url
        page.fill("#login-username", "ann")
        page.fill("#login-password", PASSWORD)
        page.click("#login-submit")
        page.wait_for_url(f"{base}/workspace/demo")  # the login form honours ?next=
        # 2. a two-turn demonstration, with one model suggestion picked and edited
        suggestion = _write_demo(page, base)
        (draft,) = ws.list_demos(store, store.get_user_by_name("ann").id, "draft")  # autosaved
        assert draft.messages[2]["content"] == "And for a rainy day?"
        page.click("#submit-demo")
        page.wait_for_selector("#demo-error:has-text('submitted')")
        # 3. rank the K=4 task
        _rank(page, base, tid)
        browser.close()
    assert not errors, errors

    runner = CliRunner()
    r = runner.invoke(cli, ["export", "demos", "--to", str(tmp_path / "demos.jsonl"), "--db", db])
    assert r.exit_code == 0, r.output
    (demo,) = read_jsonl(tmp_path / "demos.jsonl", Conversation)
    assert [m["role"] for m in demo.messages] == ["user", "assistant", "user", "assistant"]
    assert demo.messages[1]["content"] == (suggestion.strip() + " Water, snacks and a map.").strip()
    assert demo.meta["trainer"] == "ann" and demo.meta["suggestions_used"] == {"1": 1}
    r = runner.invoke(cli, ["export", "rankings", "--to", str(tmp_path / "rankings.jsonl"), "--db", db])
    assert r.exit_code == 0, r.output
    (rk,) = read_jsonl(tmp_path / "rankings.jsonl", Ranking)
    assert rk.prefix == [{"role": "user", "content": PROMPT}]
    assert len(rk.completions) == 4 and rk.annotator == "ann"
    assert rk.ranks == [1, 2, 0, 1]  # order 2 > 3 = 0 > 1 (position -> rank)
    assert rk.flags == {1: ["untruthful"]} and not rk.all_unacceptable
    assert rk.meta["task_id"] == tid and rk.meta["models"] == ["tiny"] * 4

    result = run(RewardConfig(model="tiny", rankings=[str(tmp_path / "rankings.jsonl")],
                              demos=str(tmp_path / "demos.jsonl"), out_dir=str(tmp_path / "reward"),
                              heldout_frac=0.0, epochs=2, batch_rankings=1, max_length=64, dtype="float32"))
    assert result["train_rankings"] == 1 and result["steps"] == 2
    assert result["final_loss"] == result["final_loss"]  # not NaN
    assert (tmp_path / "reward" / "scalar_head.safetensors").exists()


@pytest.mark.slow
def test_tasks_create_cli_samples_alternatives_to_a_recorded_reply(live):
    """`chatrlhf tasks create` with the real engine: the recorded reply plus K-1 tiny-model samples."""
    from chatrlhf.cli import cli

    _, store, db = live
    user = store.create_user("chatter", PASSWORD)
    store.create_conversation(user.id, messages=[
        {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Teal.", "model_version": "v7"}])
    r = CliRunner().invoke(cli, ["tasks", "create", "-k", "4", "--required", "2", "--model", "tiny",
                                 "--max-tokens", "8", "--seed", "0", "--db", db])
    assert r.exit_code == 0, r.output
    tid = int(r.output.split("created task ")[1].split()[0])
    detail = ws.task_detail(store, tid)
    assert detail["prefix"] == [{"role": "user", "content": "Name a colour."}] and detail["required"] == 2
    models = sorted(c["model"] for c in detail["completions"])
    assert models == ["tiny", "tiny", "tiny", "v7"]
    assert {"text": "Teal.", "model": "v7"} in detail["completions"]
