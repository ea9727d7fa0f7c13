"""Long prompts beside chat turns: they batch apart, and a chunked prefill lets others decode."""

from __future__ import annotations

import asyncio
import time

from chatrlhf.engine import Engine, SamplingParams
from chatrlhf.server.scheduler import BatchScheduler, Done, Token

from server_fakes import FakeEngine


async def _collect(sched: BatchScheduler, prompts, params, log: list, name: str):
    sub = sched.submit(prompts, params)
    async for item in sub.events():
        kind = "token" if isinstance(item, Token) else type(item).__name__
        log.append((time.monotonic(), name, kind))
        if not isinstance(item, Token):
            return item


def _run(sched, jobs):
    log: list = []

    async def main():
        return await asyncio.gather(*[_collect(sched, p, q, log, name) for name, p, q in jobs])

    sched.start()
    try:
        return asyncio.run(main()), log
    finally:
        sched.stop()


def test_a_long_prompt_gets_its_own_batch_and_close_lengths_share_one():
    engine = FakeEngine(step_s=0.001)
    sched = BatchScheduler(engine, max_batch_size=8, batch_wait_s=0.2)
    p = SamplingParams(max_new_tokens=3)
    jobs = [("a", [[1] * 40], [p]), ("long", [[1] * 4000], [p]), ("b", [[1] * 200], [p]),
            ("c", [[1] * 10], [p]), ("mid", [[1] * 700], [p]), ("mid2", [[1] * 1300], [p])]
    results, _ = _run(sched, jobs)
    assert all(isinstance(r, Done) for r in results)
    # 10..200 differ by <= 256 tokens; 700 and 1300 are within 2x; 4000 is near nothing.
    assert sorted(engine.lengths) == [[10, 40, 200], [700, 1300], [4000]]


def test_prompts_within_the_slack_always_share_a_batch():
    engine = FakeEngine(step_s=0.001)
    sched = BatchScheduler(engine, max_batch_size=8, batch_wait_s=0.2, pad_slack=0, pad_ratio=1.0)
    p = SamplingParams(max_new_tokens=2)
    _run(sched, [("a", [[1] * 5], [p]), ("b", [[1] * 5], [p]), ("c", [[1] * 6], [p])])
    assert sorted(engine.lengths) == [[5, 5], [6]]


def test_short_requests_finish_while_a_long_prompt_is_still_prefilled(tiny):
    model, tok = tiny
    engine = Engine(model, tok, max_batch_size=8, prefill_chunk=8)
    sched = BatchScheduler(engine, max_batch_size=8, batch_wait_s=0.0)
    long = [5 + i % 50 for i in range(1200)]  # 150 chunks
    short = [5, 6, 7, 8]
    greedy = SamplingParams(max_new_tokens=4, temperature=0)
    results, log = _run(sched, [("long", [long], [greedy]), ("s1", [short], [greedy]),
                                ("s2", [short], [greedy])])
    assert all(isinstance(r, Done) for r in results)
    first_long_token = min(t for t, name, kind in log if name == "long")
    shorts_done = [t for t, name, kind in log if name != "long" and kind == "Done"]
    assert len(shorts_done) == 2 and max(shorts_done) < first_long_token
    # and the chunked long row generated what an unchunked engine generates
    alone = Engine(model, tok).generate([long], greedy)[0]
    assert results[0].completions[0].token_ids == alone.token_ids
