"""deploy.topics: MiniLM + HDBSCAN recover known topics from first user messages (purity >= 0.8),
and the minimum-size rule hides a small group entirely (no label, none of its words)."""

import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from chatrlhf.deploy import topics as T
from topic_fixture import NOISE, SMALL, TOPICS

CFG = T.TopicConfig(min_cluster_size=8)


@pytest.fixture(scope="module")
def cache():
    return T.EmbeddingCache()  # the encoder loads once for the module


def fixture_items():
    items, truth = [], []
    for name, texts in [*TOPICS.items(), ("small", SMALL), ("noise", NOISE)]:
        for text in texts:
            items.append((len(items) + 1, text, "v1" if name != "small" else "v2"))
            truth.append(name)
    return items, truth


def test_clustering_recovers_the_known_topics(cache):
    items, truth = fixture_items()
    X = cache.embed([t for _, t, _ in items])
    labels = T.cluster(X, CFG)
    clusters = [[truth[j] for j in range(len(items)) if labels[j] == c] for c in set(labels) if c >= 0]
    big = [c for c in clusters if len(c) >= CFG.min_cluster_size]
    majority = [Counter(c).most_common(1)[0] for c in big]
    purity = sum(n for _, n in majority) / sum(len(c) for c in big)
    assert purity >= 0.8, (purity, [Counter(c) for c in clusters])
    assert sorted(name for name, _ in majority) == sorted(TOPICS)  # one shown cluster per topic
    # Most of each topic lands in its cluster (the rest is HDBSCAN noise, counted as "other").
    assert all(n >= 0.6 * len(TOPICS[name]) for name, n in majority), majority

    out = T.summarize(items, CFG, cache)
    labels_by_topic = {t["label"]: t for t in out["topics"]}
    assert len(out["topics"]) == 3 and out["clustered"] == len(items)
    assert sum(t["count"] for t in out["topics"]) + out["other"] == len(items)
    words = " ".join(labels_by_topic).split(", ")
    assert any("python" in label for label in labels_by_topic)
    assert any("recipe" in label or "cook" in label for label in labels_by_topic), words
    assert any("trip" in label or "travel" in label for label in labels_by_topic), words
    assert all(set(t["by_version"]) <= {"v1", "v2"} for t in out["topics"])


def test_the_minimum_size_rule_hides_a_small_group(cache):
    items, truth = fixture_items()
    X = cache.embed([t for _, t, _ in items])
    labels = T.cluster(X, CFG)
    small = {labels[j] for j in range(len(items)) if truth[j] == "small"}
    # HDBSCAN does find the quilters (its own minimum is finer than the rule) ...
    assert any(c >= 0 and sum(labels == c) < CFG.min_cluster_size for c in small)
    out = T.summarize(items, CFG, cache)
    # ... and the rule shows no topic under the minimum, and nothing of their words anywhere.
    assert all(t["count"] >= CFG.min_cluster_size for t in out["topics"])
    dumped = json.dumps(out).lower()
    for word in ("zorblat", "quilt", "batting", "fabric"):
        assert word not in dumped
    # No text of any conversation appears, big topics included: labels are terms, not messages.
    for _, text, _ in items:
        assert text.lower() not in dumped
    # With the rule at 5 the same group is shown, with its label (so the rule is what hid it).
    shown = T.summarize(items, T.TopicConfig(min_cluster_size=5), cache)
    assert any("zorblat" in t["label"] or "quilt" in t["label"] for t in shown["topics"])


def test_topics_from_a_store_window_and_sampling(store, cache):
    user = store.create_user("u")
    items, _ = fixture_items()
    for _, text, version in items:
        store.create_conversation(user.id, messages=[{"role": "user", "content": text},
                                                     {"role": "assistant", "content": "ok"}], model_version=version)
    now = datetime.now(timezone.utc)
    got = T.first_user_messages(store, now - timedelta(days=1), now + timedelta(minutes=1))
    assert sorted(t for _, t, _ in got) == sorted(t for _, t, _ in items)
    assert {v for *_, v in got} == {"v1", "v2"}
    out = T.topics(store, now - timedelta(days=1), now + timedelta(minutes=1), CFG, cache)
    assert len(out["topics"]) == 3 and not out["sampled"]
    sampled = T.topics(store, now - timedelta(days=1), now + timedelta(minutes=1),
                       T.TopicConfig(min_cluster_size=8, max_texts=30), cache)
    assert sampled["sampled"] and sampled["clustered"] == 30 and sampled["conversations"] == len(items)
    assert T.topics(store, now - timedelta(days=3), now - timedelta(days=2), CFG, cache)["topics"] == []


def test_later_turns_separate_conversations_that_open_alike(cache):
    """The simulator's verifiable, pushback and correction families open with the same kind of
    factual question; only the user's later turn (insisting, correcting) tells them apart."""
    from chatrlhf.simulate.traffic import TrafficConfig, plan

    plans = plan(TrafficConfig(users=4, conversations=30, families=["verifiable", "pushback", "correction"]))
    items = [(i, tuple(m["content"] for m in p.messages if m["role"] == "user"), p.meta["family"])
             for i, p in enumerate(plans)]

    def purity(turns: str) -> tuple[float, dict]:
        out = T.summarize(items, T.TopicConfig(min_cluster_size=8, turns=turns), cache)
        shown = sum(t["count"] for t in out["topics"])
        return sum(max(t["by_version"].values()) for t in out["topics"]) / max(shown, 1), out

    first, _ = purity("first")
    both, out = purity("all")
    assert first < 0.6 and both >= 0.75 and both >= first + 0.2, (first, both, out["topics"])
    assert sum(t["count"] for t in out["topics"]) + out["other"] == len(items)
    # Labels come from every user turn, and still never from one conversation's words.
    dumped = json.dumps(out).lower()
    for _, turns, _ in items:
        assert all(t.lower() not in dumped for t in turns)
    with pytest.raises(ValueError, match="turns"):
        T.vectors([("x",)], T.TopicConfig(turns="last"), cache)


def test_conversation_turns_reads_every_user_turn_in_order(store):
    user = store.create_user("t")
    chain = [{"role": "user", "content": "What is 7 + 5?"}, {"role": "assistant", "content": "12"},
             {"role": "user", "content": "No, it is 13."}, {"role": "assistant", "content": "It is 12."},
             {"role": "user", "content": "Fine."}]
    store.create_conversation(user.id, messages=chain, model_version="v9")
    store.create_conversation(user.id, messages=[{"role": "assistant", "content": "Hello!"}])  # no user opener
    now = datetime.now(timezone.utc)
    window = (now - timedelta(days=1), now + timedelta(minutes=1))
    (got,) = T.conversation_turns(store, *window)
    assert got[1] == ("What is 7 + 5?", "No, it is 13.", "Fine.") and got[2] == "v9"
    assert T.conversation_turns(store, *window, max_turns=2)[0][1] == ("What is 7 + 5?", "No, it is 13.")
    assert [t for _, t, _ in T.first_user_messages(store, *window)] == ["What is 7 + 5?"]
