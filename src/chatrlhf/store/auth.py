"""Password hashing and bearer tokens, on the standard library only.

Passwords: scrypt with a per-user salt, stored as ``scrypt$n$r$p$salt$hash`` so the cost can be
raised later without breaking old hashes. API keys and session tokens are long random strings;
the database keeps only their sha256 (a random 256-bit token needs no slow hash), so a leaked
database does not leak working keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_N, _R, _P = 2**14, 8, 1
KEY_PREFIX = "sk-"


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    """Constant-time check; a missing or malformed hash is checked against a dummy (no timing leak)."""
    try:
        algo, n, r, p, salt, digest = (stored or "").split("$")
        assert algo == "scrypt"
        n_, r_, p_ = int(n), int(r), int(p)
        salt_b, want = base64.b64decode(salt), base64.b64decode(digest)
    except (ValueError, AssertionError):
        hash_password(password)  # spend the same time as a real check
        return False
    got = hashlib.scrypt(password.encode(), salt=salt_b, n=n_, r=r_, p=p_, dklen=len(want))
    return hmac.compare_digest(got, want)


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
