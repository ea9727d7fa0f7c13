"""Plain dataclasses the store returns, and the input limits it enforces.

The store never hands out ORM objects: a detached ORM object loads lazily from a Session that is
gone, and sharing one across threads is unsafe. These frozen records are safe to keep, cache and
pass between threads, and they serialise with ``dataclasses.asdict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

USER_ROLES = ("user", "trainer", "admin")
MESSAGE_ROLES = ("system", "user", "assistant")
REPORT_KINDS = ("harmful", "untrue", "moderation_false_positive", "moderation_false_negative")
MODEL_STATUSES = ("candidate", "active", "archived", "rejected")
DEPLOY_ACTIONS = ("promote", "rollback", "split")

# Bounds checked before anything is written, so an oversized request fails with a clear
# ValueError instead of a driver error (or a silently huge row).
MAX_CONTENT_BYTES = 64 * 1024
MAX_SYSTEM_PROMPT_BYTES = 64 * 1024
MAX_TITLE_CHARS = 200
MAX_COMMENT_CHARS = 4000
MAX_REASONS = 16
MAX_REASON_CHARS = 64
MAX_JSON_BYTES = 16 * 1024
MAX_MODEL_META_BYTES = 256 * 1024  # a version's config, data hashes and evaluation results
MAX_REPORT_CHARS = 64 * 1024  # a promotion decision's report
MAX_NAME_CHARS = 64
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    created_at: datetime
    has_password: bool = True  # False for the service user behind an API key

    @property
    def is_trainer(self) -> bool:
        return self.role in ("trainer", "admin")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    prefix: str  # the first characters of the key, to recognise it in a list; never the key
    user_id: int
    created_at: datetime
    revoked: bool


@dataclass(frozen=True)
class StoredMessage:
    id: int
    conversation_id: int
    parent_id: int | None
    role: str
    content: str
    model_version: str | None
    created_at: datetime
    meta: dict[str, Any] = field(default_factory=dict)

    def as_chat(self) -> dict[str, str]:
        """The ``{"role", "content"}`` dict that schema, chat_format and the OpenAI protocol use."""
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class StoredFeedback:
    id: int
    message_id: int
    user_id: int
    rating: int  # +1 / -1
    reasons: list[str]
    comment: str
    created_at: datetime


@dataclass(frozen=True)
class StoredConversation:
    id: int
    user_id: int
    title: str
    system_prompt: str
    settings: dict[str, Any]
    source: str  # "web" | "api" | anything a caller chooses
    current_id: int | None  # the message the UI last showed (the leaf of the visible branch)
    created_at: datetime
    updated_at: datetime
    # Filled by get_conversation only (list_conversations leaves them empty):
    messages: list[StoredMessage] = field(default_factory=list)  # every node, oldest first
    feedback: list[StoredFeedback] = field(default_factory=list)  # on any of those messages

    def children(self, parent_id: int | None) -> list[StoredMessage]:
        return [m for m in self.messages if m.parent_id == parent_id]


@dataclass(frozen=True)
class Report:
    id: int
    user_id: int
    kind: str
    message_id: int | None
    comment: str
    text: str  # the text the report is about (e.g. the moderated input), kept even if it changes
    status: str  # "open" | "resolved"
    created_at: datetime


@dataclass(frozen=True)
class ModelVersion:
    id: int
    name: str
    path: str
    status: str
    notes: str
    created_at: datetime
    parent: str | None = None  # the version it was trained from (lineage)
    kind: str = ""  # base | sft | rm | ppo | loop | ...
    meta: dict[str, Any] = field(default_factory=dict)  # config, data hashes, eval results


@dataclass(frozen=True)
class Deployment:
    id: int
    action: str
    version: str  # serving by default after this entry
    traffic: dict[str, float]  # a weighted split {version: weight}; {} = all to ``version``
    actor: str
    report: str
    created_at: datetime
