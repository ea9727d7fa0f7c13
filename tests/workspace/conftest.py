"""Fixtures for the trainer-workspace tests: the shared public data folder."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def store():
    """A migrated in-memory store with three trainers, an admin and a plain user."""
    from chatrlhf.store import Store

    st = Store("sqlite://")
    st.upgrade()
    for name, role in [("ann", "trainer"), ("bob", "trainer"), ("cat", "trainer"), ("root", "admin"),
                       ("joe", "user")]:
        st.create_user(name, role=role)
    yield st
    st.dispose()


def uid(store, name: str) -> int:
    return store.get_user_by_name(name).id
