"""Turn what users said about served replies into training records.

Consumes the store's message trees, feedback and reports; produces ``schema.Ranking`` records that
the reward stage reads directly, and ``schema.Conversation`` demonstrations for SFT.

A reply's *score* is the sign of the sum of its thumbs (+1 up, 0 unrated or split, -1 down); a
reply reported as harmful or untrue scores -1 whatever its thumbs. Regenerating gives several
assistant siblings under one user message: ranked by score (up above unrated above down), they are
one K-wise ranking with ties. Sets whose replies all score the same carry no ordering and are
skipped, as are siblings that do not answer a user message.

``export_same_prompt_rankings`` pairs rated replies across conversations only when their whole
context is identical (system prompt and every earlier turn): then they answer the same question and
a thumbed-up reply above a thumbed-down one is a comparison, if a noisier one than a regeneration
(two raters, each with their own threshold). Replies to merely similar prompts are never paired.

``export_arena_rankings`` turns arena picks (two versions answered one turn side by side, the user
picked) into two-reply rankings: the picked reply ranks 0 and the other 1; a tie gives equal ranks
(no pair for the reward model, but the record says the user saw no difference); "both bad" gives
equal ranks with ``all_unacceptable`` set (DPO and the counts use it; the RM gets no pair).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select

from chatrlhf import schema
from chatrlhf.store.models import ConversationRow, FeedbackRow, MessageRow, ReportRow, UserRow
from chatrlhf.store.store import Store

# Report kinds that make a reply unacceptable, and the ranking flag each becomes.
_REPORT_FLAGS = {"harmful": "harmful", "untrue": "untruthful"}


@dataclass
class _Signals:
    total: int = 0  # sum of thumbs
    raters: set[str] = field(default_factory=set)
    flags: set[str] = field(default_factory=set)
    reported: bool = False

    @property
    def score(self) -> int:
        return -1 if self.reported else (self.total > 0) - (self.total < 0)


@dataclass
class _Snapshot:
    """The conversations that carry any feedback or report, loaded in one read transaction."""

    messages: dict[int, MessageRow]
    system: dict[int, str]  # conversation id -> system prompt
    signals: dict[int, _Signals]

    def path(self, message_id: int) -> list[MessageRow]:
        path = [self.messages[message_id]]
        while path[-1].parent_id is not None:
            path.append(self.messages[path[-1].parent_id])
        return path[::-1]

    def chat(self, message_id: int) -> list[dict[str, str]]:
        path = self.path(message_id)
        out = [{"role": m.role, "content": m.content} for m in path]
        system = self.system[path[0].conversation_id]
        if system and out[0]["role"] != "system":
            out.insert(0, {"role": "system", "content": system})
        return out


def _snapshot(store: Store) -> _Snapshot:
    with store.session() as s:
        signals: dict[int, _Signals] = defaultdict(_Signals)
        for fb, username in s.execute(
            select(FeedbackRow, UserRow.username).join(UserRow, FeedbackRow.user_id == UserRow.id)
        ):
            sig = signals[fb.message_id]
            sig.total += fb.rating
            sig.raters.add(username)
            if fb.rating < 0:
                sig.flags.update(fb.reasons or [])
        for rep in s.scalars(select(ReportRow).where(ReportRow.message_id.is_not(None))):
            if rep.kind in _REPORT_FLAGS:
                sig = signals[rep.message_id]
                sig.reported = True
                sig.flags.add(_REPORT_FLAGS[rep.kind])
        conv_ids = select(MessageRow.conversation_id).where(MessageRow.id.in_(list(signals)))
        messages = {m.id: m for m in s.scalars(
            select(MessageRow).where(MessageRow.conversation_id.in_(conv_ids)).order_by(MessageRow.id))}
        system = {cid: sp for cid, sp in s.execute(
            select(ConversationRow.id, ConversationRow.system_prompt)
            .where(ConversationRow.id.in_(conv_ids)))}
        s.expunge_all()  # rows become plain detached objects; every attribute is already loaded
    return _Snapshot(messages, system, dict(signals))


def _dense_ranks(scores: list[int]) -> list[int]:
    order = sorted(set(scores), reverse=True)
    return [order.index(x) for x in scores]


def export_feedback_rankings(store: Store) -> list[schema.Ranking]:
    """One ranking per user message whose regenerated replies were rated differently."""
    snap = _snapshot(store)
    siblings: dict[int, list[MessageRow]] = defaultdict(list)
    for m in snap.messages.values():
        if m.role == "assistant" and m.parent_id is not None:
            siblings[m.parent_id].append(m)
    out = []
    for parent_id, group in sorted(siblings.items()):
        parent = snap.messages[parent_id]
        if len(group) < 2 or parent.role != "user":
            continue
        sigs = [snap.signals.get(m.id, _Signals()) for m in group]
        scores = [g.score for g in sigs]
        if len(set(scores)) < 2:
            continue
        raters = sorted(set().union(*(g.raters for g in sigs))) or ["reports"]
        out.append(schema.Ranking(
            prefix=snap.chat(parent_id),
            completions=[m.content for m in group],
            ranks=_dense_ranks(scores),
            annotator="+".join(raters),
            flags={i: sorted(g.flags) for i, g in enumerate(sigs) if g.flags},
            meta={"source": "feedback", "conversation_id": parent.conversation_id,
                  "message_ids": [m.id for m in group],
                  "model_versions": [m.model_version for m in group], "scores": scores},
        ))
    return out


def export_same_prompt_rankings(store: Store) -> list[schema.Ranking]:
    """One ranking per exact context (system prompt + every earlier turn) answered under at least
    two different parent messages, over its rated or reported replies, when they score differently.
    Replies of one parent are already a regeneration ranking (``export_feedback_rankings``)."""
    import hashlib
    import json

    snap = _snapshot(store)
    groups: dict[str, list[MessageRow]] = defaultdict(list)
    for mid in sorted(snap.signals):
        m = snap.messages.get(mid)
        if m is None or m.role != "assistant" or m.parent_id is None or snap.messages[m.parent_id].role != "user":
            continue
        key = json.dumps(snap.chat(m.parent_id), ensure_ascii=False, sort_keys=True)
        groups[key].append(m)
    out = []
    for key, group in groups.items():
        scores = [snap.signals[m.id].score for m in group]
        if len({m.parent_id for m in group}) < 2 or len(set(scores)) < 2:
            continue
        sigs = [snap.signals[m.id] for m in group]
        out.append(schema.Ranking(
            prefix=snap.chat(group[0].parent_id),
            completions=[m.content for m in group],
            ranks=_dense_ranks(scores),
            annotator="+".join(sorted(set().union(*(g.raters for g in sigs)))) or "reports",
            flags={i: sorted(g.flags) for i, g in enumerate(sigs) if g.flags},
            meta={"source": "feedback_same_prompt", "prompt_sha256": hashlib.sha256(key.encode()).hexdigest(),
                  "conversation_ids": sorted({m.conversation_id for m in group}),
                  "message_ids": [m.id for m in group],
                  "model_versions": [m.model_version for m in group], "scores": scores},
        ))
    return out


def export_sft(store: Store, min_rating: int = 1) -> list[schema.Conversation]:
    """Demonstrations: root -> each assistant reply whose thumbs sum to at least ``min_rating``.

    A branch is left out when any assistant turn on it scores below zero (SFT would imitate that
    turn too), and a reply whose branch continues to a later exported reply is covered by it.
    """
    snap = _snapshot(store)
    chosen = []
    for mid, sig in snap.signals.items():
        msg = snap.messages.get(mid)
        if msg is None or msg.role != "assistant" or sig.reported or sig.total < min_rating:
            continue
        path = snap.path(mid)
        if any(snap.signals.get(m.id, _Signals()).score < 0 for m in path if m.role == "assistant"):
            continue
        chosen.append((mid, path))
    covered = {m.id for _, path in chosen for m in path[:-1]}
    out = []
    for mid, path in sorted(chosen, key=lambda x: x[0]):
        if mid in covered:
            continue
        msg = snap.messages[mid]
        out.append(schema.Conversation(
            messages=snap.chat(mid),
            meta={"source": "feedback", "conversation_id": msg.conversation_id, "message_id": mid,
                  "model_version": msg.model_version, "rating": snap.signals[mid].total},
        ))
    return out


def export_arena_rankings(store: Store, *, after_id: int = 0) -> list[schema.Ranking]:
    """One ranking per arena pick with an id above ``after_id``, completions in [A, B] order."""
    from chatrlhf.store.arena_tables import ArenaPickRow

    with store.session() as s:
        picks = list(s.scalars(select(ArenaPickRow).where(ArenaPickRow.id > after_id).order_by(ArenaPickRow.id)))
        conv_ids = {p.conversation_id for p in picks}
        messages = {m.id: m for m in s.scalars(
            select(MessageRow).where(MessageRow.conversation_id.in_(conv_ids)))}
        system = {cid: sp for cid, sp in s.execute(
            select(ConversationRow.id, ConversationRow.system_prompt).where(ConversationRow.id.in_(conv_ids)))}
        users = {uid: name for uid, name in s.execute(
            select(UserRow.id, UserRow.username).where(UserRow.id.in_({p.user_id for p in picks})))}
        s.expunge_all()
    snap = _Snapshot(messages, system, {})
    ranks = {"A": [0, 1], "B": [1, 0], "tie": [0, 0], "both_bad": [0, 0]}
    out = []
    for p in picks:
        a, b = messages.get(p.a_message_id), messages.get(p.b_message_id)
        if a is None or b is None or p.turn_id not in messages:
            continue  # deleted meanwhile (the pick goes with its messages, but not in one read)
        out.append(schema.Ranking(
            prefix=snap.chat(p.turn_id), completions=[a.content, b.content], ranks=ranks[p.choice],
            annotator=users.get(p.user_id, "arena"), all_unacceptable=p.choice == "both_bad",
            meta={"source": "arena", "pick_id": p.id, "choice": p.choice, "reason": p.reason,
                  "conversation_id": p.conversation_id, "message_ids": [a.id, b.id],
                  "model_versions": [p.a_version, p.b_version]},
        ))
    return out
