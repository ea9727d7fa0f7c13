"""Who is calling: FastAPI dependencies every router uses (API, web UI, trainer workspace).

A request is authenticated by ``Authorization: Bearer <api key>`` (checked against the store's
hashed keys) or by the web session cookie ``SESSION_COOKIE`` (a token the store issued at login).
With ``--no-auth`` (loopback only) a request with neither acts as the local user ``LOCAL_USER``.
Roles are ordered user < trainer < admin and checked on the server for every request.

Store lookups are blocking SQL, so the dependencies are plain ``def``: FastAPI runs them in its
thread pool, off the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from fastapi import Request

from .errors import APIError

SESSION_COOKIE = "chatrlhf_session"
LOCAL_USER = "local"
ROLE_ORDER = {"user": 0, "trainer": 1, "admin": 2}


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise APIError(401, "Authorization header must be 'Bearer <API key>'", code="invalid_api_key")
    return token.strip()


def _lookup(request: Request) -> Any | None:
    """The user behind the request's credentials, None when it carries none; 401 on bad ones."""
    state = request.app.state
    store = getattr(state, "store", None)
    key = _bearer(request)
    if key is not None:
        user = store.verify_api_key(key) if store is not None else None
        if user is None and state.no_auth:
            # Clients that insist on sending some key (the openai library does) may send any.
            return local_user(request)
        if user is None:
            raise APIError(
                401, "Incorrect API key provided. Create one with `chatrlhf keys create`.",
                code="invalid_api_key",
            )
        return user
    token = request.cookies.get(SESSION_COOKIE)
    if token and store is not None:
        user = store.user_for_session(token)
        if user is not None:
            return user
    if state.no_auth:
        return local_user(request)
    return None


@dataclass(frozen=True)
class AnonymousUser:
    """The ``--no-auth`` user of an app that runs without a store (tests)."""

    id: int | None = None
    username: str = LOCAL_USER
    role: str = "admin"


def local_user(request: Request) -> Any:
    """The ``--no-auth`` user: an admin, created on first use (the server is loopback-only then)."""
    state = request.app.state
    if getattr(state, "local_user", None) is None:
        store = state.store
        state.local_user = _ensure_local(store) if store is not None else AnonymousUser()
    return state.local_user


def _ensure_local(store: Any) -> Any:
    from ..store import Conflict

    user = store.get_user_by_name(LOCAL_USER)
    if user is None:
        try:
            user = store.create_user(LOCAL_USER, role="admin")
        except Conflict:  # another request (or server replica) created it first
            user = store.get_user_by_name(LOCAL_USER)
    return user


def optional_user(request: Request) -> Any | None:
    """The calling user, or None when the request carries no credentials (bad ones are a 401)."""
    return _lookup(request)


def current_user(request: Request) -> Any:
    """The calling user; 401 with an OpenAI-style error when there is none."""
    user = _lookup(request)
    if user is None:
        raise APIError(
            401,
            "You didn't provide an API key. Send 'Authorization: Bearer <key>' "
            "(create one with `chatrlhf keys create`) or log in.",
            code="missing_api_key",
        )
    return user


def require_role(role: str) -> Callable[[Request], Any]:
    """A dependency that admits users whose role is at least ``role`` (user < trainer < admin)."""
    if role not in ROLE_ORDER:
        raise ValueError(f"unknown role {role!r}; expected one of {list(ROLE_ORDER)}")
    need = ROLE_ORDER[role]

    def dependency(request: Request) -> Any:
        user = current_user(request)
        have = ROLE_ORDER.get(user.role, 0)
        if have < need:
            raise APIError(403, f"this action needs the {role!r} role", code="insufficient_role")
        return user

    dependency.__name__ = f"require_{role}"
    return dependency
