"""The auth dependencies every router uses: API key or session cookie, roles checked server-side."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Depends
from fastapi.testclient import TestClient
from server_fakes import FakeEngine

from chatrlhf.server.app import create_app
from chatrlhf.server.auth import SESSION_COOKIE, current_user, optional_user, require_role
from chatrlhf.server.scheduler import BatchScheduler
from chatrlhf.server.service import ChatService


@pytest.fixture
def setup(tmp_path):
    from chatrlhf.store import Store

    store = Store(f"sqlite:///{tmp_path / 'auth.db'}")
    store.upgrade()
    app = create_app(ChatService(BatchScheduler(FakeEngine()), None, model_name="fake"), store=store)

    @app.get("/t/me")
    def me(user: Any = Depends(current_user)) -> dict:
        return {"name": user.username, "role": user.role}

    @app.get("/t/maybe")
    def maybe(user: Any = Depends(optional_user)) -> dict:
        return {"name": user.username if user else None}

    @app.get("/t/trainer")
    def trainer(user: Any = Depends(require_role("trainer"))) -> dict:
        return {"ok": True}

    @app.get("/t/admin")
    def admin(user: Any = Depends(require_role("admin"))) -> dict:
        return {"ok": True}

    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client, store
    store.dispose()


def test_key_cookie_and_roles(setup):
    client, store = setup
    user_key = store.create_api_key("u", role="user")
    trainer = store.create_user("tina", password="password123", role="trainer")
    cookie = {"Cookie": f"{SESSION_COOKIE}={store.create_session(trainer.id)}"}
    bearer = {"Authorization": f"Bearer {user_key}"}

    assert client.get("/t/me", headers=bearer).json() == {"name": "key:u", "role": "user"}
    assert client.get("/t/me", headers=cookie).json() == {"name": "tina", "role": "trainer"}
    assert client.get("/t/maybe").json() == {"name": None}

    r = client.get("/t/me")
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    r = client.get("/t/me", headers={"Cookie": f"{SESSION_COOKIE}=forged"})
    assert r.status_code == 401
    r = client.get("/t/maybe", headers={"Authorization": "Bearer sk-forged"})
    assert r.status_code == 401  # bad credentials are an error even where none are needed

    r = client.get("/t/trainer", headers=bearer)
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
    assert client.get("/t/trainer", headers=cookie).json() == {"ok": True}
    assert client.get("/t/admin", headers=cookie).status_code == 403
    store.set_role(trainer.id, "admin")
    assert client.get("/t/admin", headers=cookie).status_code == 200  # checked on every request

    store.revoke_api_key("u")
    assert client.get("/t/me", headers=bearer).status_code == 401


def test_unknown_role_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown role"):
        require_role("superuser")
