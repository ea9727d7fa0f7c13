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
