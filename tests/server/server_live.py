"""Helpers for live-server tests: the real engine wrapped in a spy, uvicorn in a thread on a
free loopback port, and ``live_server`` that builds the whole app (tiny model, moderation, store)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from uvicorn_live import run_uvicorn


class SpyEngine:
    """The real engine, recording which rows were cancelled and how many tokens each batch made."""

    def __init__(self, engine: Any):
        self.engine = engine
        self.cancelled: list[int] = []
        self.tokens_per_batch: list[int] = []

    def stream(self, prompts, params):
        return _SpyGen(self, self.engine.stream(prompts, params))


class _SpyGen:
    def __init__(self, spy: SpyEngine, gen: Any):
        self.spy, self.gen = spy, gen

    def cancel(self, row: int) -> None:
        self.spy.cancelled.append(row)
        self.gen.cancel(row)

    @property
    def results(self):
        return self.gen.results

    def __iter__(self):
        n = 0
        for ev in self.gen:
            n += 1
            yield ev
        self.spy.tokens_per_batch.append(n)


@dataclass
class Live:
    url: str  # http://127.0.0.1:PORT
    app: Any
    store: Any
    spy: SpyEngine
    key: str  # a valid API key

    def client(self, key: str | None = None, **kw):
        from openai import OpenAI

        return OpenAI(base_url=self.url + "/v1", api_key=key or self.key, max_retries=0, **kw)


@contextlib.contextmanager
def live_server(tiny, url: str, *, no_auth: bool = False, batch_wait_s: float = 0.02):
    from chatrlhf.engine import Engine
    from chatrlhf.moderation import moderate
    from chatrlhf.server.app import create_app
    from chatrlhf.server.launch import register_model_version
    from chatrlhf.server.scheduler import BatchScheduler
    from chatrlhf.server.service import ChatService
    from chatrlhf.store import Store

    model, tok = tiny
    store = Store(url)
    store.upgrade()
    spy = SpyEngine(Engine(model, tok, max_batch_size=8))
    sched = BatchScheduler(spy, max_batch_size=8, batch_wait_s=batch_wait_s)
    version = register_model_version(store, "tiny", "tiny")
    service = ChatService(sched, tok, model_name="tiny", moderation=moderate, store=store,
                          context_length=model.config.max_position_embeddings,
                          model_version=version)
    app = create_app(service, store=store, moderation=moderate, no_auth=no_auth)
    key = store.create_api_key("tests")
    try:
        with run_uvicorn(app) as base:
            yield Live(base, app, store, spy, key)
    finally:
        store.dispose()
