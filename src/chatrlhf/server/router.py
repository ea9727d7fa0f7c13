"""Which model version serves a request, and moving to another one without a restart.

Consumes the registry's deployment log (``store.current_deployment()``, written by
``chatrlhf models promote|rollback|split`` or the admin API) and a ``loader`` that turns a
registered ``ModelVersion`` into a ``Backend`` (its own engine and batching scheduler). Produces,
per request, the ``Backend`` to run it on.

- A request naming the served alias (``chatrlhf serve``'s model name) or no model gets the
  deployed version, or under a traffic split a version drawn by weight. The draw is sticky per
  user (a hash of the user id), so one person sees one version of an A/B test.
- A request naming a registered version gets that version; one not loaded yet is loaded first
  (at most ``max_loaded`` versions stay in memory; the least recently used idle one goes).
- A new deployment is applied by loading what it needs in a worker thread *first*, then switching
  in one assignment: requests already running keep their backend (its scheduler drains), new ones
  go to the new version. The version served before stays loaded, so a rollback is a switch, not a
  load. Backends no deployment needs are stopped once nothing runs on them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import APIError

log = logging.getLogger(__name__)


@dataclass
class Backend:
    version: str
    scheduler: Any  # BatchScheduler
    tokenizer: Any
    context_length: int | None = None
    inflight: int = 0  # requests submitted and not finished (event loop only)
    last_used: float = field(default_factory=time.monotonic)

    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()


def _bucket(key: str) -> float:
    """A stable number in [0, 1) for ``key``."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


class Router:
    def __init__(self, default: Backend, *, alias: str, store: Any = None,
                 loader: Callable[[Any], Backend] | None = None, max_loaded: int = 4,
                 poll_s: float = 1.0) -> None:
        self.alias = alias
        self.store = store
        self.loader = loader
        self.max_loaded = max(2, max_loaded)
        self.poll_s = poll_s
        self.backends: dict[str, Backend] = {default.version: default}
        self.default = default.version
        self.traffic: dict[str, float] = {}  # {version: weight}; {} = all to default
        self.previous: str | None = None
        self.deployment_id: int | None = None
        self.swaps: list[tuple[float, str]] = []  # (monotonic time, version): when defaults changed
        self._lock: asyncio.Lock | None = None
        self._task: asyncio.Task | None = None

    # -- picking ------------------------------------------------------------------------------
    @property
    def default_backend(self) -> Backend:
        return self.backends[self.default]

    def served(self, user_key: Any = None) -> Backend:
        """The backend for a request that names no version."""
        if self.traffic:
            total = sum(self.traffic.values())
            x = (_bucket(f"{user_key}") if user_key is not None else random.random()) * total
            for name, w in sorted(self.traffic.items()):
                if x < w and name in self.backends:
                    return self.backends[name]
                x -= w
        return self.default_backend

    def knows(self, name: str) -> bool:
        if name == self.alias or name in self.backends:
            return True
        return self.store is not None and self.loader is not None and self.store.get_model_version(name) is not None

    async def backend_for(self, model: str | None, user_key: Any = None) -> Backend:
        """The backend for a request's ``model``; 404 for a name that is neither the alias nor a
        registered version."""
        if not model or model == self.alias:
            be = self.served(user_key)
        elif model in self.backends:
            be = self.backends[model]
        else:
            mv = None
            if self.store is not None and self.loader is not None:
                mv = await asyncio.to_thread(self.store.get_model_version, model)
            if mv is None:
                raise APIError(404, f"The model {model!r} does not exist; this server serves "
                               f"{self.alias!r} and the registered versions (GET /v1/models).",
                               param="model", code="model_not_found")
            be = await self._ensure(mv)
        be.last_used = time.monotonic()
        return be

    # -- loading and swapping -----------------------------------------------------------------
    def _guard(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def _ensure(self, mv: Any) -> Backend:
        async with self._guard():
            if mv.name in self.backends:
                return self.backends[mv.name]
            if self.loader is None:
                raise APIError(503, "this server cannot load other versions", code="model_not_loaded")
            log.info("loading model version %s from %s", mv.name, mv.path)
            try:
                be = await asyncio.to_thread(self.loader, mv)
            except Exception as e:
                log.exception("could not load model version %s", mv.name)
                raise APIError(503, f"could not load model version {mv.name!r}: {e}",
                               code="model_not_loaded") from None
            be.start()
            self.backends[mv.name] = be
            self._retire()
            return be

    async def apply(self, deployment: Any) -> None:
        """Serve what ``deployment`` says; loads first, then switches at once."""
        names = [deployment.version, *sorted(deployment.traffic)]
        for name in dict.fromkeys(names):
            if name not in self.backends:
                mv = await asyncio.to_thread(self.store.get_model_version, name)
                if mv is None:
                    log.error("deployment %s names an unknown version %s", deployment.id, name)
                    return
                await self._ensure(mv)
        if deployment.version != self.default:
            self.previous = self.default
            self.swaps.append((time.monotonic(), deployment.version))
            log.info("now serving %s (was %s; %s)", deployment.version, self.default, deployment.action)
        self.default, self.traffic = deployment.version, dict(deployment.traffic)
        self.deployment_id = deployment.id
        self._retire()

    async def refresh(self) -> bool:
        """Apply the newest deployment if it is not the one served; True if it changed."""
        if self.store is None:
            return False
        d = await asyncio.to_thread(self.store.current_deployment)
        if d is None or d.id == self.deployment_id:
            self._retire()
            return False
        await self.apply(d)
        return True

    def _needed(self) -> set[str]:
        keep = {self.default, *self.traffic}
        if self.previous:
            keep.add(self.previous)  # for a rollback in seconds
        return keep

    def _retire(self) -> None:
        """Stop idle backends past ``max_loaded``, least recently used first."""
        spare = sorted((b for n, b in self.backends.items() if n not in self._needed()),
                       key=lambda b: b.last_used)
        while len(self.backends) > self.max_loaded and spare:
            be = spare.pop(0)
            if be.inflight:
                continue
            del self.backends[be.version]
            be.stop()
            log.info("unloaded model version %s", be.version)

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        for be in self.backends.values():
            be.start()
        if self.store is not None and self.loader is not None:
            try:
                await self.refresh()
            except Exception:
                log.exception("could not apply the registry's deployment; serving %s", self.default)
            self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.refresh()
            except Exception:  # a store hiccup must not end the follower
                log.exception("could not read the deployment log")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for be in list(self.backends.values()):
            be.stop()

    def status(self) -> dict[str, Any]:
        return {"default": self.default, "traffic": dict(self.traffic), "previous": self.previous,
                "deployment_id": self.deployment_id,
                "loaded": {n: {"inflight": b.inflight} for n, b in self.backends.items()}}
