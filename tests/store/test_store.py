"""Store behaviour on SQLite and PostgreSQL: CRUD, trees, auth, hashing, limits, transactions."""

import threading
from datetime import timezone

import pytest
from sqlalchemy import text

from chatrlhf.store import Conflict, NotFound, Store
from chatrlhf.store.db import head_revision
from chatrlhf.store.models import Base


def _all_text(store: Store) -> str:
    """Every value of every row, as one string (to prove a secret is not stored)."""
    parts = []
    with store.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(table.select()):
                parts.extend(str(v) for v in row)
    return "\n".join(parts)


def test_migrations_create_exactly_the_models(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    store = Store(db_url)
    assert store.revision() is None
    store.upgrade()
    assert store.revision() == head_revision()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations disagree; add a migration: {diff}"
    before = store.counts()
    store.upgrade()  # idempotent
    assert store.counts() == before and store.revision() == head_revision()
    store.dispose()


def test_users_passwords_and_roles(store):
    alice = store.create_user("alice", "correct horse", role="trainer")
    assert (alice.username, alice.role, alice.is_trainer, alice.is_admin) == ("alice", "trainer", True, False)
    assert alice.created_at.tzinfo == timezone.utc
    assert store.authenticate("alice", "correct horse") == alice
    assert store.authenticate("alice", "wrong horse") is None
    assert store.authenticate("nobody", "correct horse") is None
    assert "correct horse" not in _all_text(store)
    with pytest.raises(Conflict):
        store.create_user("alice", "another password")
    with pytest.raises(ValueError, match="role"):
        store.create_user("bob", "password1", role="root")
    with pytest.raises(ValueError, match="at least 8"):
        store.create_user("bob", "short")
    with pytest.raises(ValueError, match="username"):
        store.create_user("bad name!", "password1")
    assert store.set_role(alice.id, "admin").is_admin
    assert store.get_user_by_name("alice").role == "admin"
    assert [u.username for u in store.list_users()] == ["alice"]
    # A new password works, the old one stops working, and open sessions end.
    token = store.create_session(alice.id)
    store.set_password(alice.id, "new password")
    assert store.authenticate("alice", "correct horse") is None
    assert store.authenticate("alice", "new password").id == alice.id
    assert store.user_for_session(token) is None
    # A user without a password cannot log in with any password.
    store.create_user("svc")
    assert store.authenticate("svc", "") is None and store.authenticate("svc", "anything!") is None


def test_api_keys_are_hashed_and_revocable(store):
    key = store.create_api_key("ci", role="trainer")
    assert key.startswith("sk-") and len(key) > 40
    user = store.verify_api_key(key)
    assert user is not None and user.username == "key:ci" and user.role == "trainer"
    assert not user.has_password
    assert key not in _all_text(store)  # only the sha256 is stored
    assert store.verify_api_key(key + "x") is None
    assert store.verify_api_key("not-a-key") is None
    assert store.verify_api_key("") is None
    with pytest.raises(Conflict):
        store.create_api_key("ci")
    # A key can act as an existing user.
    alice = store.create_user("alice", "password1")
    key2 = store.create_api_key("alice-laptop", user_id=alice.id)
    assert store.verify_api_key(key2).id == alice.id
    keys = store.list_api_keys()
    assert [(k.name, k.prefix, k.revoked) for k in keys] == [("ci", key[:10], False), ("alice-laptop", key2[:10], False)]
    assert store.revoke_api_key("ci") and not store.revoke_api_key("ci")
    assert store.verify_api_key(key) is None and store.verify_api_key(key2).id == alice.id
    with pytest.raises(NotFound):
        store.create_api_key("ghost", user_id=9999)


def test_web_sessions(store):
    alice = store.create_user("alice")
    token = store.create_session(alice.id)
    assert store.user_for_session(token) == alice
    assert token not in _all_text(store)
    assert store.user_for_session(token + "x") is None and store.user_for_session("") is None
    expired = store.create_session(alice.id, ttl_s=-1)
    assert store.user_for_session(expired) is None
    assert store.counts()["web_sessions"] == 2
    store.create_session(alice.id)  # purges the expired one
    assert store.counts()["web_sessions"] == 2
    store.delete_session(token)
    assert store.user_for_session(token) is None
    with pytest.raises(NotFound):
        store.create_session(9999)


def test_message_tree_regenerate_and_branch(store):
    alice = store.create_user("alice")
    bob = store.create_user("bob")
    conv = store.create_conversation(
        alice.id, title="Capitals", system_prompt="Be brief.", settings={"temperature": 0.7},
        messages=[{"role": "user", "content": "Capital of France?"},
                  {"role": "assistant", "content": "Paris.", "meta": {"finish_reason": "stop"}}],
        model_version="sft-1",
    )
    q, a1 = conv.messages
    assert (q.parent_id, a1.parent_id, a1.model_version, a1.meta) == (None, q.id, "sft-1", {"finish_reason": "stop"})
    assert conv.current_id == a1.id and conv.settings == {"temperature": 0.7}
    a2 = store.add_message(conv.id, "assistant", "It is Paris.", parent_id=q.id, model_version="sft-2")
    q2 = store.add_message(conv.id, "user", "Capital of Italy?", user_id=alice.id)  # an edited first turn
    a3 = store.add_message(conv.id, "assistant", "Rome.", parent_id=q2.id)
    f = store.add_message(conv.id, "user", "And Spain?", parent_id=a2.id)
    assert [m.id for m in store.siblings(a1.id)] == [a1.id, a2.id]
    assert [m.id for m in store.siblings(q.id)] == [q.id, q2.id]
    assert [m.content for m in store.path_to(f.id)] == ["Capital of France?", "It is Paris.", "And Spain?"]
    assert store.prompt_messages(a3.id) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of Italy?"},
        {"role": "assistant", "content": "Rome."},
    ]
    full = store.get_conversation(conv.id, alice.id)
    assert [m.id for m in full.messages] == [q.id, a1.id, a2.id, q2.id, a3.id, f.id]
    assert [m.id for m in full.children(q.id)] == [a1.id, a2.id]
    assert full.current_id == f.id and full.updated_at >= conv.updated_at
    # Ownership: someone else's conversation behaves as missing.
    assert store.get_conversation(conv.id, bob.id) is None
    with pytest.raises(NotFound):
        store.add_message(conv.id, "user", "hi", user_id=bob.id)
    assert store.get_message(a1.id, bob.id) is None and store.get_message(a1.id, alice.id) == a1
    # A parent must be in the same conversation.
    other = store.create_conversation(alice.id, title="Other")
    with pytest.raises(NotFound):
        store.add_message(other.id, "assistant", "x", parent_id=q.id)
    with pytest.raises(ValueError, match="system"):
        store.add_message(conv.id, "system", "late system", parent_id=a1.id)
    # Listing: newest update first, own conversations only.
    store.create_conversation(bob.id, title="Bob's")
    assert [c.title for c in store.list_conversations(alice.id)] == ["Other", "Capitals"]
    assert store.list_conversations(alice.id)[1].messages == []
    assert len(store.list_conversations(None)) == 3
    upd = store.update_conversation(conv.id, alice.id, title="Europe", current_id=a1.id)
    assert (upd.title, upd.current_id, upd.system_prompt) == ("Europe", a1.id, "Be brief.")
    assert store.get_conversation(conv.id).current_id == a1.id
    # Renaming or flipping siblings does not reorder the list; a new message does.
    assert [c.title for c in store.list_conversations(alice.id)] == ["Other", "Europe"]
    store.add_message(conv.id, "user", "More?", parent_id=a1.id)
    assert [c.title for c in store.list_conversations(alice.id)] == ["Europe", "Other"]
    with pytest.raises(NotFound):
        store.update_conversation(conv.id, alice.id, current_id=other.id + 1000)
    done = store.update_message(a2.id, content="It is Paris!", meta={"usage": 3})
    assert (done.content, done.meta) == ("It is Paris!", {"usage": 3})
    # Deleting a conversation removes its messages and their feedback.
    store.set_feedback(a1.id, alice.id, 1)
    assert not store.delete_conversation(conv.id, bob.id)
    assert store.delete_conversation(conv.id, alice.id)
    assert store.get_conversation(conv.id) is None
    assert store.counts()["messages"] == 0 and store.counts()["feedback"] == 0


