"""A throwaway PostgreSQL server for tests, and a ``db_url`` fixture over SQLite and PostgreSQL.

Reuse from any test folder (``pytest.ini`` puts tests/ on the path)::

    # tests/<area>/conftest.py
    from pg_server import db_url, pg_server  # noqa: F401  (fixtures)

    def test_x(db_url):            # runs twice: [sqlite] and [postgres]
        store = Store(db_url); store.upgrade()

``pg_server`` (session scope) starts one cluster per test process with Debian's binaries
(``/usr/lib/postgresql/*/bin``, or ``$PG_BIN``) in a temp dir, on a free loopback port, as the
``postgres`` user when run as root (initdb refuses root), and removes it at the end. Each
``db_url[postgres]`` gets a fresh empty database. Without PostgreSQL the postgres cases are
skipped with the reason. Outside pytest: ``postgres_url()`` starts (once) and returns a URL.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


class PostgresUnavailable(RuntimeError):
    pass


def _bin_dir() -> Path:
    candidates = [os.environ.get("PG_BIN", "")] + sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for c in candidates:
        if c and (Path(c) / "initdb").exists():
            return Path(c)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PostgresUnavailable("no PostgreSQL binaries (apt-get install postgresql, or set PG_BIN)")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale_clusters() -> None:
    """Stop clusters left by test processes that died without tearing down (e.g. SIGKILL)."""
    for d in glob.glob(os.path.join(tempfile.gettempdir(), "chatrlhf-pg-*")):
        try:
            owner = int((Path(d) / "owner").read_text())
        except (OSError, ValueError):
            continue  # being created right now, or not ours
        if _pid_alive(owner):
            continue
        server = PostgresServer.__new__(PostgresServer)
        server.bin, server.dir, server._started = _bin_dir(), Path(d), (Path(d) / "data").exists()
        server._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        server.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One cluster in a temp dir; ``url`` points at its ``postgres`` database."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.dir = Path(tempfile.mkdtemp(prefix="chatrlhf-pg-"))
        (self.dir / "owner").write_text(str(os.getpid()))  # lets reap_stale_clusters find orphans
        self._as: list[str] = []
        if os.geteuid() == 0:
            try:
                shutil.chown(self.dir, "postgres", "postgres")
            except (LookupError, PermissionError) as e:
                raise PostgresUnavailable(f"running as root and no usable 'postgres' user: {e}") from None
            self._as = ["runuser", "-u", "postgres", "--"]
        self.port = 0
        self._counter = itertools.count()
        self._started = False

    def _run(self, *args: str) -> None:
        cmd = self._as + [str(self.bin / args[0]), *args[1:]]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise PostgresUnavailable(f"{args[0]} failed: {(r.stderr or r.stdout).strip()[-800:]}")

    def start(self) -> "PostgresServer":
        data = self.dir / "data"
        self._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")
        # Durability settings off: this cluster lives for one test run.
        opts = (f"-c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=200 -c shared_buffers=32MB")
        for attempt in range(3):  # the free port can be taken between probing and binding
            self.port = _free_port()
            try:
                self._run("pg_ctl", "-D", str(data), "-l", str(self.dir / "log"), "-w", "-t", "60",
                          "-o", f"{opts} -p {self.port}", "start")
                self._started = True
                return self
            except PostgresUnavailable:
                if attempt == 2:
                    log = (self.dir / "log").read_text(errors="replace")[-800:] if (self.dir / "log").exists() else ""
                    raise PostgresUnavailable(f"pg_ctl start failed; log tail: {log}") from None
        return self

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def new_database(self, template: str = "template0", name: str | None = None) -> str:
        """A new database (empty, or a copy of database ``template``, which must have no open
        connections); returns its URL. Copying a migrated template is faster than migrating."""
        import psycopg

        name = name or f"t{os.getpid()}_{next(self._counter)}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self._started:
            try:
                self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
            except PostgresUnavailable:
                pass
            self._started = False
        shutil.rmtree(self.dir, ignore_errors=True)


_servers: dict[str, PostgresServer] = {}


def postgres_server() -> PostgresServer:
    """The process-wide server, started on first use and stopped at exit."""
    if "pg" not in _servers:
        try:
            reap_stale_clusters()
        except PostgresUnavailable:
            pass
        server = PostgresServer()
        try:
            server.start()
        except BaseException:
            server.stop()
            raise
        _servers["pg"] = server
        atexit.register(server.stop)
    return _servers["pg"]


def postgres_url() -> str:
    """URL of a fresh database on the process-wide server (raises PostgresUnavailable)."""
    return postgres_server().new_database()


@pytest.fixture(scope="session")
def pg_server():
    try:
        server = postgres_server()
    except PostgresUnavailable as e:
        pytest.skip(f"PostgreSQL cannot be started here: {e}")
    yield server
    server.stop()
    _servers.pop("pg", None)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    """An empty database: a SQLite file in tmp_path, or a fresh database on ``pg_server``."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'chatrlhf.db'}"
    return request.getfixturevalue("pg_server").new_database()
