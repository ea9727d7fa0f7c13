"""Dynamic batching of concurrent requests into one synchronous engine.

Consumes ``chatrlhf.engine.Engine`` (synchronous, not thread-safe) and produces, per submitted
request, an asyncio stream of ``TokenEvent``s followed by the final ``Completion``s.

One worker thread owns the engine. It waits for a request, gathers whatever else arrives within
``batch_wait_s`` (up to ``max_batch_size`` rows), and runs them as one ``engine.stream`` batch;
requests that arrive while a batch runs form the next batch. Each token event goes back to its
request's asyncio queue through ``loop.call_soon_threadsafe``, so the event loop never blocks on the
model. A request cancelled by its client (disconnect) has its rows cancelled in the running batch
with ``gen.cancel(row)``, which frees the engine for everyone else.

Why not continuous batching: the engine's ``stream`` takes a fixed set of rows, so a request that
arrives mid-batch waits for the batch to end (at most one reply's length).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

log = logging.getLogger(__name__)


class SchedulerBusy(RuntimeError):
    """Too many requests are waiting; the caller should retry later (HTTP 503)."""


class SchedulerStopped(RuntimeError):
    """The scheduler was shut down while the request waited or ran."""


@dataclass
class Token:
    index: int  # which of the request's rows (choice index)
    event: Any  # the engine's TokenEvent


@dataclass
class Done:
    completions: list[Any]  # the engine's Completion per row, in row order


@dataclass
class Failed:
    error: BaseException


@dataclass
class Submission:
    """One request's rows (n > 1 gives several), and the queue its results flow back through."""

    prompts: list[list[int]]
    params: list[Any]
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    # Written by the event loop, read by the worker; plain values are enough under the GIL.
    cancelled: bool = False  # every row
    cancelled_rows: set[int] = field(default_factory=set)  # some rows (e.g. moderation stopped one)
    submitted_at: float = field(default_factory=time.monotonic)

    @property
    def n(self) -> int:
        return len(self.prompts)

    def cancel(self, index: int | None = None) -> None:
        """Stop all rows, or only row ``index``; the engine frees them at its next step."""
        if index is None:
            self.cancelled = True
        else:
            self.cancelled_rows = self.cancelled_rows | {index}

    def push(self, item: Token | Done | Failed) -> None:
        """Called from the worker thread."""
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancelled = True

    async def events(self) -> AsyncIterator[Token | Done | Failed]:
        while True:
            item = await self.queue.get()
            yield item
            if not isinstance(item, Token):
                return


class BatchScheduler:
    def __init__(
        self,
        engine: Any,
        *,
        max_batch_size: int = 16,
        batch_wait_s: float = 0.02,
        max_waiting: int = 256,
    ) -> None:
        self.engine = engine
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_s
        self.max_waiting = max_waiting
        self._inbox: queue.Queue[Submission | None] = queue.Queue()
        self._carry: Submission | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.batches_run = 0  # for tests and stats: how many engine batches ran
        self.max_rows_seen = 0  # the widest batch so far

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="engine-worker", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        self._inbox.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        # Anything still queued will never run: tell its waiters.
        while True:
            try:
                sub = self._inbox.get_nowait()
            except queue.Empty:
                break
            if sub is not None:
                sub.push(Failed(SchedulerStopped("server is shutting down")))

    # -- submitting (event loop side) --------------------------------------------------------
    def submit(self, prompts: list[list[int]], params: list[Any]) -> Submission:
        """Queue one request's rows; must be called from the running event loop."""
        if self._stopping or self._thread is None:
            raise SchedulerStopped("the engine worker is not running")
        if self._inbox.qsize() >= self.max_waiting:
            raise SchedulerBusy(f"{self.max_waiting} requests are already waiting")
        if len(prompts) > self.max_batch_size:
            raise ValueError(f"a request may have at most {self.max_batch_size} rows")
        sub = Submission(prompts=prompts, params=params, loop=asyncio.get_running_loop())
        self._inbox.put(sub)
        return sub

    # -- worker thread ----------------------------------------------------------------------
    def _next_batch(self) -> list[Submission] | None:
        first = self._carry if self._carry is not None else self._inbox.get()
        self._carry = None
        if first is None:
            return None
        batch, rows = [first], first.n
        deadline = time.monotonic() + self.batch_wait_s
        while rows < self.max_batch_size:
            try:
                sub = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if sub is None:  # stop after this batch
                self._inbox.put(None)
                break
            if rows + sub.n > self.max_batch_size:
                self._carry = sub
                break
            batch.append(sub)
            rows += sub.n
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            live = [s for s in batch if not s.cancelled]
            if live:
                self._run_batch(live)

    def _run_batch(self, subs: list[Submission]) -> None:
        prompts: list[list[int]] = []
        params: list[Any] = []
        owner: list[tuple[Submission, int]] = []
        for s in subs:
            for i in range(s.n):
                prompts.append(s.prompts[i])
                params.append(s.params[i])
                owner.append((s, i))
        self.batches_run += 1
        self.max_rows_seen = max(self.max_rows_seen, len(prompts))
        cancelled_sent: set[int] = set()  # batch rows already cancelled in the engine
        try:
            gen = self.engine.stream(prompts, params)
            for ev in gen:
                s, i = owner[ev.row]
                if not s.cancelled and i not in s.cancelled_rows:
                    s.push(Token(i, ev))
                self._cancel_rows(gen, subs, owner, cancelled_sent)
            results = gen.results
        except Exception as e:  # the engine failed: every request in the batch gets the error
            log.exception("engine batch failed")
            for s in subs:
                s.push(Failed(e))
            return
        for s in subs:
            s.push(Done([results[r] for r, (o, _) in enumerate(owner) if o is s]))

    def _cancel_rows(
        self, gen: Any, subs: list[Submission], owner: list[tuple[Submission, int]], sent: set[int]
    ) -> None:
        if self._stopping:
            for s in subs:
                s.cancelled = True
        if not any(s.cancelled or s.cancelled_rows for s in subs):
            return
        for r, (s, i) in enumerate(owner):
            if r not in sent and (s.cancelled or i in s.cancelled_rows):
                sent.add(r)
                gen.cancel(r)
