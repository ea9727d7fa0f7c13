"""The ``Store``: every read and write the product makes, one transaction per call.

Consumes a database URL; produces the plain records of ``records.py``. Each method opens its own
Session and closes it before returning, so one Store can be shared by every thread of a server.
Writes commit before the method returns (and SQLite runs in WAL mode), so whatever a caller has
been told is saved survives the process being killed. Bad input raises ``ValueError`` before any
write; a missing row, or one the given user may not see, raises ``NotFound``; a duplicate name
raises ``Conflict``.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Iterator, Sequence

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chatrlhf.store import auth, db
from chatrlhf.store import records as R
from chatrlhf.store.validate import (
    as_utc,
    check_choice,
    check_json,
    check_name,
    check_password,
    check_reasons,
    check_text,
)
from chatrlhf.store.tables import Base  # every table, the workspace's too (Store.counts)
from chatrlhf.store.models import (
    ApiKeyRow,
    ConversationRow,
    DeploymentRow,
    FeedbackRow,
    MessageRow,
    ModelVersionRow,
    ReportRow,
    SessionRow,
    UserRow,
    utcnow,
)

log = logging.getLogger(__name__)


class NotFound(LookupError):
    """No such row, or it belongs to another user (the two are not told apart on purpose)."""


class Conflict(ValueError):
    """A unique name is already taken."""


# ---- ORM row -> record ----


def _user(r: UserRow) -> R.User:
    return R.User(r.id, r.username, r.role, as_utc(r.created_at), r.password_hash is not None)


def _message(r: MessageRow) -> R.StoredMessage:
    return R.StoredMessage(
        r.id, r.conversation_id, r.parent_id, r.role, r.content, r.model_version,
        as_utc(r.created_at), dict(r.meta or {}),
    )


def _feedback(r: FeedbackRow) -> R.StoredFeedback:
    return R.StoredFeedback(
        r.id, r.message_id, r.user_id, r.rating, list(r.reasons or []), r.comment, as_utc(r.created_at)
    )


def _conversation(r: ConversationRow, messages=(), feedback=()) -> R.StoredConversation:
    return R.StoredConversation(
        r.id, r.user_id, r.title, r.system_prompt, dict(r.settings or {}), r.source, r.current_id,
        as_utc(r.created_at), as_utc(r.updated_at), list(messages), list(feedback),
    )


def _report(r: ReportRow) -> R.Report:
    return R.Report(r.id, r.user_id, r.kind, r.message_id, r.comment, r.text, r.status, as_utc(r.created_at))


def _model_version(r: ModelVersionRow) -> R.ModelVersion:
    return R.ModelVersion(r.id, r.name, r.path, r.status, r.notes, as_utc(r.created_at),
                          parent=r.parent, kind=r.kind or "", meta=dict(r.meta or {}))


def _deployment(r: DeploymentRow) -> R.Deployment:
    return R.Deployment(r.id, r.action, r.version, dict(r.traffic or {}), r.actor, r.report,
                        as_utc(r.created_at))


class Store:
    """See the package docstring (``chatrlhf.store``) for the whole API in one place."""

    def __init__(self, url: str | None = None, *, engine: Engine | None = None) -> None:
        self.engine = engine or db.make_engine(url)
        self._write_engine = self.engine.execution_options(**{db.WRITE: True})

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def upgrade(self) -> None:
        """Create or migrate the tables (Alembic, to head). Idempotent; call it at startup."""
        db.upgrade(self.engine)

    def revision(self) -> str | None:
        return db.current_revision(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    # Public so that modules owning tables on this schema (the trainer workspace's ws_* tables)
    # run their own queries in the store's sessions and transactions.
    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read session (no transaction kept open)."""
        with Session(self.engine, expire_on_commit=False) as s:
            yield s

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: commits on success, rolls everything back on any exception."""
        with Session(self._write_engine, expire_on_commit=False) as s:
            try:
                with s.begin():
                    yield s
            except IntegrityError as e:
                # The driver's text names tables, columns and values (SQL, even other users'
                # data): it goes to the log, and the caller (an HTTP 409) gets a plain sentence.
                log.info("write refused by a database constraint: %s", e.orig)
                raise Conflict("this conflicts with a stored row (a duplicate, or a reference "
                               "to a row that no longer exists)") from None

    def counts(self) -> dict[str, int]:
        """Rows per table; tests use it to prove a rejected request changed nothing."""
        with self.session() as s:
            return {
                t.name: s.execute(select(func.count()).select_from(t)).scalar_one()
                for t in Base.metadata.sorted_tables
            }

    # ---- users ----

    def create_user(self, username: str, password: str | None = None, role: str = "user") -> R.User:
        check_name("username", username)
        check_choice("role", role, R.USER_ROLES)
        hashed = auth.hash_password(check_password(password)) if password is not None else None
        with self.transaction() as s:
            if s.scalar(select(UserRow.id).where(UserRow.username == username)) is not None:
                raise Conflict(f"user {username!r} already exists")
            row = UserRow(username=username, password_hash=hashed, role=role, created_at=utcnow())
            s.add(row)
            s.flush()
            return _user(row)

    def get_user(self, user_id: int) -> R.User | None:
        with self.session() as s:
            row = s.get(UserRow, user_id)
            return _user(row) if row else None

    def get_user_by_name(self, username: str) -> R.User | None:
        with self.session() as s:
            row = s.scalar(select(UserRow).where(UserRow.username == username))
            return _user(row) if row else None

    def list_users(self) -> list[R.User]:
        with self.session() as s:
            return [_user(r) for r in s.scalars(select(UserRow).order_by(UserRow.id))]

    def set_role(self, user_id: int, role: str) -> R.User:
        check_choice("role", role, R.USER_ROLES)
        with self.transaction() as s:
            row = s.get(UserRow, user_id)
            if row is None:
                raise NotFound(f"no user {user_id}")
            row.role = role
            return _user(row)

    def set_password(self, user_id: int, password: str) -> None:
        hashed = auth.hash_password(check_password(password))
        with self.transaction() as s:
            row = s.get(UserRow, user_id)
            if row is None:
                raise NotFound(f"no user {user_id}")
            row.password_hash = hashed
            # A new password ends every open web session of that user.
            s.execute(delete(SessionRow).where(SessionRow.user_id == user_id))

    def authenticate(self, username: str, password: str) -> R.User | None:
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        with self.session() as s:
            row = s.scalar(select(UserRow).where(UserRow.username == username))
        ok = auth.verify_password(password, row.password_hash if row else None)
        return _user(row) if ok and row else None

    # ---- API keys ----

    def create_api_key(self, name: str, role: str = "user", *, user_id: int | None = None) -> str:
        """Return a new ``sk-...`` key, shown only now: the database keeps its sha256.

        The key acts as ``user_id``; without one, a password-less service user ``key:<name>``
        with ``role`` is created for it (and owns what the key's requests store).
        """
        check_name("key name", name)
        check_choice("role", role, R.USER_ROLES)
        key = auth.new_api_key()
        with self.transaction() as s:
            if s.scalar(select(ApiKeyRow.id).where(ApiKeyRow.name == name)) is not None:
                raise Conflict(f"an API key named {name!r} already exists")
            if user_id is None:
                user = UserRow(username=f"key:{name}", role=role, created_at=utcnow())
                if s.scalar(select(UserRow.id).where(UserRow.username == user.username)):
                    raise Conflict(f"user {user.username!r} already exists")
                s.add(user)
                s.flush()
                user_id = user.id
            elif s.get(UserRow, user_id) is None:
                raise NotFound(f"no user {user_id}")
            s.add(ApiKeyRow(name=name, key_hash=auth.hash_token(key), prefix=key[:10],
                            user_id=user_id, created_at=utcnow()))
        return key

    def verify_api_key(self, key: str) -> R.User | None:
        """The user a key acts as, or None for an unknown, malformed or revoked key."""
        if not isinstance(key, str) or not key.startswith(auth.KEY_PREFIX) or len(key) > 256:
            return None
        with self.session() as s:
            row = s.execute(
                select(UserRow)
                .join(ApiKeyRow, ApiKeyRow.user_id == UserRow.id)
                .where(ApiKeyRow.key_hash == auth.hash_token(key), ApiKeyRow.revoked_at.is_(None))
            ).scalar_one_or_none()
            return _user(row) if row else None

    def list_api_keys(self) -> list[R.ApiKey]:
        with self.session() as s:
            return [
                R.ApiKey(r.id, r.name, r.prefix, r.user_id, as_utc(r.created_at), r.revoked_at is not None)
                for r in s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id))
            ]

    def revoke_api_key(self, name: str) -> bool:
        with self.transaction() as s:
            row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.name == name))
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = utcnow()
            return True

    # ---- web sessions ----

    def create_session(self, user_id: int, ttl_s: float = 30 * 86400) -> str:
        """A new session token for a cookie; the database keeps its sha256."""
        token = auth.new_session_token()
        now = utcnow()
        with self.transaction() as s:
            if s.get(UserRow, user_id) is None:
                raise NotFound(f"no user {user_id}")
            # Expired sessions are dead weight; dropping the user's old ones here keeps the table small.
            s.execute(delete(SessionRow).where(SessionRow.user_id == user_id, SessionRow.expires_at < now))
            s.add(SessionRow(token_hash=auth.hash_token(token), user_id=user_id, created_at=now,
                             expires_at=now + timedelta(seconds=ttl_s)))
        return token

    def user_for_session(self, token: str) -> R.User | None:
        if not isinstance(token, str) or not token or len(token) > 256:
            return None
        with self.session() as s:
            row = s.execute(
                select(UserRow, SessionRow.expires_at)
                .join(SessionRow, SessionRow.user_id == UserRow.id)
                .where(SessionRow.token_hash == auth.hash_token(token))
            ).one_or_none()
        if row is None or as_utc(row[1]) <= utcnow():
            return None
        return _user(row[0])

    def delete_session(self, token: str) -> None:
        with self.transaction() as s:
            s.execute(delete(SessionRow).where(SessionRow.token_hash == auth.hash_token(token)))

    # ---- conversations and the message tree ----

    @staticmethod
    def _owned(s: Session, conv_id: int, user_id: int | None) -> ConversationRow:
        row = s.get(ConversationRow, conv_id) if isinstance(conv_id, int) else None
        if row is None or (user_id is not None and row.user_id != user_id):
            raise NotFound(f"no conversation {conv_id}")
        return row

    def create_conversation(
        self, user_id: int, *, title: str = "", system_prompt: str = "",
        settings: dict[str, Any] | None = None, source: str = "web",
        messages: Sequence[dict[str, Any]] = (), model_version: str | None = None,
    ) -> R.StoredConversation:
        """A new conversation, optionally with a first chain of messages (one transaction)."""
        check_text("title", title, max_chars=R.MAX_TITLE_CHARS)
        check_text("system_prompt", system_prompt, max_bytes=R.MAX_SYSTEM_PROMPT_BYTES)
        settings = check_json("settings", settings)
        check_name("source", source)
        chain = [self._check_message(m, model_version) for m in messages]
        now = utcnow()
        with self.transaction() as s:
            if s.get(UserRow, user_id) is None:
                raise NotFound(f"no user {user_id}")
            conv = ConversationRow(user_id=user_id, title=title, system_prompt=system_prompt,
                                   settings=settings, source=source, created_at=now, updated_at=now)
            s.add(conv)
            s.flush()
            rows = self._insert_chain(s, conv, None, chain)
            return _conversation(conv, [_message(r) for r in rows])

    def update_conversation(
        self, conv_id: int, user_id: int | None = None, *, title: str | None = None,
        system_prompt: str | None = None, settings: dict[str, Any] | None = None,
        current_id: int | None = None,
    ) -> R.StoredConversation:
        """Change the given fields (None leaves a field alone)."""
        if title is not None:
            check_text("title", title, max_chars=R.MAX_TITLE_CHARS)
        if system_prompt is not None:
            check_text("system_prompt", system_prompt, max_bytes=R.MAX_SYSTEM_PROMPT_BYTES)
        if settings is not None:
            settings = check_json("settings", settings)
        with self.transaction() as s:
            conv = self._owned(s, conv_id, user_id)
            if current_id is not None:
                msg = s.get(MessageRow, current_id)
                if msg is None or msg.conversation_id != conv.id:
                    raise NotFound(f"no message {current_id} in conversation {conv_id}")
                conv.current_id = current_id
            for attr, value in (("title", title), ("system_prompt", system_prompt), ("settings", settings)):
                if value is not None:
                    setattr(conv, attr, value)
            # updated_at is left alone: it orders the conversation list by the last message, and
            # flipping between siblings or renaming should not move a conversation to the top.
            return _conversation(conv)

    def delete_conversation(self, conv_id: int, user_id: int | None = None) -> bool:
        with self.transaction() as s:
            try:
                conv = self._owned(s, conv_id, user_id)
            except NotFound:
                return False
            s.delete(conv)  # messages, feedback follow by ON DELETE CASCADE
            return True

    def list_conversations(
        self, user_id: int | None, *, limit: int = 100, offset: int = 0
    ) -> list[R.StoredConversation]:
        """Headers only (no messages), most recently updated first; user_id None lists all."""
        q = select(ConversationRow).order_by(ConversationRow.updated_at.desc(), ConversationRow.id.desc())
        if user_id is not None:
            q = q.where(ConversationRow.user_id == user_id)
        with self.session() as s:
            return [_conversation(r) for r in s.scalars(q.limit(max(0, min(limit, 1000))).offset(max(0, offset)))]

    def get_conversation(self, conv_id: int, user_id: int | None = None) -> R.StoredConversation | None:
        """The conversation with every message node (oldest first) and all feedback on them."""
        with self.session() as s:
            try:
                conv = self._owned(s, conv_id, user_id)
            except NotFound:
                return None
            msgs = s.scalars(select(MessageRow).where(MessageRow.conversation_id == conv.id)
                             .order_by(MessageRow.id)).all()
            fb = s.scalars(select(FeedbackRow).join(MessageRow, FeedbackRow.message_id == MessageRow.id)
                           .where(MessageRow.conversation_id == conv.id).order_by(FeedbackRow.id)).all()
            return _conversation(conv, [_message(m) for m in msgs], [_feedback(f) for f in fb])

    @staticmethod
    def _check_message(m: dict[str, Any], model_version: str | None) -> dict[str, Any]:
        if not isinstance(m, dict):
            raise ValueError("a message must be an object with role and content")
        mv = m.get("model_version", model_version)
        if mv is not None:
            check_text("model_version", mv, max_chars=128)
        return {
            "role": check_choice("role", m.get("role"), R.MESSAGE_ROLES),
            "content": check_text("content", m.get("content"), max_bytes=R.MAX_CONTENT_BYTES),
            "model_version": mv,
            "meta": check_json("meta", m.get("meta")),
        }

    @staticmethod
    def _insert_chain(s: Session, conv: ConversationRow, parent_id: int | None,
                      chain: list[dict[str, Any]]) -> list[MessageRow]:
        if parent_id is not None:
            parent = s.get(MessageRow, parent_id)
            if parent is None or parent.conversation_id != conv.id:
                raise NotFound(f"no message {parent_id} in conversation {conv.id}")
        rows = []
        now = utcnow()
        for m in chain:
            if m["role"] == "system" and parent_id is not None:
                raise ValueError("a system message can only be the first message (a root)")
            row = MessageRow(conversation_id=conv.id, parent_id=parent_id, created_at=now, **m)
            s.add(row)
            s.flush()  # assigns the id the next message points at
            rows.append(row)
            parent_id = row.id
        if rows:
            conv.current_id = rows[-1].id
            conv.updated_at = now
        return rows

    def add_message(
        self, conv_id: int, role: str, content: str, *, parent_id: int | None = None,
        model_version: str | None = None, meta: dict[str, Any] | None = None,
        user_id: int | None = None,
    ) -> R.StoredMessage:
        """Append a node under ``parent_id`` (None: a root). A second child of the same parent is
        a sibling: that is how regenerate and edit-and-branch are stored."""
        return self.add_messages(conv_id, [{"role": role, "content": content, "meta": meta}],
                                 parent_id=parent_id, model_version=model_version, user_id=user_id)[0]

    def add_messages(
        self, conv_id: int, messages: Sequence[dict[str, Any]], *, parent_id: int | None = None,
        model_version: str | None = None, user_id: int | None = None,
    ) -> list[R.StoredMessage]:
        """Append a chain (each message the parent of the next) in one transaction."""
        chain = [self._check_message(m, model_version) for m in messages]
        with self.transaction() as s:
            conv = self._owned(s, conv_id, user_id)
            return [_message(r) for r in self._insert_chain(s, conv, parent_id, chain)]

    def update_message(self, message_id: int, *, content: str | None = None,
                       meta: dict[str, Any] | None = None) -> R.StoredMessage:
        """Finish a message written while streaming: replace content, merge ``meta`` keys."""
        if content is not None:
            check_text("content", content, max_bytes=R.MAX_CONTENT_BYTES)
        with self.transaction() as s:
            row = s.get(MessageRow, message_id)
            if row is None:
                raise NotFound(f"no message {message_id}")
            if content is not None:
                row.content = content
            if meta is not None:
                row.meta = check_json("meta", {**(row.meta or {}), **meta})
            return _message(row)

    def get_message(self, message_id: int, user_id: int | None = None) -> R.StoredMessage | None:
        with self.session() as s:
            row = s.get(MessageRow, message_id) if isinstance(message_id, int) else None
            if row is None:
                return None
            if user_id is not None and s.get(ConversationRow, row.conversation_id).user_id != user_id:
                return None
            return _message(row)

    def siblings(self, message_id: int) -> list[R.StoredMessage]:
        """Every child of this message's parent (itself included), oldest first."""
        with self.session() as s:
            row = s.get(MessageRow, message_id)
            if row is None:
                raise NotFound(f"no message {message_id}")
            q = select(MessageRow).where(MessageRow.conversation_id == row.conversation_id)
            q = q.where(MessageRow.parent_id.is_(None) if row.parent_id is None
                        else MessageRow.parent_id == row.parent_id)
            return [_message(r) for r in s.scalars(q.order_by(MessageRow.id))]

    def path_to(self, message_id: int) -> list[R.StoredMessage]:
        """Root → ``message_id``: the branch a regenerate or an edit continues from."""
        with self.session() as s:
            row = s.get(MessageRow, message_id)
            if row is None:
                raise NotFound(f"no message {message_id}")
            nodes = {m.id: m for m in s.scalars(
                select(MessageRow).where(MessageRow.conversation_id == row.conversation_id))}
        path = [row]
        while path[-1].parent_id is not None:
            path.append(nodes[path[-1].parent_id])
        return [_message(r) for r in reversed(path)]

    def prompt_messages(self, message_id: int) -> list[dict[str, str]]:
        """``path_to`` as chat dicts, led by the conversation's system prompt when it has one."""
        path = self.path_to(message_id)
        with self.session() as s:
            system = s.get(ConversationRow, path[0].conversation_id).system_prompt
        out = [m.as_chat() for m in path]
        if system and out[0]["role"] != "system":
            out.insert(0, {"role": "system", "content": system})
        return out

    # ---- feedback and reports ----

    def set_feedback(self, message_id: int, user_id: int, rating: int,
                     reasons: Sequence[str] = (), comment: str = "") -> R.StoredFeedback:
        """Thumbs (+1/-1) on an assistant message; a user's new rating replaces their old one."""
        if rating not in (1, -1) or isinstance(rating, bool):
            raise ValueError(f"rating must be +1 or -1, got {rating!r}")
        reasons = check_reasons(list(reasons) if isinstance(reasons, tuple) else reasons)
        check_text("comment", comment, max_chars=R.MAX_COMMENT_CHARS)
        try:
            return self._upsert_feedback(message_id, user_id, rating, reasons, comment)
        except Conflict:  # a concurrent first rating by the same user won the insert: update it
            return self._upsert_feedback(message_id, user_id, rating, reasons, comment)

    def _upsert_feedback(self, message_id: int, user_id: int, rating: int, reasons: list[str],
                         comment: str) -> R.StoredFeedback:
        with self.transaction() as s:
            msg = s.get(MessageRow, message_id)
            if msg is None:
                raise NotFound(f"no message {message_id}")
            if msg.role != "assistant":
                raise ValueError("only assistant messages can be rated")
            if s.get(UserRow, user_id) is None:
                raise NotFound(f"no user {user_id}")
            row = s.scalar(select(FeedbackRow).where(FeedbackRow.message_id == message_id,
                                                     FeedbackRow.user_id == user_id))
            if row is None:
                row = FeedbackRow(message_id=message_id, user_id=user_id)
                s.add(row)
            row.rating, row.reasons, row.comment, row.created_at = rating, reasons, comment, utcnow()
            s.flush()
            return _feedback(row)

    def delete_feedback(self, message_id: int, user_id: int) -> bool:
        with self.transaction() as s:
            n = s.execute(delete(FeedbackRow).where(FeedbackRow.message_id == message_id,
                                                    FeedbackRow.user_id == user_id)).rowcount
            return bool(n)

    def list_feedback(self, *, message_id: int | None = None,
                      user_id: int | None = None) -> list[R.StoredFeedback]:
        q = select(FeedbackRow).order_by(FeedbackRow.id)
        if message_id is not None:
            q = q.where(FeedbackRow.message_id == message_id)
        if user_id is not None:
            q = q.where(FeedbackRow.user_id == user_id)
        with self.session() as s:
            return [_feedback(r) for r in s.scalars(q)]

    def add_report(self, user_id: int, kind: str, *, message_id: int | None = None,
                   comment: str = "", text: str = "") -> R.Report:
        """A reply reported as harmful/untrue, or a moderation decision reported as wrong
        (``text`` keeps the moderated input, which may have no stored message)."""
        check_choice("kind", kind, R.REPORT_KINDS)
        check_text("comment", comment, max_chars=R.MAX_COMMENT_CHARS)
        check_text("text", text, max_bytes=R.MAX_CONTENT_BYTES)
        with self.transaction() as s:
            if message_id is not None and s.get(MessageRow, message_id) is None:
                raise NotFound(f"no message {message_id}")
            if s.get(UserRow, user_id) is None:
                raise NotFound(f"no user {user_id}")
            row = ReportRow(user_id=user_id, kind=kind, message_id=message_id, comment=comment,
                            text=text, status="open", created_at=utcnow())
            s.add(row)
            s.flush()
            return _report(row)

    def list_reports(self, *, kind: str | None = None, status: str | None = None,
                     message_id: int | None = None, limit: int = 1000) -> list[R.Report]:
        q = select(ReportRow).order_by(ReportRow.id)
        for col, value in ((ReportRow.kind, kind), (ReportRow.status, status),
                           (ReportRow.message_id, message_id)):
            if value is not None:
                q = q.where(col == value)
        with self.session() as s:
            return [_report(r) for r in s.scalars(q.limit(limit))]

    def resolve_report(self, report_id: int) -> bool:
        with self.transaction() as s:
            row = s.get(ReportRow, report_id)
            if row is None or row.status == "resolved":
                return False
            row.status = "resolved"
            return True

    # ---- model versions ----

    def add_model_version(self, name: str, path: str, *, status: str = "candidate",
                          notes: str = "", parent: str | None = None, kind: str = "",
                          meta: dict[str, Any] | None = None) -> R.ModelVersion:
        check_text("name", name, max_chars=128)
        if not name:
            raise ValueError("name must not be empty")
        check_text("path", path, max_chars=4096)
        check_choice("status", status, R.MODEL_STATUSES)
        check_text("notes", notes, max_chars=R.MAX_COMMENT_CHARS)
        if parent is not None:
            check_text("parent", parent, max_chars=128)
        check_text("kind", kind, max_chars=16)
        meta = check_json("meta", meta, max_bytes=R.MAX_MODEL_META_BYTES)
        with self.transaction() as s:
            if s.scalar(select(ModelVersionRow.id).where(ModelVersionRow.name == name)) is not None:
                raise Conflict(f"model version {name!r} already exists")
            row = ModelVersionRow(name=name, path=path, status=status, notes=notes, created_at=utcnow(),
                                  parent=parent, kind=kind, meta=meta)
            s.add(row)
            s.flush()
            return _model_version(row)

    def get_model_version(self, name: str) -> R.ModelVersion | None:
        with self.session() as s:
            row = s.scalar(select(ModelVersionRow).where(ModelVersionRow.name == name))
            return _model_version(row) if row else None

    def list_model_versions(self, status: str | None = None) -> list[R.ModelVersion]:
        q = select(ModelVersionRow).order_by(ModelVersionRow.id)
        if status is not None:
            q = q.where(ModelVersionRow.status == status)
        with self.session() as s:
            return [_model_version(r) for r in s.scalars(q)]

    def set_model_status(self, name: str, status: str, notes: str | None = None) -> R.ModelVersion:
        check_choice("status", status, R.MODEL_STATUSES)
        if notes is not None:
            check_text("notes", notes, max_chars=R.MAX_COMMENT_CHARS)
        with self.transaction() as s:
            row = s.scalar(select(ModelVersionRow).where(ModelVersionRow.name == name))
            if row is None:
                raise NotFound(f"no model version {name!r}")
            row.status = status
            if notes is not None:
                row.notes = notes
            return _model_version(row)

    def update_model_meta(self, name: str, meta: dict[str, Any]) -> R.ModelVersion:
        """Merge ``meta`` into a version's meta (top-level keys replace)."""
        with self.transaction() as s:
            row = s.scalar(select(ModelVersionRow).where(ModelVersionRow.name == name))
            if row is None:
                raise NotFound(f"no model version {name!r}")
            row.meta = check_json("meta", {**(row.meta or {}), **meta}, max_bytes=R.MAX_MODEL_META_BYTES)
            return _model_version(row)

    # ---- deployments: what is served ----

    def add_deployment(self, action: str, version: str, *, traffic: dict[str, float] | None = None,
                       actor: str = "", report: str = "") -> R.Deployment:
        """Log a promote/rollback/split and make ``version`` the one served by default, in one
        transaction: it becomes ``active`` and the version active before it ``archived``."""
        check_choice("action", action, R.DEPLOY_ACTIONS)
        check_text("actor", actor, max_chars=R.MAX_NAME_CHARS)
        check_text("report", report, max_chars=R.MAX_REPORT_CHARS)
        traffic = dict(traffic or {})
        if len(traffic) > 8:
            raise ValueError("traffic: at most 8 versions")
        for name, w in traffic.items():
            if not isinstance(w, (int, float)) or isinstance(w, bool) or not 0 <= w <= 1e6:
                raise ValueError(f"traffic: the weight of {name!r} must be a number in [0, 1e6]")
        with self.transaction() as s:
            names = {version, *traffic}
            rows = {r.name: r for r in s.scalars(select(ModelVersionRow).where(ModelVersionRow.name.in_(names)))}
            missing = sorted(names - set(rows))
            if missing:
                raise NotFound(f"no model version {missing[0]!r}")
            for r in s.scalars(select(ModelVersionRow).where(ModelVersionRow.status == "active")):
                if r.name not in names:
                    r.status = "archived"
            for name in names:
                rows[name].status = "active"
            row = DeploymentRow(action=action, version=version, traffic={k: float(v) for k, v in traffic.items()},
                                actor=actor, report=report, created_at=utcnow())
            s.add(row)
            s.flush()
            return _deployment(row)

    def list_deployments(self, limit: int = 100) -> list[R.Deployment]:
        """Newest first."""
        q = select(DeploymentRow).order_by(DeploymentRow.id.desc()).limit(max(1, min(limit, 10_000)))
        with self.session() as s:
            return [_deployment(r) for r in s.scalars(q)]

    def current_deployment(self) -> R.Deployment | None:
        got = self.list_deployments(limit=1)
        return got[0] if got else None
