"""Feedback export: records checked by hand, and read back as the reward/sft stages read them."""

from chatrlhf import schema
from chatrlhf.store.export import export_feedback_rankings, export_sft


def _chat(store):
    """Two users; one conversation with a regenerated first answer, a follow-up and an edit.

    q1 "2+2?"  ── a1 "5"  (alice -1 "wrong")
               ├─ a2 "4"  (alice +1, bob +1) ── q2 "and 3+3?" ── b1 "6" (alice +1)
               │                                               └─ b2 "7" (unrated)
               └─ a3 "four" (unrated)
    q1' "2+2 ?" (edited user turn, no reply)
    """
    alice = store.create_user("alice")
    bob = store.create_user("bob")
    conv = store.create_conversation(alice.id, system_prompt="Answer briefly.",
                                     messages=[{"role": "user", "content": "2+2?"},
                                               {"role": "assistant", "content": "5"}], model_version="v1")
    q1, a1 = conv.messages
    a2 = store.add_message(conv.id, "assistant", "4", parent_id=q1.id, model_version="v2")
    a3 = store.add_message(conv.id, "assistant", "four", parent_id=q1.id, model_version="v2")
    q2 = store.add_message(conv.id, "user", "and 3+3?", parent_id=a2.id)
    b1 = store.add_message(conv.id, "assistant", "6", parent_id=q2.id)
    b2 = store.add_message(conv.id, "assistant", "7", parent_id=q2.id)
    store.add_message(conv.id, "user", "2+2 ?")
    store.set_feedback(a1.id, alice.id, -1, reasons=["wrong"])
    store.set_feedback(a2.id, alice.id, 1)
    store.set_feedback(a2.id, bob.id, 1)
    store.set_feedback(b1.id, alice.id, 1)
    return alice, bob, conv, dict(q1=q1, a1=a1, a2=a2, a3=a3, q2=q2, b1=b1, b2=b2)


def test_rankings_from_regenerated_siblings(store):
    alice, bob, conv, m = _chat(store)
    got = export_feedback_rankings(store)
    assert len(got) == 2
    first, second = got
    assert first.prefix == [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "2+2?"}]
    assert first.completions == ["5", "4", "four"]
    assert first.ranks == [2, 0, 1]  # up-rated above unrated above down-rated
    assert first.pairs() == [(1, 0), (1, 2), (2, 0)]
    assert first.flags == {0: ["wrong"]}
    assert first.annotator == "alice+bob"
    assert first.meta["message_ids"] == [m["a1"].id, m["a2"].id, m["a3"].id]
    assert first.meta["model_versions"] == ["v1", "v2", "v2"]
    assert second.prefix[1:] == [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
                                 {"role": "user", "content": "and 3+3?"}]
    assert (second.completions, second.ranks, second.flags) == (["6", "7"], [0, 1], {})


def test_rankings_skip_sets_without_ordering_and_use_reports(store):
    alice, bob, conv, m = _chat(store)
    # Split thumbs on a2 make it unrated; a1 down, a3 unrated: still ordered (0 above -1).
    store.set_feedback(m["a2"].id, bob.id, -1)
    store.set_feedback(m["a2"].id, alice.id, 1)
    store.set_feedback(m["a1"].id, alice.id, 1)  # now a1 up, a2 split, a3 unrated
    # The second set: b1 reported harmful overrides its thumbs up; b2 is unrated.
    store.add_report(bob.id, "harmful", message_id=m["b1"].id)
    got = export_feedback_rankings(store)
    assert [(r.completions, r.ranks) for r in got] == [(["5", "4", "four"], [0, 1, 1]), (["6", "7"], [1, 0])]
    assert got[1].flags == {0: ["harmful"]}
    # Equal scores everywhere: no ordering information, no record.
    store.set_feedback(m["a2"].id, bob.id, 1)  # a2 +2 -> up, like a1
    store.set_feedback(m["a3"].id, bob.id, 1)  # a3 up too
    store.delete_feedback(m["b1"].id, alice.id)  # b1 still reported: -1
    store.set_feedback(m["b2"].id, alice.id, -1)  # b2 -1
    assert export_feedback_rankings(store) == []


def test_rankings_need_a_user_turn_and_two_replies(store):
    alice = store.create_user("alice")
    conv = store.create_conversation(alice.id, messages=[{"role": "user", "content": "hi"},
                                                         {"role": "assistant", "content": "hello"}])
    store.set_feedback(conv.messages[1].id, alice.id, 1)  # a lone reply: nothing to compare
    a, b = (store.add_message(conv.id, "assistant", t) for t in ("root one", "root two"))
    store.set_feedback(a.id, alice.id, 1)
    store.set_feedback(b.id, alice.id, -1)  # root siblings answer no user message
    assert export_feedback_rankings(store) == []


def test_sft_exports_best_branches(store, tmp_path):
    alice, bob, conv, m = _chat(store)
    got = export_sft(store)
    # a2 (+2) is covered by the longer branch ending at b1 (+1); a1 (-1) is never exported.
    assert len(got) == 1
    assert got[0].messages == [
        {"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"}, {"role": "user", "content": "and 3+3?"},
        {"role": "assistant", "content": "6"},
    ]
    assert got[0].meta["message_id"] == m["b1"].id and got[0].meta["rating"] == 1
    assert [c.messages[-1]["content"] for c in export_sft(store, min_rating=2)] == ["4"]
    # A branch through a down-rated turn is not a demonstration.
    store.set_feedback(m["a2"].id, bob.id, -1)
    store.set_feedback(m["a2"].id, alice.id, -1)
    assert export_sft(store) == []
    # Records round-trip through the JSONL the stages read.
    store.set_feedback(m["a2"].id, alice.id, 1)
    store.set_feedback(m["a2"].id, bob.id, 1)
    path = tmp_path / "sft.jsonl"
    schema.write_jsonl(path, export_sft(store))
    assert schema.read_jsonl(path, schema.Conversation) == export_sft(store)
    path = tmp_path / "rankings.jsonl"
    schema.write_jsonl(path, export_feedback_rankings(store))
    back = schema.read_jsonl(path, schema.Ranking)
    assert back == export_feedback_rankings(store) and len(back) == 2
