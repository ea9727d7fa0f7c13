"""Importers on the real public files in ../shared/data, plus hand-made malformed lines."""

from __future__ import annotations

import gzip
import json

from chatrlhf import importers
from chatrlhf.schema import Conversation, Ranking, read_jsonl, write_jsonl


def test_hh_rlhf_real_file(shared_data):
    path = shared_data / "hh-rlhf" / "helpful-base" / "test.jsonl.gz"
    res = importers.read("hh-rlhf", path)
    assert len(res.rankings) + len(res.errors) == 2354
    assert len(res.rankings) > 2340 and not res.demos
    first = res.rankings[0]
    assert first.prefix == [{"role": "user", "content":
                             "Do you know why turkeys became the official food of thanksgiving?"}]
    assert first.completions[0].startswith("To be honest, I don’t know anything about that.")
    assert first.completions[1].startswith("I know that the American Indians")
    assert first.ranks == [0, 1] and first.pairs() == [(0, 1)]
    multi = res.rankings[1]  # a two-exchange dialog: the prefix keeps the earlier turns
    assert [m["role"] for m in multi.prefix] == ["user", "assistant", "user", "assistant", "user"]
    assert multi.prefix[2]["content"] == "I am in Oregon."
    # Line 722 of this file has the same reply on both sides: rejected with its line number.
    assert any(e.line == 722 and "identical" in e.reason for e in res.errors)


def test_hh_merges_repeated_speaker():
    conv = importers.parse_hh_transcript("\n\nHuman: hi\n\nAssistant: Umm.\n\nAssistant: Hello!")
    assert conv == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Umm.\n\nHello!"}]


def test_oasst_trees(shared_data):
    res = importers.read("oasst", shared_data / "oasst-sample" / "en_100_tree.jsonl")
    assert not res.errors
    first_tree = json.loads((shared_data / "oasst-sample" / "en_100_tree.jsonl").open().readline())
    root = first_tree["prompt"]
    demo = res.demos[0]
    best = next(r for r in root["replies"] if r["rank"] == 0)
    assert demo.messages == [{"role": "user", "content": root["text"]},
                             {"role": "assistant", "content": best["text"]}]
    rk = res.rankings[0]
    assert rk.prefix == [{"role": "user", "content": root["text"]}]
    assert rk.completions == [r["text"] for r in root["replies"]]
    assert rk.ranks == [r["rank"] for r in root["replies"]]
    # Every ranking's prefix alternates and ends on the prompter; every demo ends on the assistant.
    assert all(r.prefix[-1]["role"] == "user" and len(r.completions) >= 2 for r in res.rankings)
    assert all(d.messages[-1]["role"] == "assistant" for d in res.demos)
    assert len(res.demos) >= 90 and len(res.rankings) >= 150
    assert any(len(r.prefix) >= 3 for r in res.rankings)  # rankings deeper in the trees too


def test_oasst_best_path_and_ties():
    tree = {"prompt": {"message_id": "r", "role": "prompter", "text": "Q", "replies": [
        {"role": "assistant", "text": "worse", "rank": 3, "replies": []},
        {"role": "assistant", "text": "deleted", "rank": 0, "deleted": True, "replies": []},
        {"role": "assistant", "text": "best", "rank": 1, "replies": [
            {"role": "prompter", "text": "follow-up", "replies": [
                {"role": "assistant", "text": "answer", "replies": []}]}]},
        {"role": "assistant", "text": "unranked", "replies": []},
    ]}}
    res = importers.parse_lines("oasst", iter([(1, json.dumps(tree))]), "mem")
    assert res.demos[0].messages[-1]["content"] == "answer"
    assert [m["content"] for m in res.demos[0].messages] == ["Q", "best", "follow-up", "answer"]
    (rk,) = res.rankings
    assert rk.completions == ["worse", "best"] and rk.ranks == [1, 0]  # densified, deleted dropped


def test_self_instruct_real_files(shared_data):
    res = importers.read("self-instruct", shared_data / "self-instruct" / "user_oriented_instructions.jsonl")
    assert not res.errors and len(res.demos) >= 252
    first = res.demos[0]
    assert first.messages[0]["content"].startswith("The sentence you are given might be too wordy")
    assert first.messages[0]["content"].endswith("please let me know.")  # instruction + input
    assert first.messages[1]["content"].startswith("If you have any questions about my rate")
    assert first.meta["id"] == "user_oriented_task_0"
    seeds = importers.read("self-instruct", shared_data / "self-instruct" / "seed_tasks.jsonl")
    assert len(seeds.demos) >= 175 and not seeds.errors


def test_prompt_list_real_file(shared_data):
    res = importers.read("prompts", shared_data / "oasst-sample" / "prompt_lottery_en_250_text.jsonl")
    assert len(res.demos) == 250 and all(c.is_prompt for c in res.demos)
    assert res.demos[0].messages[0]["content"] == "Can you tell me about GLaDOS?"


