"""A fake engine with the real engine's streaming interface, for service-level tests.

Reply ``k`` of a batch is the words ``w0 w1 w2 ...`` (one token each, "tokens" are word ids);
it honours max_new_tokens, stop strings (cut before the stop), ``gen.cancel(row)``, fails the
whole batch on a seed past 64 bits (as torch does), and a per-step delay so that requests overlap in time. It records every batch it ran and every row
that was cancelled, so tests can assert on batching and cancellation.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from chatrlhf.engine import Completion, TokenEvent


@dataclass
class FakeEngine:
    step_s: float = 0.002
    words: list[str] = field(default_factory=lambda: [f"w{i} " for i in range(1000)])
    batches: list[int] = field(default_factory=list)  # rows per stream() call
    lengths: list[list[int]] = field(default_factory=list)  # prompt lengths per stream() call
    cancelled_rows: list[int] = field(default_factory=list)
    fail: bool = False
    started: threading.Event = field(default_factory=threading.Event)

    def stream(self, prompts, params):
        if self.fail:
            raise RuntimeError("fake engine failure")
        self.batches.append(len(prompts))
        self.lengths.append(sorted(len(p) for p in prompts))
        return _FakeGen(self, prompts, params)


class _FakeGen:
    def __init__(self, engine: FakeEngine, prompts, params):
        self.engine, self.prompts, self.params = engine, prompts, params
        self.cancelled: set[int] = set()
        self.results: list[Completion] = []

    def cancel(self, row: int) -> None:
        self.cancelled.add(row)

    def __iter__(self):
        n = len(self.prompts)
        texts = [""] * n
        toks: list[list[int]] = [[] for _ in range(n)]
        done: dict[int, Completion] = {}
        step = 0
        for p in self.params:  # as torch.Generator.manual_seed does, on the batch's first step
            if p.seed is not None and not -(2**63) <= p.seed < 2**64:
                raise RuntimeError("Overflow when unpacking long long")
        self.engine.started.set()
        while len(done) < n:
            time.sleep(self.engine.step_s)
            for r in range(n):
                if r in done:
                    continue
                p = self.params[r]
                word = self.engine.words[step % len(self.engine.words)]
                toks[r].append(step)
                new = texts[r] + word
                reason = None
                hits = [new.find(s) for s in p.stop if s in new]
                if hits:
                    new, reason = new[: min(hits)], "stop"
                elif r in self.cancelled:
                    reason = "cancelled"
                    self.engine.cancelled_rows.append(r)
                elif len(toks[r]) >= p.max_new_tokens:
                    reason = "length"
                delta = new[len(texts[r]) :]
                texts[r] = new
                yield TokenEvent(r, step, -1.0, delta, reason)
                if reason:
                    done[r] = Completion(toks[r], [-1.0] * len(toks[r]), texts[r], reason)
            step += 1
        self.results = [done[r] for r in range(n)]
