"""Store-level behaviour of the workspace: task creation, assignment, rankings, demos, agreement,
aggregation, import and export (all on an in-memory SQLite store, hand-computed expectations)."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from conftest import uid
from sqlalchemy import select

from chatrlhf import workspace as ws
from chatrlhf.schema import Conversation, Ranking, read_jsonl, write_jsonl
from chatrlhf.store import Conflict, NotFound
from chatrlhf.store.workspace_tables import AssignmentRow

PREFIX = [{"role": "user", "content": "Name a prime."}]


@pytest.fixture
def store(any_store):
    """Every test here runs on SQLite and on PostgreSQL."""
    return any_store


def _task(store, required=1, k=4, **kw):
    comps = [(f"answer {i}", f"model-{i}") for i in range(k)]
    return ws.create_task(store, PREFIX, comps, required=required, rng=random.Random(0), **kw)


def test_create_task_shuffles_and_hides_models(store):
    tid = _task(store, k=6)
    view = ws.get_task(store, tid)
    assert sorted(view.completions) == [f"answer {i}" for i in range(6)]
    assert view.completions != [f"answer {i}" for i in range(6)]  # seed 0 shuffles them
    assert "model" not in repr(view)
    with pytest.raises(ValueError, match="4 to 9"):
        _task(store, k=3)
    with pytest.raises(ValueError, match="4 to 9"):
        _task(store, k=10)
    with pytest.raises(ValueError, match="end with a user"):
        ws.create_task(store, PREFIX + [{"role": "assistant", "content": "x"}], [("a", "m")] * 4)


def test_assignment_gives_n_trainers_and_never_the_same_task_twice(store):
    ann, bob, cat = uid(store, "ann"), uid(store, "bob"), uid(store, "cat")
    t1, t2 = _task(store, required=2), _task(store, required=1)
    assert ws.next_task(store, ann).id == t1
    assert ws.next_task(store, ann).id == t1  # still held: the same one comes back
    assert ws.next_task(store, bob).id == t1  # t1 wants two trainers
    assert ws.next_task(store, cat).id == t2  # t1 is full (ann and bob hold it)
    ws.submit_ranking(store, t1, ann, [0, 1, 2, 3])
    assert ws.next_task(store, ann) is None  # t1 done by ann, t2 held by cat
    with pytest.raises(ValueError, match="already submitted"):
        ws.submit_ranking(store, t1, ann, [0, 1, 2, 3])
    with pytest.raises(NotFound):
        ws.submit_ranking(store, t2, ann, [0, 1, 2, 3])  # never assigned to ann
    ws.release_task(store, t2, cat)  # cat skips t2: it returns to the queue, but not for cat
    assert ws.next_task(store, cat) is None
    assert ws.next_task(store, ann).id == t2
    ws.submit_ranking(store, t1, bob, [1, 0, 2, 3])
    summary = {s.id: s for s in ws.task_summaries(store)}
    assert summary[t1].status == "done" and summary[t1].submitted == 2
    assert summary[t2].status == "open" and summary[t2].assigned == 1
    # The database itself refuses a second assignment of one task to one trainer.
    with pytest.raises(Conflict):
        with store.transaction() as s:
            s.add(AssignmentRow(task_id=t1, user_id=ann))


def test_an_abandoned_assignment_stops_blocking_the_task(store):
    ann, bob = uid(store, "ann"), uid(store, "bob")
    t1 = _task(store, required=1)
    assert ws.next_task(store, ann).id == t1
    assert ws.next_task(store, bob) is None
    with store.transaction() as s:
        a = s.scalar(select(AssignmentRow).where(AssignmentRow.user_id == ann))
        a.assigned_at = a.assigned_at - ws.ASSIGNMENT_LEASE - timedelta(minutes=1)
    assert ws.next_task(store, bob).id == t1


def test_submit_validates_ranks_and_flags(store):
    ann = uid(store, "ann")
    t1 = _task(store)
    ws.next_task(store, ann)
    for bad in ([0, 1, 2], [0, 1, 2, 4], [0, 1, "2", 3], [0, 1, 2, -1], [True, 0, 1, 2]):
        with pytest.raises(ValueError, match="ranks"):
            ws.submit_ranking(store, t1, ann, bad)
    with pytest.raises(ValueError, match="flags"):
        ws.submit_ranking(store, t1, ann, [0, 1, 2, 3], flags={"0": ["rude"]})
    with pytest.raises(ValueError, match="does not exist"):
        ws.submit_ranking(store, t1, ann, [0, 1, 2, 3], flags={"7": ["harmful"]})
    ws.submit_ranking(store, t1, ann, [0, 2, 2, 3], flags={1: ["harmful", "untruthful"], "2": []},
                      all_unacceptable=True)
    (r,) = ws.export_rankings(store)
    assert r.ranks == [0, 1, 1, 2]  # dense ranks, tie kept
    assert r.flags == {1: ["harmful", "untruthful"]} and r.all_unacceptable
    assert r.annotator == "ann" and r.prefix == PREFIX
    assert sorted(r.meta["models"]) == [f"model-{i}" for i in range(4)]


def _rank_all(store, tid, who_ranks):
    for name, ranks in who_ranks.items():
        u = uid(store, name)
        assert ws.next_task(store, u).id == tid
        ws.submit_ranking(store, tid, u, ranks)


def test_agreement_and_aggregation_hand_computed(store):
    t1 = _task(store, required=3)
    # Pairs of positions (6 per annotator pair). ann vs bob: differ only on (0,1) -> 5/6.
    # ann vs cat: cat reverses ann completely -> 0/6. bob vs cat: agree only on (0,1) -> 1/6.
    _rank_all(store, t1, {"ann": [0, 1, 2, 3], "bob": [1, 0, 2, 3], "cat": [3, 2, 1, 0]})
    rep = ws.agreement_report(store)
    assert rep.overall == pytest.approx(6 / 18)
    assert rep.per_annotator["ann"] == pytest.approx(5 / 12)
    assert rep.per_annotator["bob"] == pytest.approx(6 / 12)
    assert rep.per_annotator["cat"] == pytest.approx(1 / 12)
    # Majorities: 0>2, 0>3, 1>2, 1>3, 2>3 (2 to 1 each); 0 vs 1 is 1-2... ann 0>1, bob 1>0, cat 1>0:
    # 1>0 by 2-1. Ranked pairs: 1, 0, 2, 3.
    assert ws.aggregate_task(store, t1, "ranked_pairs") == [1, 0, 2, 3]
    assert ws.aggregate_task(store, t1, "bradley_terry") == [1, 0, 2, 3]
    (agg,) = ws.export_rankings(store, aggregate="ranked_pairs")
    assert agg.ranks == [1, 0, 2, 3] and agg.meta["annotators"] == ["ann", "bob", "cat"]
    assert len(ws.export_rankings(store)) == 3


def test_make_task_from_a_recorded_model_reply(store):
    joe = uid(store, "joe")
    conv = store.create_conversation(joe, system_prompt="Be brief.", messages=[
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello!", "model_version": "v1"}])
    asked = []

    def sampler(prefix, n):
        asked.append((prefix, n))
        return [f"sample {i}" for i in range(n)]

    tid = ws.make_task(store, sampler, k=5, required=2, model_name="v2", rng=random.Random(1))
    assert asked == [([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}], 4)]
    view = ws.get_task(store, tid)
    assert sorted(view.completions) == ["hello!"] + [f"sample {i}" for i in range(4)]
    assert view.required == 2
    assert ws.task_detail(store, tid)["completions"][view.completions.index("hello!")]["model"] == "v1"
    # Each model reply becomes at most one task; replies no model wrote are never picked.
    assert ws.make_task(store, sampler, k=5) is None
    store.create_conversation(joe, messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])
    assert ws.make_task(store, sampler, k=5) is None
    store.add_message(conv.id, "assistant", "bonjour!", parent_id=conv.messages[0].id, model_version="v2")
    assert "bonjour!" in ws.get_task(store, ws.make_task(store, sampler, k=4)).completions


def test_make_task_from_an_uploaded_prompt_list(store):
    root = uid(store, "root")
    lid = ws.upload_prompts(store, "week 1", [Conversation([{"role": "user", "content": "p1"}]),
                                              Conversation([{"role": "user", "content": "p2"}])], user_id=root)
    with pytest.raises(ValueError, match="end with a user"):
        ws.upload_prompts(store, "bad", [Conversation([{"role": "user", "content": "a"},
                                                       {"role": "assistant", "content": "b"}])])
    tids = [ws.make_task(store, lambda p, n: ["x"] * n, k=4, source="prompt_list", list_id=lid)
            for _ in range(2)]
    prompts = sorted(ws.get_task(store, t).prefix[0]["content"] for t in tids)
    assert prompts == ["p1", "p2"]  # least-used first: both prompts get a task before any repeats
    assert ws.list_prompt_lists(store) == [{"id": lid, "name": "week 1", "prompts": 2, "used": 2,
                                            "created_at": ws.list_prompt_lists(store)[0]["created_at"]}]
    with pytest.raises(ValueError, match="between 4 and 9"):
        ws.make_task(store, lambda p, n: ["x"] * n, k=10, source="prompt_list")


def test_demonstration_drafts_and_submission(store, tmp_path):
    ann, bob = uid(store, "ann"), uid(store, "bob")
    d = ws.save_draft(store, ann, [{"role": "user", "content": "How do I"}])
    d = ws.save_draft(store, ann, [{"role": "user", "content": "How do I boil an egg?"},
                                   {"role": "assistant", "content": ""}], demo_id=d.id)
    assert d.status == "draft" and ws.list_demos(store, ann, "draft")[0].messages[1]["content"] == ""
    with pytest.raises(NotFound):
        ws.save_draft(store, bob, [], demo_id=d.id)  # someone else's draft
    with pytest.raises(ValueError, match="empty"):
        ws.submit_demo(store, ann, d.messages, demo_id=d.id)
    with pytest.raises(ValueError, match="alternate"):
        ws.submit_demo(store, ann, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                                    {"role": "assistant", "content": "c"}], demo_id=d.id)
    with pytest.raises(ValueError, match="end with an assistant"):
        ws.submit_demo(store, ann, [{"role": "user", "content": "a"}], demo_id=d.id)
    final = [{"role": "user", "content": "How do I boil an egg?"},
             {"role": "assistant", "content": "Simmer it for 9 minutes."},
             {"role": "user", "content": "Soft?"}, {"role": "assistant", "content": "6 minutes."}]
    ws.submit_demo(store, ann, final, demo_id=d.id, meta={"suggestion_used": [1]})
    with pytest.raises(ValueError, match="already submitted"):
        ws.save_draft(store, ann, [], demo_id=d.id)
    (demo,) = ws.export_demos(store)
    assert demo.messages == final
    assert demo.meta["trainer"] == "ann" and demo.meta["suggestion_used"] == [1]
    write_jsonl(tmp_path / "demos.jsonl", [demo])
    assert read_jsonl(tmp_path / "demos.jsonl", Conversation) == [demo]


def test_import_into_the_store_then_export(store, tmp_path):
    recs = [Conversation([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                         meta={"source": "oasst"}),
            Ranking(prefix=PREFIX, completions=["2", "4"], ranks=[0, 1], annotator="hh-rlhf",
                    meta={"source": "hh-rlhf"})]
    assert ws.import_records(store, recs, "import:test") == (1, 1)
    (r,) = ws.export_rankings(store)
    assert (r.completions, r.ranks, r.annotator, r.meta["source"]) == (["2", "4"], [0, 1], "hh-rlhf", "hh-rlhf")
    (d,) = ws.export_demos(store)
    assert d.messages == recs[0].messages and "trainer" not in d.meta
    assert ws.export_rankings(store, imported=False) == [] and ws.export_demos(store, imported=False) == []
    # Imported tasks are never handed to trainers.
    assert ws.next_task(store, uid(store, "ann")) is None
