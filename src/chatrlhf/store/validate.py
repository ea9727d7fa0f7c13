"""Input checks the store runs before any transaction: each names the field it rejects."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, Sequence

from chatrlhf.store import records as R

_NAME_RE = re.compile(r"[A-Za-z0-9_.@:+-]{1,64}")


def check_text(field: str, value: Any, *, max_bytes: int | None = None, max_chars: int | None = None) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise ValueError(f"{field} must not contain NUL characters")
    if max_chars is not None and len(value) > max_chars:
        raise ValueError(f"{field} is too long: {len(value)} characters, at most {max_chars}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate (e.g. JSON "\ud800"): not storable text
        raise ValueError(f"{field} is not valid Unicode text") from None
    if max_bytes is not None and size > max_bytes:
        raise ValueError(f"{field} is too long: more than {max_bytes} bytes of UTF-8")
    return value


def check_json(field: str, value: Any, max_bytes: int = R.MAX_JSON_BYTES) -> dict[str, Any]:
    value = {} if value is None else value
    if not isinstance(value, dict):
        raise ValueError(f"{field} must be a JSON object")
    try:
        size = len(json.dumps(value, ensure_ascii=False).encode())
    except (TypeError, ValueError) as e:
        raise ValueError(f"{field} is not JSON-serialisable: {e}") from None
    if size > max_bytes:
        raise ValueError(f"{field} is too large: {size} bytes, at most {max_bytes}")
    return value


def check_choice(field: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{field} must be one of {list(allowed)}, got {value!r}")
    return value


def check_name(field: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise ValueError(f"{field} must be 1-64 characters of letters, digits and _.@:+-")
    return value


def check_password(value: Any) -> str:
    check_text("password", value, max_chars=R.MAX_PASSWORD_CHARS)
    if len(value) < R.MIN_PASSWORD_CHARS:
        raise ValueError(f"password must have at least {R.MIN_PASSWORD_CHARS} characters")
    return value


def check_reasons(value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError("reasons must be a list of strings")
    if len(value) > R.MAX_REASONS:
        raise ValueError(f"at most {R.MAX_REASONS} reasons")
    return [check_text("reason", r, max_chars=R.MAX_REASON_CHARS) for r in value]


def as_utc(dt: datetime) -> datetime:
    # SQLite returns naive datetimes even for timezone-aware columns; everything stored is UTC.
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
