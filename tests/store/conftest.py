"""Fixtures: every store test runs on SQLite and on a throwaway PostgreSQL server.

``db_url`` is an empty database (tests of migrating from nothing use it); ``store`` is a Store on a
copy of a database migrated once per session, which saves an Alembic run per test.
"""

import shutil

import pytest
from pg_server import db_url, pg_server  # noqa: F401  (fixtures re-exported for this folder)

from chatrlhf.store import Store


def _migrate(url: str) -> None:
    s = Store(url)
    s.upgrade()
    s.dispose()  # closes every connection: a template must have none (and SQLite folds its WAL in)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "migrated.db"
    _migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template(pg_server):  # noqa: F811
    url = pg_server.new_database(name="store_migrated_template")
    _migrate(url)
    return url.rsplit("/", 1)[1]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "sqlite":
        path = tmp_path / "chatrlhf.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_server").new_database(template=request.getfixturevalue("pg_template"))
    s = Store(url)
    yield s
    s.dispose()