def test_feedback_reports_and_model_versions(store):
    alice = store.create_user("alice")
    conv = store.create_conversation(alice.id, messages=[{"role": "user", "content": "q"},
                                                         {"role": "assistant", "content": "a"}])
    q, a = conv.messages
    fb = store.set_feedback(a.id, alice.id, -1, reasons=["untrue", "too long"], comment="wrong")
    assert (fb.rating, fb.reasons, fb.comment) == (-1, ["untrue", "too long"], "wrong")
    fb2 = store.set_feedback(a.id, alice.id, 1)  # changing a thumb replaces it
    assert fb2.id == fb.id and (fb2.rating, fb2.reasons) == (1, [])
    assert [f.rating for f in store.list_feedback(message_id=a.id)] == [1]
    assert store.get_conversation(conv.id).feedback == [fb2]
    for bad in (0, 2, True, "1"):
        with pytest.raises(ValueError, match="rating"):
            store.set_feedback(a.id, alice.id, bad)
    with pytest.raises(ValueError, match="assistant"):
        store.set_feedback(q.id, alice.id, 1)
    with pytest.raises(ValueError, match="reasons"):
        store.set_feedback(a.id, alice.id, 1, reasons="untrue")
    with pytest.raises(NotFound):
        store.set_feedback(9999, alice.id, 1)
    with pytest.raises(NotFound):
        store.set_feedback(a.id, 9999, 1)
    assert store.delete_feedback(a.id, alice.id) and not store.delete_feedback(a.id, alice.id)

    r1 = store.add_report(alice.id, "harmful", message_id=a.id, comment="dangerous")
    r2 = store.add_report(alice.id, "moderation_false_positive", text="how do I kill a python process")
    assert (r1.message_id, r1.status, r2.message_id, r2.text) == (a.id, "open", None, "how do I kill a python process")
    with pytest.raises(ValueError, match="kind"):
        store.add_report(alice.id, "rude")
    assert store.resolve_report(r1.id) and not store.resolve_report(r1.id)
    assert [r.id for r in store.list_reports(status="open")] == [r2.id]
    assert [r.id for r in store.list_reports(kind="harmful")] == [r1.id]

    mv = store.add_model_version("sft-1", "runs/a/sft", notes="first")
    assert (mv.name, mv.status) == ("sft-1", "candidate")
    with pytest.raises(Conflict):
        store.add_model_version("sft-1", "elsewhere")
    assert store.set_model_status("sft-1", "active").status == "active"
    assert [m.name for m in store.list_model_versions(status="active")] == ["sft-1"]
    with pytest.raises(ValueError, match="status"):
        store.set_model_status("sft-1", "live")


