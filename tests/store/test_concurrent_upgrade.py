"""Migrations run by several processes at once on one PostgreSQL database, as when server
replicas start together: ``Store.upgrade`` takes an advisory lock, so one migrates, the others
wait and find the database at head. Without the lock, two of them create ``alembic_version``
together and all but one crash with a duplicate-key error (seen when the lock was taken out)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import chatrlhf
from chatrlhf.store import Store
from chatrlhf.store.db import head_revision

PROCESSES = 3


def test_processes_migrating_one_empty_database_at_once_all_succeed(pg_server):  # noqa: F811
    url = pg_server.new_database()
    # The child processes import the chatrlhf this test imported (a worktree's src/, say).
    src = str(Path(chatrlhf.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-c", "from chatrlhf.cli import main; main()", "db", "upgrade", "--db", url]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(PROCESSES)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * PROCESSES, "\n".join(o[-2000:] for o in outs)
    assert all(f"at revision {head_revision()}" in o for o in outs), outs

    # A later start (the next replica, a restart) against the migrated database changes nothing.
    with Store(url) as store:
        before = store.counts()
        store.upgrade()
        assert store.revision() == head_revision() and store.counts() == before
