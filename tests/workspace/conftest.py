"""Fixtures for the trainer-workspace tests: the shared public data folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from pg_server import pg_server  # noqa: F401  (the shared throwaway PostgreSQL fixture)

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public test data not found at {SHARED_DATA}")
    return SHARED_DATA


def seeded_store(url: str):
    """A migrated store with three trainers, an admin and a plain user."""
    from chatrlhf.store import Store

    st = Store(url)
    st.upgrade()
    for name, role in [("ann", "trainer"), ("bob", "trainer"), ("cat", "trainer"), ("root", "admin"),
                       ("joe", "user")]:
        st.create_user(name, role=role)
    return st


@pytest.fixture
def store():
    st = seeded_store("sqlite://")
    yield st
    st.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request):
    """The same store on SQLite and on a throwaway PostgreSQL server (skipped with a reason when
    PostgreSQL cannot start here)."""
    if request.param == "sqlite":
        url = "sqlite://"
    else:
        url = request.getfixturevalue("pg_server").new_database()  # skips with the reason if it can't start
    st = seeded_store(url)
    yield st
    st.dispose()


def uid(store, name: str) -> int:
    return store.get_user_by_name(name).id
