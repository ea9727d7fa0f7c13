"""Database URLs, engines and migrations for the store.

- ``resolve_url(url)``: an explicit URL or path, else ``$CHATRLHF_DB``, else a SQLite file in the
  user data dir. ``postgresql://`` is read as ``postgresql+psycopg://`` (psycopg 3).
- ``make_engine(url)``: SQLite gets WAL, foreign keys, a busy timeout, and ``BEGIN IMMEDIATE`` for
  write transactions (so two writers queue instead of failing with "database is locked").
- ``upgrade(engine)`` / ``current_revision(engine)``: Alembic driven from code, no alembic.ini.
- ``new_revision(message)``: developer helper that autogenerates a migration file from the models.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Execution option that marks a write transaction (SQLite takes the write lock at BEGIN).
WRITE = "chatrlhf_write"


def default_db_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "chatrlhf" / "chatrlhf.db"


def resolve_url(url: str | os.PathLike | None = None) -> str:
    """A SQLAlchemy URL from a URL, a file path, ``$CHATRLHF_DB``, or the default file."""
    url = url or os.environ.get("CHATRLHF_DB") or default_db_path()
    url = str(url)
    if "://" not in url:  # a plain path to a SQLite file
        path = Path(url).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # The driver's own transaction handling would BEGIN lazily and deferred; we issue BEGIN
    # ourselves (see _sqlite_begin), so switch it off.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    if cur.execute("PRAGMA journal_mode").fetchone()[0] != "memory":
        # WAL: readers never block the writer; synchronous=NORMAL keeps every committed
        # transaction when the process is killed (only a power cut can lose the last ones).
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # A deferred transaction that later writes can fail at once with SQLITE_BUSY (no waiting)
    # when another writer got there first; taking the write lock up front makes it wait.
    mode = "BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN"
    conn.exec_driver_sql(mode)


# The server runs store calls in anyio's worker threads, 40 of them by default. SQLAlchemy's
# default pool (5 + 10 overflow) would leave 25 of those threads waiting for a connection while
# streams flush every 2 s; the pool holds as many connections as there are threads. A request
# that still finds none fails after POOL_TIMEOUT seconds instead of hanging.
SERVER_THREADS = 40
POOL_SIZE = 8
POOL_TIMEOUT = 30


def _pool_kwargs() -> dict[str, Any]:
    return {"pool_size": POOL_SIZE, "max_overflow": SERVER_THREADS - POOL_SIZE, "pool_timeout": POOL_TIMEOUT}


def make_engine(url: str | None = None) -> Engine:
    url = resolve_url(url)
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        memory = u.database in (None, "", ":memory:") or "mode=memory" in str(u.query)
        if not memory:
            Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs.update(_pool_kwargs())
        else:
            from sqlalchemy.pool import StaticPool

            # One shared connection, else every pooled connection sees its own empty database.
            kwargs["poolclass"] = StaticPool
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, **_pool_kwargs())


def _alembic_config(connection: Any = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision``; safe to call on every start and from many processes."""
    from alembic import command

    with engine.connect().execution_options(**{WRITE: True}) as conn:
        with conn.begin():
            if conn.dialect.name == "postgresql":
                # Serialise concurrent upgraders (e.g. several server replicas starting at once):
                # without it two of them CREATE TABLE alembic_version together and the loser
                # crashes on a duplicate key. Held to the end of this transaction, so a waiter
                # then reads the winner's alembic_version and has nothing left to do.
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727274)")
            command.upgrade(_alembic_config(conn), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def new_revision(message: str, rev_id: str | None = None) -> str:
    """Autogenerate a migration from the models (developers only): returns the new file's path.

    It diffs the models against a scratch SQLite database migrated to head; review the file
    (autogenerate misses some changes, e.g. renames) and add it to git.
    """
    import tempfile

    from alembic import command

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/scratch.db")
        upgrade(engine)
        with engine.connect() as conn:
            script = command.revision(
                _alembic_config(conn), message=message, autogenerate=True, rev_id=rev_id
            )
        engine.dispose()
    assert script is not None and not isinstance(script, list)
    return str(script.path)
