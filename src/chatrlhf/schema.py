"""The records every stage reads and writes, and their JSONL I/O.

Humans (web app, trainer workspace, imports) and the simulator produce the same records, so every
later stage works on either source:

- ``Conversation``: a dialog (demonstration, or a prompt when it ends on a user turn) plus ``meta``.
  ``meta`` carries what a judge needs to score a reply: for simulated data ``family``, ``split`` and
  ``task`` (the task's answer key); for human data whatever the source recorded.
- ``Ranking``: K completions of one conversation prefix, ranked by one annotator. ``ranks[i]`` is the
  rank of completion ``i`` (0 is best); equal ranks are ties. ``all_unacceptable`` marks a set in
  which no completion is acceptable; ``flags[i]`` lists labels such as "harmful" for completion ``i``.
- ``Feedback``: a thumbs rating on one served message.
- ``Rating``: one reply to a conversation prefix with a thumbs rating (+1/-1), no alternative: what a
  product user gives far more often than a ranking. The reward model learns it pointwise.

A message is a plain dict ``{"role": "system"|"user"|"assistant", "content": str}`` so records
round-trip through JSON, SQL and the OpenAI protocol without conversion.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

ROLES = ("system", "user", "assistant")

# The harm taxonomy shared by the moderation filter, the simulator's harmful requests and reports.
HARM_CATEGORIES: tuple[str, ...] = (
    "violence",
    "weapons",
    "illicit_drugs",
    "malware_hacking",
    "fraud",
    "self_harm",
    "hate",
    "harassment",
    "sexual_minors",
)

Message = dict[str, str]


class RecordError(ValueError):
    """A record that does not follow the schema; the message says which field and why."""


def validate_messages(messages: Any) -> list[Message]:
    if not isinstance(messages, list) or not messages:
        raise RecordError("messages must be a non-empty list")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise RecordError(f"messages[{i}] must be an object with role and content")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise RecordError(f"messages[{i}].role must be one of {ROLES}, got {role!r}")
        if not isinstance(content, str):
            raise RecordError(f"messages[{i}].content must be a string")
        if role == "system" and i != 0:
            raise RecordError(f"messages[{i}]: a system message may only come first")
        out.append({"role": role, "content": content})
    return out


@dataclass
class Conversation:
    messages: list[Message]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.messages = validate_messages(self.messages)

    @property
    def is_prompt(self) -> bool:
        """True when the conversation waits for an assistant reply."""
        return self.messages[-1]["role"] == "user"


@dataclass
class Ranking:
    prefix: list[Message]
    completions: list[str]
    ranks: list[int]
    annotator: str = "unknown"
    all_unacceptable: bool = False
    flags: dict[int, list[str]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.prefix = validate_messages(self.prefix)
        if self.prefix[-1]["role"] != "user":
            raise RecordError("a ranking's prefix must end with a user message")
        k = len(self.completions)
        if k < 2:
            raise RecordError(f"a ranking needs at least 2 completions, got {k}")
        if not all(isinstance(c, str) for c in self.completions):
            raise RecordError("completions must be strings")
        if len(self.ranks) != k or not all(isinstance(r, int) and r >= 0 for r in self.ranks):
            raise RecordError(f"ranks must be {k} non-negative integers, got {self.ranks!r}")
        # JSON object keys are strings; normalise so flags[i] works after a round trip.
        self.flags = {int(i): list(v) for i, v in (self.flags or {}).items()}
        if any(not 0 <= i < k for i in self.flags):
            raise RecordError("flags refer to a completion index out of range")

    @property
    def order(self) -> list[int]:
        """Completion indices best first (ties keep index order)."""
        return sorted(range(len(self.ranks)), key=lambda i: (self.ranks[i], i))

    def pairs(self) -> list[tuple[int, int]]:
        """All strictly ordered (better, worse) index pairs; ties give no pair."""
        k = len(self.ranks)
        return [(i, j) for i in range(k) for j in range(k) if self.ranks[i] < self.ranks[j]]


@dataclass
class Feedback:
    message_id: str
    rating: int  # +1 thumbs up, -1 thumbs down
    reasons: list[str] = field(default_factory=list)
    comment: str = ""

    def __post_init__(self) -> None:
        if self.rating not in (-1, 1):
            raise RecordError(f"rating must be +1 or -1, got {self.rating!r}")


@dataclass
class Rating:
    prefix: list[Message]
    completion: str
    rating: int  # +1 thumbs up, -1 thumbs down
    reasons: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.prefix = validate_messages(self.prefix)
        if self.prefix[-1]["role"] != "user":
            raise RecordError("a rating's prefix must end with a user message")
        if not isinstance(self.completion, str):
            raise RecordError("completion must be a string")
        if self.rating not in (-1, 1) or isinstance(self.rating, bool):
            raise RecordError(f"rating must be +1 or -1, got {self.rating!r}")
        if not isinstance(self.reasons, list) or not all(isinstance(r, str) for r in self.reasons):
            raise RecordError("reasons must be a list of strings")


R = TypeVar("R", Conversation, Ranking, Feedback, Rating)


def to_dict(record: Conversation | Ranking | Feedback | Rating) -> dict[str, Any]:
    return dataclasses.asdict(record)


def from_dict(cls: type[R], data: dict[str, Any]) -> R:
    if not isinstance(data, dict):
        raise RecordError(f"expected a JSON object for {cls.__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise RecordError(f"unknown field(s) for {cls.__name__}: {sorted(unknown)}")
    try:
        return cls(**data)
    except TypeError as e:  # a missing required field
        raise RecordError(f"{cls.__name__}: {e}") from None


def write_jsonl(path: str | os.PathLike, records: Iterable[Any]) -> str:
    """Write records atomically (temp file + rename) and return the file's sha256.

    Atomic so that a killed run never leaves a half-written dataset that a resumed run would trust.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    h = hashlib.sha256()
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            obj = r if isinstance(r, dict) else to_dict(r)
            line = json.dumps(obj, ensure_ascii=False) + "\n"
            h.update(line.encode())
            f.write(line)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return h.hexdigest()


def iter_jsonl(path: str | os.PathLike, cls: type[R] | None = None) -> Iterator[Any]:
    """Yield records; a bad line raises RecordError naming the file and line."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                yield from_dict(cls, obj) if cls else obj
            except (json.JSONDecodeError, RecordError) as e:
                raise RecordError(f"{path}:{lineno}: {e}") from None


def read_jsonl(path: str | os.PathLike, cls: type[R] | None = None) -> list[Any]:
    return list(iter_jsonl(path, cls))