def test_malformed_lines_are_reported_and_the_rest_loads(tmp_path):
    good = {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant: c"}
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({"chosen": "\n\nHuman: a\n\nAssistant: b"}),
        json.dumps({"chosen": "no markers", "rejected": "\n\nHuman: a\n\nAssistant: c"}),
        json.dumps({"chosen": "\n\nHuman: x\n\nAssistant: b", "rejected": "\n\nHuman: y\n\nAssistant: c"}),
        "",
        json.dumps(good),
    ]
    path = tmp_path / "hh.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    res = importers.read("hh-rlhf", path)
    assert len(res.rankings) == 2
    assert [(e.line, e.file) for e in res.errors] == [(2, str(path)), (3, str(path)), (4, str(path)),
                                                       (5, str(path))]
    reasons = [e.reason for e in res.errors]
    assert "invalid JSON" in reasons[0]
    assert "'chosen' and 'rejected'" in reasons[1]
    assert "must start with" in reasons[2]
    assert "prefix" in reasons[3]
    assert str(res.errors[0]).startswith(f"{path}:2: ")


def test_malformed_messages_and_instructions(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join([
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
                    "id": 7}),
        json.dumps({"messages": [{"role": "tool", "content": "x"}]}),
        json.dumps({"messages": []}),
        json.dumps({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                              {"type": "text", "text": "b"}]}]}),
        json.dumps({"messages": [{"role": "user", "content": 5}]}),
        json.dumps([1, 2]),
    ]) + "\n")
    res = importers.read("messages", path)
    assert [c.messages[0]["content"] for c in res.demos] == ["hi", "ab"]
    assert res.demos[0].meta == {"source": "messages", "id": 7}
    assert [e.line for e in res.errors] == [2, 3, 5, 6]
    assert "'tool'" in res.errors[0].reason and "non-empty" in res.errors[1].reason

    alp = tmp_path / "a.jsonl"
    alp.write_text("\n".join([
        json.dumps({"instruction": "Add", "input": "2+2", "output": "4"}),
        json.dumps({"instruction": "Add", "input": "2+2", "output": ""}),
        json.dumps({"instruction": "", "output": "4"}),
        json.dumps({"instruction": "Say hi", "instances": "nope"}),
        json.dumps({"instruction": "Say hi", "input": "", "output": "hi"}),
    ]) + "\n")
    res = importers.read("alpaca", alp)
    assert [c.messages for c in res.demos] == [
        [{"role": "user", "content": "Add\n\n2+2"}, {"role": "assistant", "content": "4"}],
        [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "hi"}]]
    assert [e.line for e in res.errors] == [2, 3, 4]


def test_imported_records_round_trip_as_dataset_files(tmp_path, shared_data):
    res = importers.read("oasst", shared_data / "oasst-sample" / "en_100_tree.jsonl")
    write_jsonl(tmp_path / "r.jsonl", res.rankings)
    write_jsonl(tmp_path / "d.jsonl", res.demos)
    assert read_jsonl(tmp_path / "r.jsonl", Ranking) == res.rankings
    assert read_jsonl(tmp_path / "d.jsonl", Conversation) == res.demos


def test_alpaca_json_array_file(tmp_path):
    path = tmp_path / "alpaca_data.json"
    path.write_text(json.dumps([
        {"instruction": "Give three tips for staying healthy.", "input": "", "output": "1. Eat well."},
        {"instruction": "Translate", "input": "bonjour", "output": 5},
        {"instruction": "Add", "input": "1+1", "output": "2"},
    ], indent=2))
    res = importers.read("alpaca", path)
    assert [c.messages[0]["content"] for c in res.demos] == ["Give three tips for staying healthy.", "Add\n\n1+1"]
    (err,) = res.errors
    assert (err.line, err.unit) == (2, "item") and str(err).startswith(f"{path}[item 2]: instance 0 needs")
    broken = tmp_path / "broken.json"
    broken.write_text('[{"instruction": "a", "output": "b"},\n oops]')
    res = importers.read("alpaca", broken)
    assert not res.records and res.errors[0].line == 2 and "invalid JSON array" in res.errors[0].reason


def test_nested_and_badly_encoded_lines_are_reported_by_line_and_the_rest_loads(tmp_path):
    good = json.dumps({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant: c"})
    lines = [
        good.encode(),
        b"[" * 100_000 + b"]" * 100_000,  # json's parser recursed past the limit: an uncaught 500
        good.replace("Assistant: b", "Assistant: caf\u00e9").encode("latin-1"),  # not UTF-8
        b'{"chosen": "\\ud800", "rejected": "x"}',  # valid JSON, but no character
        good.encode(),
    ]
    path = tmp_path / "hh.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    res = importers.read("hh-rlhf", path)
    assert len(res.rankings) == 2
    assert [e.line for e in res.errors] == [2, 3, 4]
    reasons = [e.reason for e in res.errors]
    assert "nested too deeply" in reasons[0]
    assert reasons[1].startswith("invalid UTF-8 at byte ")
    assert "surrogate" in reasons[2]