def test_limits_reject_before_writing(store):
    alice = store.create_user("alice")
    conv = store.create_conversation(alice.id)
    before = store.counts()
    cases = [
        dict(role="user", content="x" * (64 * 1024 + 1)),
        dict(role="user", content="é" * (32 * 1024 + 1)),  # 64 KiB + 2 bytes of UTF-8
        dict(role="user", content="nul\x00byte"),
        dict(role="user", content="lone \ud800 surrogate"),
        dict(role="user", content=None),
        dict(role="tool", content="x"),
        dict(role="user", content="x", meta={"blob": "y" * 20000}),
        dict(role="user", content="x", meta={"f": object()}),
    ]
    for m in cases:
        with pytest.raises(ValueError):
            store.add_messages(conv.id, [m])
    with pytest.raises(ValueError, match="title"):
        store.create_conversation(alice.id, title="t" * 201)
    with pytest.raises(ValueError, match="settings"):
        store.create_conversation(alice.id, settings=["not", "a", "dict"])
    with pytest.raises(ValueError, match="comment"):
        store.add_report(alice.id, "untrue", comment="c" * 5000)
    assert store.counts() == before
    # The limit itself is accepted.
    m = store.add_message(conv.id, "user", "x" * (64 * 1024))
    assert len(store.get_message(m.id).content) == 64 * 1024


