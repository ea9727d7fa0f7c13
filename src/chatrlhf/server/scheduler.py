"""Dynamic batching of concurrent requests into one synchronous engine.

Consumes ``chatrlhf.engine.Engine`` (synchronous, not thread-safe) and produces, per submitted
request, an asyncio stream of ``TokenEvent``s followed by the final ``Completion``s.

One worker thread owns the engine. When idle it waits for a request, gathers the requests that
arrive with it (until ``batch_wait_s`` passes without a new one), and starts them as one
``engine.stream`` batch. Requests that arrive while batches run are gathered the same way between
decode steps and started as a new batch, and the worker steps the running batches in turn, one
decode step each (an ``engine.stream`` generation is a plain generator with its own KV cache, so
several can be interleaved in one thread). A late request therefore waits a step or two, not a
whole reply, though two small batches cost more than one merged batch would. ``max_batch_size``
bounds the rows of all running batches together and ``max_concurrent_batches`` their number.

Each token event goes back to its request's asyncio queue through ``loop.call_soon_threadsafe``,
so the event loop never blocks on the model. A request cancelled by its client (disconnect) has
its rows cancelled with ``gen.cancel(row)``, which frees them at the engine's next step.

Long prompts: every row of a batch pays for its longest prompt (left padding), so a request
joins a batch only if its prompt length is close to theirs (``pad_slack``, ``pad_ratio``); one
that is not starts its own batch beside them. An engine built with ``prefill_chunk`` prefills a
long prompt a chunk per step (``PrefillStep`` events), so the other batches keep decoding while
it is read instead of waiting for the whole prompt.

True continuous batching (new rows joining a running batch's KV cache) needs an engine API that
adds rows to a running generation; ``engine.stream`` takes a fixed set of rows.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterator

from ..engine import PrefillStep

log = logging.getLogger(__name__)

# A burst is gathered for at most this many batch_wait_s after its first request.
BURST_WAITS = 5


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
    # Set after a batch it was in failed before producing anything: it then runs in a batch of
    # its own, so one request's bad row fails that request, not its neighbours.
    solo: bool = False

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


@dataclass
class _Running:
    """One engine generation in flight and the requests whose rows it holds."""

    subs: list[Submission]
    owner: list[tuple[Submission, int]]  # batch row -> (request, its row index)
    gen: Any
    events: Iterator[Any]
    live: int  # rows that have not finished yet
    relayed: int = 0  # token events sent to requests so far
    sent: set[int] = field(default_factory=set)  # batch rows already cancelled in the engine


class BatchScheduler:
    def __init__(
        self,
        engine: Any,
        *,
        max_batch_size: int = 16,
        batch_wait_s: float = 0.02,
        max_concurrent_batches: int = 4,
        max_waiting: int = 256,
        pad_slack: int = 256,
        pad_ratio: float = 2.0,
    ) -> None:
        self.engine = engine
        self.pad_slack = pad_slack  # prompts this many tokens apart may always share a batch
        self.pad_ratio = pad_ratio  # ... and so may prompts within this ratio of each other
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_s
        self.max_concurrent_batches = max_concurrent_batches
        self.max_waiting = max_waiting
        self._inbox: queue.Queue[Submission | None] = queue.Queue()
        self._pending: list[Submission] = []  # taken from the inbox, not started yet
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.batches_run = 0  # for tests and stats: how many engine batches started
        self.max_rows_seen = 0  # the most rows running at once

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="engine-worker", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel what runs, fail what waits, and end the worker."""
        self._stopping = True
        self._inbox.put(None)  # wakes an idle worker
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        waiting, self._pending = list(self._pending), []
        while True:
            try:
                waiting.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        for sub in waiting:
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
    def _take(self, timeout: float | None) -> Submission | None:
        """The next request from the inbox (None: nothing within ``timeout``, or the stop signal)."""
        try:
            if timeout is None:
                return self._inbox.get()
            return self._inbox.get(timeout=timeout) if timeout > 0 else self._inbox.get_nowait()
        except queue.Empty:
            return None

    def _admit(self, idle: bool, free_rows: int) -> list[Submission]:
        """Requests for a new batch, or [] to keep stepping the running ones.

        A burst of requests should become one batch, not one batch each, so requests are held
        until no new one has arrived for ``batch_wait_s`` (at most ``BURST_WAITS`` times that
        since the first), or until they fill the free rows. Idle, the worker blocks for them;
        busy, it only collects arrivals between decode steps."""
        if idle and not self._pending:
            first = self._take(None)
            if first is None:
                return []
            self._pending.append(first)
            cap = first.submitted_at + BURST_WAITS * self.batch_wait_s
            while sum(p.n for p in self._pending) < free_rows:
                wait = min(self.batch_wait_s, cap - time.monotonic())
                sub = self._take(max(0.0, wait))
                if sub is None:
                    break
                self._pending.append(sub)
        while (sub := self._take(0)) is not None:
            self._pending.append(sub)
        self._pending = [p for p in self._pending if not p.cancelled]
        if not self._pending or self._stopping:
            return []
        now = time.monotonic()
        settled = (now - self._pending[-1].submitted_at >= self.batch_wait_s
                   or now - self._pending[0].submitted_at >= BURST_WAITS * self.batch_wait_s)
        if not idle and not settled and sum(p.n for p in self._pending) < free_rows:
            return []
        # The first waiting request starts the batch; later ones join if they fit the free rows
        # and the prompt lengths (left-padded to the longest) stay close. A request that does not
        # fit waits for the next batch, which runs beside this one.
        subs, rows, lo, hi = [], 0, 0, 0
        for sub in list(self._pending):
            if rows + sub.n > free_rows or (subs and (subs[0].solo or sub.solo)):
                if not subs:
                    break
                continue
            lengths = [len(p) for p in sub.prompts]
            new_lo, new_hi = (min(lo, *lengths), max(hi, *lengths)) if subs else (min(lengths), max(lengths))
            if subs and not self._lengths_close(new_lo, new_hi):
                continue
            self._pending.remove(sub)
            subs.append(sub)
            rows, lo, hi = rows + sub.n, new_lo, new_hi
        return subs

    def _lengths_close(self, lo: int, hi: int) -> bool:
        """May prompts of ``lo`` and ``hi`` tokens share a batch? Every row pays for the longest
        (padding), so a 30 KB prompt beside chat turns would make each of them cost as much as it
        (measured: four 10-token rows beside a 4096-token one took 70 s instead of 13 s)."""
        return hi - lo <= self.pad_slack or hi <= self.pad_ratio * lo

    def _loop(self) -> None:
        running: list[_Running] = []
        while not (self._stopping and not running):
            busy_rows = sum(b.live for b in running)
            if len(running) < self.max_concurrent_batches and busy_rows < self.max_batch_size:
                subs = self._admit(idle=not running, free_rows=self.max_batch_size - busy_rows)
                if subs:
                    batch = self._start(subs)
                    if batch is not None:
                        running.append(batch)
                        self.max_rows_seen = max(self.max_rows_seen, busy_rows + batch.live)
            for batch in list(running):
                if not self._step(batch):
                    running.remove(batch)

    def _start(self, subs: list[Submission]) -> _Running | None:
        prompts: list[list[int]] = []
        params: list[Any] = []
        owner: list[tuple[Submission, int]] = []
        for s in subs:
            for i in range(s.n):
                prompts.append(s.prompts[i])
                params.append(s.params[i])
                owner.append((s, i))
        try:
            gen = self.engine.stream(prompts, params)
        except Exception as e:
            self._isolate(subs, e)
            return None
        self.batches_run += 1
        return _Running(subs, owner, gen, iter(gen), live=len(prompts))

    def _step(self, b: _Running) -> bool:
        """Relay one decode step's events (one per live row); False once the batch is over."""
        try:
            for _ in range(max(1, b.live)):
                ev = next(b.events)
                if isinstance(ev, PrefillStep):  # one chunk of a long prompt is done: let the
                    break  # other batches step before the next chunk
                s, i = b.owner[ev.row]
                if ev.finish_reason is not None:
                    b.live -= 1
                if not s.cancelled and i not in s.cancelled_rows:
                    s.push(Token(i, ev))
                    b.relayed += 1
        except StopIteration:
            results = b.gen.results
            for s in b.subs:
                s.push(Done([results[r] for r, (o, _) in enumerate(b.owner) if o is s]))
            return False
        except Exception as e:
            if b.relayed == 0:
                self._isolate(b.subs, e)
            else:
                # Text was already streamed and the batch's state is gone: every request in it
                # fails (replaying the others would send their text twice).
                self._fail(b.subs, e)
            return False
        self._cancel_rows(b)
        return True

    def _isolate(self, subs: list[Submission], error: Exception) -> None:
        """A batch failed before it produced anything: a lone request gets the error; several
        are run again one per batch, so only the one whose row fails gets it."""
        if len(subs) == 1 or self._stopping:
            self._fail(subs, error)
            return
        log.warning("engine batch of %d requests failed (%r); retrying them one by one",
                    len(subs), error)
        for s in subs:
            s.solo = True
        self._pending[:0] = subs

    @staticmethod
    def _fail(subs: list[Submission], error: Exception) -> None:
        log.error("engine batch failed: %r", error)
        for s in subs:
            s.push(Failed(error))

    def _cancel_rows(self, b: _Running) -> None:
        if self._stopping:
            for s in b.subs:
                s.cancelled = True
        if not any(s.cancelled or s.cancelled_rows for s in b.subs):
            return
        for r, (s, i) in enumerate(b.owner):
            if r not in b.sent and (s.cancelled or i in s.cancelled_rows):
                b.sent.add(r)
                b.gen.cancel(r)
