"""The SQL store: users, API keys, web sessions, conversations as message trees, feedback,
reports and model versions. SQLite (WAL) by default, PostgreSQL by URL; Alembic migrations.

Consumes a database URL; produces plain frozen dataclasses (``chatrlhf.store.records``), never ORM
objects, so results are safe to keep and to pass between threads. One ``Store`` is shared by a
whole server: each call opens and closes its own Session, and every write is one transaction that
has committed when the call returns (so nothing acknowledged is lost if the process is killed).

Opening::

    from chatrlhf.store import Store, NotFound, Conflict
    store = Store(url=None)   # None: $CHATRLHF_DB, else ~/.local/share/chatrlhf/chatrlhf.db
                              # a plain path = SQLite file; "sqlite://" = in memory (one
                              # shared connection: single-threaded tests only);
                              # "postgresql://..." or "postgresql+psycopg://..." = PostgreSQL
    store.upgrade()           # Alembic to head; idempotent — call once at startup
    store.counts()            # {table: rows}: prove a rejected request wrote nothing
    store.dispose()

Errors: bad input -> ``ValueError`` with a message naming the field (map to HTTP 400/422);
missing row, or a row owned by someone else when ``user_id`` is given -> ``NotFound`` (404);
duplicate unique name -> ``Conflict`` (a ValueError; 409). Limits: message content and system
prompt <= 64 KiB UTF-8, title <= 200 chars, comment <= 4000, <= 16 reasons of <= 64 chars,
meta/settings JSON <= 16 KiB, no NUL characters in any text (PostgreSQL cannot store them).

Users and auth (roles "user" | "trainer" | "admin"; ``User.is_trainer`` is true for admins too)::

    store.create_user(username, password=None, role="user") -> User     # password >= 8 chars;
        # username: 1-64 of [A-Za-z0-9_.@:+-]; password None = cannot log in by password
    store.authenticate(username, password) -> User | None                # scrypt, constant time
    store.get_user(user_id) / get_user_by_name(username) -> User | None; list_users()
    store.set_role(user_id, role) -> User; set_password(user_id, pw)  (ends that user's sessions)
    store.create_api_key(name, role="user", *, user_id=None) -> "sk-..."  # plaintext shown once;
        # only sha256 stored. Without user_id a password-less user "key:<name>" is created.
    store.verify_api_key(key) -> User | None   # None: unknown, malformed or revoked
    store.list_api_keys() -> list[ApiKey]; revoke_api_key(name) -> bool
    store.create_session(user_id, ttl_s=30 days) -> token     # for a cookie; sha256 stored
    store.user_for_session(token) -> User | None; delete_session(token)

Conversations and the message tree (ids are ints; pass ``user_id`` to enforce ownership —
someone else's conversation behaves as missing; ``user_id=None`` skips the check)::

    store.create_conversation(user_id, *, title="", system_prompt="", settings=None,
                              source="web", messages=(), model_version=None) -> StoredConversation
        # messages: optional first chain [{"role","content"[, "meta", "model_version"]}, ...]
    store.update_conversation(conv_id, user_id=None, *, title=, system_prompt=, settings=,
                              current_id=) -> StoredConversation   # None = leave unchanged
    store.delete_conversation(conv_id, user_id=None) -> bool
    store.list_conversations(user_id, *, limit=100, offset=0) -> [StoredConversation]  # headers,
        # newest update first; user_id=None lists everyone's
    store.get_conversation(conv_id, user_id=None) -> StoredConversation | None
        # .messages: every node oldest first; .feedback: all feedback on them;
        # .children(parent_id); .current_id: leaf of the branch last shown/added
    store.add_message(conv_id, role, content, *, parent_id=None, model_version=None, meta=None,
                      user_id=None) -> StoredMessage
        # a second child of the same parent is a sibling: regenerate = new assistant child of the
        # same user message; edit = new user child of the same parent. Sets current_id to it.
    store.add_messages(conv_id, [msg, ...], *, parent_id=None, model_version=None, user_id=None)
        # a chain in one transaction (e.g. an API request's messages plus the reply)
    store.update_message(message_id, *, content=None, meta=None)  # finish a streamed reply;
        # meta keys are merged
    store.get_message(message_id, user_id=None) -> StoredMessage | None
    store.siblings(message_id) -> [StoredMessage]      # same parent, itself included, oldest first
    store.path_to(message_id) -> [StoredMessage]       # root -> message
    store.prompt_messages(message_id) -> [{"role","content"}]  # path with the system prompt first

Feedback, reports, model versions::

    store.set_feedback(message_id, user_id, rating, reasons=(), comment="") -> StoredFeedback
        # rating +1/-1, assistant messages only; a user's new rating replaces the old one
    store.delete_feedback(message_id, user_id) -> bool
    store.list_feedback(*, message_id=None, user_id=None) -> [StoredFeedback]
    store.add_report(user_id, kind, *, message_id=None, comment="", text="") -> Report
        # kind: "harmful" | "untrue" | "moderation_false_positive" | "moderation_false_negative";
        # text: the moderated text (a blocked input may have no message)
    store.list_reports(*, kind=None, status=None, message_id=None) -> [Report]; resolve_report(id)
    store.add_model_version(name, path, *, status="candidate", notes="", parent=None, kind="",
                            meta=None) -> ModelVersion
        # status: "candidate" | "active" | "archived" | "rejected"; meta at most 256 KiB of JSON
    store.get_model_version(name); list_model_versions(status=None); set_model_status(name, status)
    store.update_model_meta(name, meta)                # merges top-level keys
    store.add_deployment(action, version, *, traffic=None, actor="", report="") -> Deployment
        # action: "promote" | "rollback" | "split"; use chatrlhf.deploy.registry rather than this
    store.list_deployments(limit=100) (newest first); current_deployment() -> Deployment | None

Export for training (``chatrlhf.store.export``): ``export_feedback_rankings(store)`` ->
``[schema.Ranking]`` and ``export_sft(store, min_rating=1)`` -> ``[schema.Conversation]``.

Adding tables (e.g. the trainer workspace's ``store/workspace_tables.py``): define them in a new
module of this package on ``chatrlhf.store.models.Base`` and add it to ``store/tables.py`` so Alembic
sees it; then ``chatrlhf db revision -m "..."`` (or ``chatrlhf.store.db.new_revision``) autogenerates
``migrations/versions/NNNN_*.py``; review it and commit it. ``tests/store`` checks that the models
and the migrated database agree. Add methods in your own module taking a ``Store`` and using
``store.transaction()`` / ``store.session()`` (context managers yielding a Session; one transaction).
"""

from chatrlhf.store.records import (
    ApiKey,
    ModelVersion,
    Report,
    StoredConversation,
    StoredFeedback,
    StoredMessage,
    User,
)
from chatrlhf.store.store import Conflict, NotFound, Store

__all__ = [
    "ApiKey",
    "Conflict",
    "ModelVersion",
    "NotFound",
    "Report",
    "Store",
    "StoredConversation",
    "StoredFeedback",
    "StoredMessage",
    "User",
]
