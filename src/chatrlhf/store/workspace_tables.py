"""SQLAlchemy tables of the AI-trainer workspace, on the store's declarative ``Base``.

Created by the Alembic migration ``store/migrations/versions/0100_workspace.py``; ``workspace.py``
is the only module that reads or writes them. Every table is prefixed ``ws_`` so the workspace's
schema is visibly separate from the chat product's.

- ``ws_prompt_lists`` / ``ws_prompts``: prompt lists an admin uploads (conversation prefixes ending
  on a user turn) that ranking tasks can be drawn from.
- ``ws_ranking_tasks``: one conversation prefix to rank, how many trainers must rank it, and where
  it came from. ``ws_task_completions``: its K completions, each with a shuffled display position
  and the model that wrote it (never sent to trainers).
- ``ws_assignments``: which trainer holds which task (one row per trainer and task, ever, so a
  trainer never gets a task twice). ``ws_rankings``: a submitted ranking; ``ranks``/``flags`` are
  keyed by display position. Imported rankings have no user, only an annotator name.
- ``ws_demos``: demonstrations, from a draft that is autosaved as the trainer types to a submitted
  SFT record (or imported ones).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from chatrlhf.store.models import Base, utcnow


class PromptListRow(Base):
    __tablename__ = "ws_prompt_lists"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PromptRow(Base):
    __tablename__ = "ws_prompts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("ws_prompt_lists.id", ondelete="CASCADE"), index=True)
    messages: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    used: Mapped[int] = mapped_column(Integer, default=0)  # tasks made from it, to spread picks


class RankingTaskRow(Base):
    __tablename__ = "ws_ranking_tasks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    required: Mapped[int] = mapped_column(Integer, default=1)  # independent trainers wanted
    source: Mapped[str] = mapped_column(String(64))  # "conversation" | "prompt_list" | "import:<fmt>"
    source_ref: Mapped[str] = mapped_column(String(128), default="")
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)  # open|closed
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class TaskCompletionRow(Base):
    __tablename__ = "ws_task_completions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("ws_ranking_tasks.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # shuffled display order, 0..K-1
    text: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(128), default="")  # hidden from trainers
    __table_args__ = (UniqueConstraint("task_id", "position", name="uq_ws_task_completions_task_pos"),)


class AssignmentRow(Base):
    __tablename__ = "ws_assignments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("ws_ranking_tasks.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="assigned")  # assigned|submitted|released
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The database, not the code, guarantees a trainer is never handed the same task twice.
    __table_args__ = (UniqueConstraint("task_id", "user_id", name="uq_ws_assignments_task_user"),)


class RankingRow(Base):
    __tablename__ = "ws_rankings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("ws_ranking_tasks.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    annotator: Mapped[str] = mapped_column(String(64))
    ranks: Mapped[list[int]] = mapped_column(JSON)  # ranks[p] = rank of display position p
    flags: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)  # "p" -> labels
    all_unacceptable: Mapped[bool] = mapped_column(Boolean, default=False)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DemoRow(Base):
    __tablename__ = "ws_demos"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    messages: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft|submitted
    source: Mapped[str] = mapped_column(String(64), default="workspace")
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (Index("ix_ws_demos_user_status", "user_id", "status"),)


WORKSPACE_TABLES = [t.__tablename__ for t in (PromptListRow, PromptRow, RankingTaskRow, TaskCompletionRow,
                                              AssignmentRow, RankingRow, DemoRow)]
