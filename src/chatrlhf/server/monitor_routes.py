"""Admin API for monitoring: ``GET /api/admin/monitor?days=N&bucket=day|hour`` (admin role).

Consumes ``app.state.store``; returns ``deploy.monitor.metrics`` (computed per request: SQL
aggregates over the window, the arena picks made in it as ``arena``) and ``deploy.topics`` (labels and counts only). Topics cost MiniLM
embeddings, so they never hold up a page load: ``TopicsCache`` keeps the last result per window
for ``ttl_s`` and refreshes it in one worker thread; while none is ready the answer's
``topics.status`` is ``"computing"`` (the page polls), and a stale one is served while it
refreshes (``topics.status`` ``"stale"``). Embeddings are cached by text, so a refresh embeds only
the conversations that arrived since.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from .auth import require_role
from .errors import APIError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/admin/monitor", tags=["admin"])
admin = require_role("admin")


class TopicsCache:
    """The topics of each window (rounded to the bucket), refreshed in the background."""

    def __init__(self, store: Any, cfg: Any = None, ttl_s: float = 300.0) -> None:
        from chatrlhf.deploy.topics import EmbeddingCache, TopicConfig

        self.store, self.cfg, self.ttl_s = store, cfg or TopicConfig(), ttl_s
        self.embeddings = EmbeddingCache()
        self._results: dict[float, tuple[float, dict[str, Any]]] = {}  # days -> (monotonic, topics)
        self._running: threading.Thread | None = None
        self._error: str | None = None
        self._lock = threading.Lock()

    def get(self, days: float, since: Any, until: Any) -> dict[str, Any]:
        with self._lock:
            done = self._results.get(days)
            fresh = done is not None and time.monotonic() - done[0] < self.ttl_s
            if not fresh and self._running is None:
                self._running = threading.Thread(target=self._compute, args=(days, since, until),
                                                 name="monitor-topics", daemon=True)
                self._running.start()
        if done is None:
            return {"status": "error" if self._error else "computing", "error": self._error, "topics": []}
        return {**done[1], "status": "ready" if fresh else "stale",
                "age_s": round(time.monotonic() - done[0], 1)}

    def _compute(self, days: float, since: Any, until: Any) -> None:
        from chatrlhf.deploy.topics import topics

        t0 = time.perf_counter()
        try:
            out = topics(self.store, since, until, self.cfg, self.embeddings)
            out["seconds"] = round(time.perf_counter() - t0, 2)
            with self._lock:
                self._results[days] = (time.monotonic(), out)
                self._error = None
        except Exception as e:  # the page shows it; metrics stay available
            log.exception("monitor topics failed")
            self._error = f"{type(e).__name__}: {e}"
        finally:
            with self._lock:
                self._running = None


def topics_cache(app: Any) -> TopicsCache:
    cache = getattr(app.state, "monitor_topics", None)
    if cache is None or cache.store is not app.state.store:
        cache = app.state.monitor_topics = TopicsCache(app.state.store)
    return cache


@router.get("")
async def monitor(request: Request, days: float = Query(14, gt=0, le=366),
                  bucket: str = Query("day", pattern="^(day|hour)$"),
                  user: Any = Depends(admin)) -> dict[str, Any]:
    from chatrlhf.deploy import monitor as M

    store = request.app.state.store
    if store is None:
        raise APIError(503, "monitoring needs a database (start the server with --db)")
    t0 = time.perf_counter()
    out = await run_in_threadpool(M.metrics, store, days, bucket)
    # The topics of the same window, as of their last refresh (at most ttl_s old).
    out["topics"] = topics_cache(request.app).get(days, *M.window(days))
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out