def test_failing_write_leaves_nothing(store):
    alice = store.create_user("alice")
    before = store.counts()
    # The conversation row and two messages are flushed before the system message in the
    # middle of the chain fails: the whole transaction must roll back.
    chain = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
             {"role": "system", "content": "late"}]
    with pytest.raises(ValueError, match="system"):
        store.create_conversation(alice.id, title="doomed", messages=chain)
    assert store.counts() == before
    conv = store.create_conversation(alice.id, messages=chain[:1])
    before = store.counts()
    with pytest.raises(ValueError):
        store.add_messages(conv.id, chain[1:], parent_id=conv.messages[0].id)
    assert store.counts() == before
    assert store.get_conversation(conv.id).current_id == conv.messages[0].id


def test_concurrent_writers_from_threads(store):
    alice = store.create_user("alice")
    conv = store.create_conversation(alice.id, messages=[{"role": "user", "content": "q"}])
    root = conv.messages[0].id
    errors = []

    def worker(i):
        try:
            for j in range(5):
                m = store.add_message(conv.id, "assistant", f"{i}-{j}", parent_id=root)
                store.set_feedback(m.id, alice.id, 1 if j % 2 else -1)
        except Exception as e:  # collected: a thread's exception would otherwise vanish
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.siblings(conv.messages[0].id + 1)) == 30
    assert sorted(m.content for m in store.siblings(conv.messages[0].id + 1)) == sorted(
        f"{i}-{j}" for i in range(6) for j in range(5))
    assert store.counts()["feedback"] == 30


def test_sqlite_is_wal_with_foreign_keys(tmp_path):
    store = Store(str(tmp_path / "x.db"))  # a plain path means a SQLite file
    store.upgrade()
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    store.dispose()


def test_default_url_uses_env(tmp_path, monkeypatch):
    from chatrlhf.store.db import resolve_url

    monkeypatch.setenv("CHATRLHF_DB", str(tmp_path / "env.db"))
    assert resolve_url() == f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.delenv("CHATRLHF_DB")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert resolve_url() == f"sqlite:///{tmp_path / 'data' / 'chatrlhf' / 'chatrlhf.db'}"
    assert resolve_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"


def test_a_constraint_violation_is_a_conflict_without_the_database_text(store):
    from chatrlhf.store.models import UserRow
    from chatrlhf.store.models import utcnow

    store.create_user("zqname")
    with pytest.raises(Conflict) as e:
        with store.transaction() as s:  # past create_user's own check, as a race between two writers
            s.add(UserRow(username="zqname", role="user", created_at=utcnow()))
    text = str(e.value).lower()
    assert "conflicts with a stored row" in text
    assert not any(word in text for word in ("unique", "constraint", "users", "zqname", "insert", "key"))


def test_pool_serves_every_server_thread_at_once(store):
    """The server's 40 worker threads can each hold a connection: the 16th does not wait for one
    (SQLAlchemy's default pool of 5 + 10 would block it for the pool timeout, then fail)."""
    from chatrlhf.store.db import SERVER_THREADS

    held = []
    try:
        for _ in range(SERVER_THREADS):
            held.append(store.engine.connect())
            held[-1].execute(text("SELECT 1"))
        assert len(held) == SERVER_THREADS
    finally:
        for c in held:
            c.close()
