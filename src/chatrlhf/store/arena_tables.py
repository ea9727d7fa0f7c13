"""The arena's table and its reads and writes: side-by-side picks between two model versions.

Created by the Alembic migration ``store/migrations/versions/0300_arena.py``. An arena turn is one
user message answered by two versions at once; both replies are ordinary assistant siblings in
``messages`` whose ``meta["arena"]`` is ``{"turn": <user message id>, "side": "A"|"B"}``. A pick is
one row of ``arena_picks`` per turn (the database refuses a second), written together with
``meta["arena"]["choice"]`` on both replies and the conversation's ``current_id`` moving to the
reply the chat continues from (``continue_from``). ``server/arena.py`` writes picks;
``store/export.py`` and ``deploy/feedback.py`` read them as rankings; ``deploy/monitor.py`` reads
those of its window for the monitoring page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from chatrlhf.store.models import Base, ConversationRow, MessageRow, utcnow

CHOICES = ("A", "B", "tie", "both_bad")
MAX_REASON_CHARS = 1000


class ArenaPickRow(Base):
    __tablename__ = "arena_picks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    # The user message both replies answer; one pick per turn, ever.
    turn_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), unique=True)
    a_message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    b_message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    a_version: Mapped[str] = mapped_column(String(128))
    b_version: Mapped[str] = mapped_column(String(128))
    choice: Mapped[str] = mapped_column(String(16))  # A | B | tie | both_bad
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


@dataclass(frozen=True)
class ArenaPick:
    id: int
    user_id: int
    conversation_id: int
    turn_id: int
    a_message_id: int
    b_message_id: int
    a_version: str
    b_version: str
    choice: str
    reason: str
    created_at: datetime

    @property
    def chosen_id(self) -> int:
        return continue_from(self.choice, self.a_message_id, self.b_message_id)


def _pick(r: ArenaPickRow) -> ArenaPick:
    return ArenaPick(r.id, r.user_id, r.conversation_id, r.turn_id, r.a_message_id, r.b_message_id,
                     r.a_version, r.b_version, r.choice, r.reason, r.created_at)


def continue_from(choice: str, a_id: int, b_id: int) -> int:
    """The reply the conversation goes on from: the picked one; A after a tie or "both bad"
    (the sides are drawn at random per turn, so A is either version equally often)."""
    return b_id if choice == "B" else a_id


def arena_replies(messages: list[Any], turn_id: int) -> dict[str, Any]:
    """``{"A": message, "B": message}`` among ``messages`` (any objects with ``parent_id`` and
    ``meta``) that answer turn ``turn_id`` side by side; fewer keys when it is no arena turn."""
    out = {}
    for m in messages:
        arena = (m.meta or {}).get("arena") or {}
        if m.parent_id == turn_id and arena.get("turn") == turn_id and arena.get("side") in ("A", "B"):
            out.setdefault(arena["side"], m)
    return out


def add_pick(store: Any, user_id: int, turn_id: int, choice: str, reason: str = "") -> ArenaPick:
    """Record ``user_id``'s pick on turn ``turn_id`` (their own user message). ``NotFound`` when it
    is not theirs or no arena turn, ``ValueError`` for bad input or replies still streaming,
    ``Conflict`` for a second pick. One transaction: the row, both replies' meta, current_id."""
    from chatrlhf.store import NotFound
    from chatrlhf.store.validate import check_choice, check_text

    check_choice("choice", choice, CHOICES)
    check_text("reason", reason, max_chars=MAX_REASON_CHARS)
    with store.transaction() as s:
        turn = s.get(MessageRow, turn_id)
        conv = s.get(ConversationRow, turn.conversation_id) if turn is not None else None
        if turn is None or conv is None or conv.user_id != user_id or turn.role != "user":
            raise NotFound(f"no arena turn {turn_id}")
        kids = list(s.scalars(select(MessageRow).where(MessageRow.parent_id == turn_id)))
        sides = arena_replies(kids, turn_id)
        if set(sides) != {"A", "B"}:
            raise NotFound(f"no arena turn {turn_id}")
        if any((m.meta or {}).get("status") == "streaming" for m in sides.values()):
            raise ValueError("the replies are still streaming; pick when both have finished")
        a, b = sides["A"], sides["B"]
        row = ArenaPickRow(user_id=user_id, conversation_id=conv.id, turn_id=turn_id,
                           a_message_id=a.id, b_message_id=b.id, a_version=a.model_version or "",
                           b_version=b.model_version or "", choice=choice, reason=reason)
        s.add(row)
        s.flush()  # a second pick on the turn fails here (unique turn_id): Conflict
        for m in (a, b):
            m.meta = {**(m.meta or {}), "arena": {**m.meta["arena"], "choice": choice}}
        conv.current_id = continue_from(choice, a.id, b.id)
        conv.updated_at = utcnow()
        return _pick(row)


def list_picks(store: Any, *, after_id: int = 0, limit: int | None = None, since: datetime | None = None,
               until: datetime | None = None) -> list[ArenaPick]:
    """Picks with ids above ``after_id``, oldest first; with ``since`` / ``until``, only those made
    in that window (``created_at``, both ends included, as ``deploy.monitor`` counts replies)."""
    with store.session() as s:
        q = select(ArenaPickRow).where(ArenaPickRow.id > after_id).order_by(ArenaPickRow.id)
        if since is not None:
            q = q.where(ArenaPickRow.created_at >= since)
        if until is not None:
            q = q.where(ArenaPickRow.created_at <= until)
        if limit is not None:
            q = q.limit(limit)
        return [_pick(r) for r in s.scalars(q)]
