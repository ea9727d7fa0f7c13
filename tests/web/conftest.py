"""Fixtures for the web UI tests: a store with a user, a scripted engine, and live servers on
loopback (uvicorn in a thread, on a port the OS picks)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from chatrlhf.store import Store
from uvicorn_live import run_uvicorn as live_server  # noqa: F401  (test_e2e_chromium imports it from here)

PASSWORD = "correct horse battery"


@dataclass
class ScriptedEngine:
    """The engine's streaming interface with a scripted reply: row r emits ``words`` one per step.

    Records the prompts and sampling params of every batch and the rows it saw cancelled, so tests
    can check what reached the engine. ``gate`` (when set) holds every step until it is set.
    """

    words: list[str] = field(default_factory=lambda: [f"w{i} " for i in range(500)])
    step_s: float = 0.001
    prompts: list[list[int]] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    gate: threading.Event | None = None
    fail: bool = False

    def stream(self, prompts, params):
        if self.fail:
            raise RuntimeError("scripted engine failure")
        self.prompts.extend(prompts)
        self.params.extend(params)
        return _ScriptedGen(self, len(prompts), params)


class _ScriptedGen:
    def __init__(self, engine: ScriptedEngine, n: int, params: list[Any]) -> None:
        self.engine, self.n, self.params = engine, n, params
        self.to_cancel: set[int] = set()
        self.results: list[Any] = []

    def cancel(self, row: int) -> None:
        self.to_cancel.add(row)

    def __iter__(self):
        from chatrlhf.engine import Completion, TokenEvent

        texts, done = [""] * self.n, {}
        step = 0
        while len(done) < self.n:
            if self.engine.gate is not None:
                self.engine.gate.wait(10)
            time.sleep(self.engine.step_s)
            for r in range(self.n):
                if r in done:
                    continue
                word = self.engine.words[step % len(self.engine.words)]
                reason = None
                if r in self.to_cancel:
                    reason, word = "cancelled", ""
                    self.engine.cancelled.append(r)
                elif step + 1 >= self.params[r].max_new_tokens or step + 1 >= len(self.engine.words):
                    reason = "length"
                texts[r] += word
                yield TokenEvent(r, step, -1.0, word, reason)
                if reason:
                    done[r] = Completion(list(range(step + 1)), [-1.0] * (step + 1), texts[r], reason)
            step += 1
        self.results = [done[r] for r in range(self.n)]


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    s = Store(str(tmp_path / "web.db"))
    s.upgrade()
    yield s
    s.dispose()


@pytest.fixture
def alice(store):
    return store.create_user("alice", PASSWORD)


@pytest.fixture(scope="session")
def tokenizer():
    from chatrlhf.models import load_tokenizer

    return load_tokenizer("tiny")


def make_app(engine: Any, tokenizer: Any, store: Store, *, model_name: str = "scripted") -> Any:
    from chatrlhf.moderation import moderate
    from chatrlhf.server.app import create_app
    from chatrlhf.server.scheduler import BatchScheduler
    from chatrlhf.server.service import ChatService

    scheduler = BatchScheduler(engine, max_batch_size=8, batch_wait_s=0.005)
    service = ChatService(scheduler, tokenizer, model_name=model_name, moderation=moderate,
                          store=store)
    app = create_app(service, store=store, moderation=moderate)
    if not any(getattr(r, "path", "") == "/api/login" for r in app.routes):
        from chatrlhf.server.web import router  # create_app does not include the UI yet

        app.include_router(router)
    return app


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture
def server(engine, tokenizer, store, alice) -> Iterator[str]:
    with live_server(make_app(engine, tokenizer, store)) as url:
        yield url


# ---- headless Chromium for the browser tests (Debian's chromium, driven by Playwright)
CHROMIUM = os.environ.get("CHATRLHF_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()
