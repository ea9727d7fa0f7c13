"""One trainer asking for their next task from two places at once (two tabs, or two server
replicas behind a load balancer) on PostgreSQL, where the calls really overlap: they must both
get the same task, never a 409 from the (task, trainer) unique row or two tasks held at once."""

from __future__ import annotations

import threading

from conftest import seeded_store, uid

from chatrlhf import workspace as ws

PREFIX = [{"role": "user", "content": "Name a colour."}]
CALLERS = 4
ROUNDS = 8


def test_one_trainers_simultaneous_next_task_calls_agree(pg_server):  # noqa: F811
    store = seeded_store(pg_server.new_database())
    try:
        ann = uid(store, "ann")
        for r in range(ROUNDS):
            # Tasks wanting two trainers: a second assignment of ann's would still fit.
            ws.create_task(store, PREFIX, [(f"answer {r}.{i}", "m") for i in range(4)], required=2)
        for _ in range(ROUNDS):
            got, errors = [], []
            together = threading.Barrier(CALLERS)

            def call() -> None:
                together.wait(30)
                try:
                    got.append(ws.next_task(store, ann).id)
                except Exception as e:  # noqa: BLE001  (collected and asserted below)
                    errors.append(repr(e))

            threads = [threading.Thread(target=call) for _ in range(CALLERS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert errors == [] and len(set(got)) == 1, (errors, got)
            view = ws.get_task(store, got[0], ann)
            ws.submit_ranking(store, view.id, ann, [0, 1, 2, 3])
    finally:
        store.dispose()
