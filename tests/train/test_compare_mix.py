"""The compare stage's mix of sources: which model fills each of the K slots, and the sets it makes."""

import random

import pytest

from chatrlhf.comparisons import SampleConfig, plan_slots, sample_mixed, sim_candidates
from chatrlhf.simulate import generate_tasks


def test_no_mix_samples_all_k_from_the_policy():
    assert plan_slots(SampleConfig(k=3), {"policy": "p"}) == [("policy", "p")] * 3


def test_mix_assigns_slots_and_gives_duplicates_and_missing_sources_to_the_policy():
    cfg = SampleConfig(k=5, mix={"policy": 1, "sft": 1, "base": 1, "previous": 1, "sim": 1})
    # round 1: the policy is the SFT model and there is no earlier policy
    slots = plan_slots(cfg, {"policy": "run/sft", "sft": "run/sft", "base": "smollm2", "previous": []})
    assert slots == [("policy", "run/sft"), ("policy", "run/sft"), ("base", "smollm2"), ("policy", "run/sft"),
                     ("sim", None)]
    # round 3: two earlier policies share the "previous" slots in turn
    cfg = SampleConfig(k=4, mix={"policy": 1, "previous": 3})
    slots = plan_slots(cfg, {"policy": "ppo-2", "previous": ["sft", "ppo"]})
    assert slots == [("policy", "ppo-2"), ("previous", "sft"), ("previous", "ppo"), ("previous", "sft")]


@pytest.mark.parametrize("mix", [{"policy": 2}, {"policy": 4, "sim": 1}, {"policy": 2, "oracle": 2}])
def test_a_mix_that_does_not_make_k_fails_loudly(mix):
    with pytest.raises(ValueError, match="sample.mix"):
        plan_slots(SampleConfig(k=4, mix=mix), {"policy": "p"})


def test_sim_candidates_are_distinct_and_avoid_the_model_replies():
    conv = next(c for c in generate_tasks(0, 2, "train") if c.meta["family"] == "verifiable")
    first = sim_candidates(conv, 3, random.Random(0), [])
    assert len(first) == 3 and len({c.text for c in first}) == 3
    again = sim_candidates(conv, 3, random.Random(0), [first[0].text])
    assert first[0].text not in [c.text for c in again]


def test_sample_mixed_fills_every_slot_and_records_sources(tiny):
    convs = [c for c in generate_tasks(0, 1, "train")][:3]
    cfg = SampleConfig(k=4, max_new_tokens=6, batch_size=16, dtype="float32")
    slots = [("policy", "tiny"), ("base", "tiny"), ("policy", "tiny"), ("sim", None)]
    comps, sources = sample_mixed(convs, slots, cfg, seed=0)
    assert len(comps) == 3
    for row, src in zip(comps, sources):
        assert len(row) == len(src) == 4
        assert src[:3] == ["policy", "base", "policy"] and src[3].startswith("sim:")
        assert all(isinstance(c.text, str) for c in row)
        # the three model slots are three different sampled rows, not one reused
        assert len({tuple(c.token_ids) for c in row[:3]}) == 3


def test_rm_vs_gold_is_counted_per_pair_of_sources():
    from chatrlhf.reward import source_pair_hits

    scores = [2.0, 1.0, 3.0, 0.0]
    gold = [0.9, 0.5, 0.1, 0.1]
    sources = ["policy", "policy", "base", "sim:wrong"]
    hits = source_pair_hits(scores, gold, sources)
    # policy-policy: 2>1 with gold .9>.5 agrees; base vs policy: 3 beats both, gold says the reverse;
    # base vs sim: equal gold, no pair; policy vs sim: both agree
    assert hits == {"policy_vs_policy": (1, 1), "base_vs_policy": (0, 2), "policy_vs_sim": (2, 2)}
