"""Per-user quotas and the login throttle, on the ``limits`` library's moving windows.

``Quotas`` lives on ``app.state.quotas``. Generation routes (``/v1/chat/completions`` and the web
chat's send, regenerate and edit) call ``admit(user)`` before anything is written: past
``requests_per_minute`` or ``concurrent`` generations of one user (an API key acts as its user)
the answer is 429 with ``Retry-After``, as OpenAI's is, and other users are not affected. The
returned ``Slot`` is released when the reply ends, however it ends.

The login throttle counts failed logins per (username, client address) and per client address.
Neither is per username alone, so guessing wrong from elsewhere cannot lock a user out, while one
address can neither keep guessing one password nor spray many accounts. Counters are in memory,
per server process.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItemPerDay, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from .errors import APIError


@dataclass
class QuotaConfig:
    requests_per_minute: int = 120  # generation requests per user; 0 = no limit
    concurrent: int = 8  # generations of one user in flight at once; 0 = no limit
    tokens_per_day: int = 0  # completion tokens per user per day; 0 = no limit
    login_failures_per_user_address: int = 5  # in login_window_s, for one username from one address
    login_failures_per_address: int = 30  # in login_window_s, over all usernames from one address
    login_window_s: int = 300


def user_key(user: Any) -> str:
    uid = getattr(user, "id", None)
    return f"user:{uid}" if uid is not None else f"name:{getattr(user, 'username', '?')}"


class Slot:
    """One admitted generation; ``release()`` is idempotent."""

    def __init__(self, quotas: "Quotas", key: str) -> None:
        self._quotas, self._key, self._held = quotas, key, True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._quotas._release(self._key)

    def __del__(self) -> None:
        # A streaming response whose client left before its body started never runs the
        # generator's ``finally``; the slot is released when that generator is collected.
        self.release()


class Quotas:
    def __init__(self, config: QuotaConfig | None = None) -> None:
        self.config = config or QuotaConfig()
        self._storage = MemoryStorage()
        self._window = MovingWindowRateLimiter(self._storage)
        # Tokens are counted after a reply, when its size is known, so the counter must accept a
        # reply that goes past the quota (a fixed window adds the cost even then; the moving
        # window would refuse to record it) and the next request is the one refused.
        self._fixed = FixedWindowRateLimiter(self._storage)
        self._lock = threading.Lock()  # guards _inflight (routes run on the loop and in threads)
        self._inflight: dict[str, int] = {}
        c = self.config
        self._per_minute = RateLimitItemPerMinute(c.requests_per_minute) if c.requests_per_minute else None
        self._tokens = RateLimitItemPerDay(c.tokens_per_day) if c.tokens_per_day else None
        self._login_pair = RateLimitItemPerSecond(c.login_failures_per_user_address, c.login_window_s)
        self._login_addr = RateLimitItemPerSecond(c.login_failures_per_address, c.login_window_s)

    # ---- generation ----------------------------------------------------------------------
    def admit(self, user: Any) -> Slot:
        """A slot for one generation of ``user``, or 429 with Retry-After."""
        key = user_key(user)
        limit = self.config.concurrent
        with self._lock:
            if limit and self._inflight.get(key, 0) >= limit:
                raise _too_many(f"Too many requests in flight for this user (at most {limit} at "
                                "once); retry when one has finished.", 1)
            if self._tokens is not None and not self._fixed.test(self._tokens, "tokens", key):
                reset = self._fixed.get_window_stats(self._tokens, "tokens", key).reset_time
                raise _too_many(f"Token quota reached: {self.config.tokens_per_day} completion "
                                "tokens per day.", max(1, math.ceil(reset - time.time())))
            if self._per_minute is not None and not self._window.hit(self._per_minute, key):
                raise _too_many(f"Rate limit reached: {self.config.requests_per_minute} requests "
                                "per minute.", self._retry_after(self._per_minute, key))
            self._inflight[key] = self._inflight.get(key, 0) + 1
        return Slot(self, key)

    def record_tokens(self, user: Any, tokens: int) -> None:
        """Count a finished reply's completion tokens against the user's daily quota."""
        if self._tokens is not None and tokens > 0:
            self._fixed.hit(self._tokens, "tokens", user_key(user), cost=tokens)

    def _release(self, key: str) -> None:
        with self._lock:
            n = self._inflight.get(key, 0) - 1
            if n > 0:
                self._inflight[key] = n
            else:
                self._inflight.pop(key, None)

    def _retry_after(self, item: Any, *keys: str) -> int:
        reset = self._window.get_window_stats(item, *keys).reset_time
        return max(1, math.ceil(reset - time.time()))

    # ---- login -----------------------------------------------------------------------------
    def login_retry_after(self, username: str, address: str) -> int | None:
        """Seconds until ``address`` may try ``username`` again; None when it may now."""
        if not self._window.test(self._login_addr, "login-addr", address):
            return self._retry_after(self._login_addr, "login-addr", address)
        if not self._window.test(self._login_pair, "login-pair", address, username):
            return self._retry_after(self._login_pair, "login-pair", address, username)
        return None

    def login_failed(self, username: str, address: str) -> None:
        self._window.hit(self._login_addr, "login-addr", address)
        self._window.hit(self._login_pair, "login-pair", address, username)

    def login_succeeded(self, username: str, address: str) -> None:
        self._window.clear(self._login_pair, "login-pair", address, username)


def _too_many(message: str, retry_after: int) -> APIError:
    return APIError(429, message, code="rate_limit_exceeded",
                    headers={"Retry-After": str(retry_after)})


def quotas_of(request: Any) -> Quotas:
    """The app's ``Quotas`` (made on first use for apps built without one, as in tests)."""
    state = request.app.state
    if getattr(state, "quotas", None) is None:
        state.quotas = Quotas()
    return state.quotas
