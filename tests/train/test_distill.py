"""Distilled everyday demonstrations: the gold-free checks that pick the base model's replies."""

from chatrlhf.distill import DistillConfig, check_reply, choose, first_words, trim_to_sentence

CFG = DistillConfig(min_words=5, max_words=20)


def test_trim_keeps_complete_sentences_or_gives_up():
    assert trim_to_sentence("Boil the water. Pour it over the tea and wa", 0.3) == "Boil the water."
    assert trim_to_sentence("Boil the water. Pour it over the tea and wa") is None  # keeps under half
    assert trim_to_sentence("one two three four five six seven. eight nine ten eleven twelve", 0.9) is None
    assert trim_to_sentence("no sentence end at all") is None


def test_first_words_keeps_line_breaks():
    assert first_words("Roses are red,\nviolets are blue,\nsugar", 5) == "Roses are red,\nviolets are"


def test_a_finished_short_reply_is_kept_as_it_is():
    reply, failed = check_reply("Tea: boil water, steep the leaves for three minutes, then pour.", "stop",
                                "How do I make tea?", CFG)
    assert failed == [] and reply.endswith("then pour.")


def test_a_long_or_cut_reply_is_cut_at_a_sentence_end_within_the_limit():
    text = ("Boil fresh water in a kettle. Warm the pot with a splash of it. Add one spoon of leaves per cup. "
            "Steep for three to five minutes and then pour through a strainer into")
    reply, failed = check_reply(text, "length", "How do I make tea?", CFG)
    assert failed == [] and reply == "Boil fresh water in a kettle. Warm the pot with a splash of it."
    assert len(reply.split()) <= CFG.max_words


def test_refusals_loops_echoes_and_stubs_fail():
    assert "refuses" in check_reply("I'm sorry, but I can't help with writing poems.", "stop", "Write a poem.", CFG)[1]
    loop = "A far-off land of leaves, " * 8
    assert check_reply(loop, "stop", "Write a poem about autumn.", DistillConfig(max_words=60))[1]
    assert check_reply("Write a poem about autumn.", "stop", "Write a poem about autumn.", CFG)[1]
    assert check_reply("Sure.", "stop", "Write a poem about autumn.", CFG)[1]


def test_choose_prefers_the_greedy_reply_and_falls_back_to_a_sample():
    good = ("Leaves drift down in amber light, and the cold air smells of rain.", "stop")
    bad = ("I can't help with that.", "stop")
    assert choose([good, bad], "Write a poem.", CFG)[0] == 0
    kept, records = choose([bad, good, good], "Write a poem.", CFG)
    assert kept == 1 and records[0]["failed"] == ["refuses"]
    assert choose([bad, bad], "Write a poem.", CFG)[0] is None


def test_the_stage_writes_demonstrations_for_everyday_train_prompts(tiny, tmp_path):
    import json

    from chatrlhf.distill import distill_prompts, run
    from chatrlhf.schema import Conversation, read_jsonl
    from chatrlhf.train_utils import is_done

    cfg = DistillConfig(n_prompts=3, samples=2, max_new_tokens=6, min_words=1, min_form=0.0, dtype="float32")
    prompts = distill_prompts(cfg)
    assert {c.meta["family"] for c in prompts} == {"general"} and {c.meta["split"] for c in prompts} == {"train"}
    summary = run(cfg, "tiny", tmp_path)
    assert is_done(tmp_path) and summary["prompts"] == 3
    records = [json.loads(line) for line in (tmp_path / "candidates.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(len(r["candidates"]) == 2 for r in records)
    demos = read_jsonl(tmp_path / "general_demos.jsonl", Conversation)
    assert len(demos) == summary["demos"] == sum(r["kept"] is not None for r in records)
    for d in demos:  # a kept demo is its prompt plus the kept candidate's checked reply
        rec = next(r for r in records if r["prompt"] == d.messages[0]["content"])
        assert d.messages[-1] == {"role": "assistant", "content": rec["candidates"][rec["kept"]]["reply"]}
        assert d.meta["source"] == "distill"
