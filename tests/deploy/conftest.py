"""Fixtures: a SQLite Store migrated to head (a copy of one migrated file per session).

The registry's SQL is the store's, which tests/store runs on PostgreSQL too; here SQLite suffices.
"""

import shutil

import pytest

from chatrlhf.store import Store


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "migrated.db"
    s = Store(f"sqlite:///{path}")
    s.upgrade()
    s.dispose()
    return path


@pytest.fixture
def db_url(sqlite_template, tmp_path):
    path = tmp_path / "chatrlhf.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.dispose()
