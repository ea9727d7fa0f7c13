"""Monitoring numbers for the served model versions: traffic, thumbs, moderation flags, reports and
latency, per version and per time bucket.

Consumes the store's assistant messages (their ``model_version`` and ``meta``: ``finish_reason``,
``moderation``, ``input_moderation``, ``ttft_s``, ``tokens_per_s``), the feedback on them and the
reports; produces one JSON-able dict (``metrics``) that the admin API (``GET
/api/admin/monitor``), the monitoring page and ``chatrlhf monitor --out report.html`` all read.
Nothing here returns message text: only counts, rates and latencies.

Definitions, per cell (a version, a bucket, a version in a bucket, or everything):

- ``replies``: assistant messages written in the window (regenerations count, each is a reply);
- ``conversations`` / ``users``: distinct conversations / users with a reply in the cell (one
  conversation answered on two days counts on both days, once in the total);
- ``thumbs_up`` / ``thumbs_down`` and ``up_ratio`` = up / (up + down): the thumbs on the cell's
  replies (bucketed by the reply's time, so a late thumb still counts for the version it rates);
- ``flagged`` and ``flag_rate``: replies whose meta says moderation stopped the prompt or the
  reply (``input_moderation``, ``moderation`` or ``finish_reason == "content_filter"``), over
  ``replies``;
- ``reports``: reports made in the window (bucketed by the report's time; a report with no
  message counts in the totals and buckets under no version);
- ``ttft_p50`` / ``ttft_p90`` (seconds, request to first token) and ``tps_p50`` (decode tokens/s),
  over the replies that recorded them (the server records them since the monitoring change;
  older replies have none, ``latency_n`` says how many did).

``arena``: ``deploy.arena.arena_stats`` over the arena picks made in the window (by the pick's
``created_at``; win rates, Wilson intervals, Bradley-Terry and Elo per version), plus ``by_bucket``,
picks per bucket. ``GET /api/admin/arena`` keeps the same statistics over all time.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select

from chatrlhf.deploy.arena import arena_stats
from chatrlhf.store.arena_tables import list_picks
from chatrlhf.store.models import ConversationRow, FeedbackRow, MessageRow, ReportRow

BUCKETS = {"day": timedelta(days=1), "hour": timedelta(hours=1)}
UNKNOWN_VERSION = "(unknown)"  # replies stored without a model_version


@dataclass
class _Cell:
    conversations: set[int] = field(default_factory=set)
    users: set[int] = field(default_factory=set)
    replies: int = 0
    thumbs_up: int = 0
    thumbs_down: int = 0
    flagged: int = 0
    reports: int = 0
    ttft: list[float] = field(default_factory=list)
    tps: list[float] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        rated = self.thumbs_up + self.thumbs_down
        return {
            "conversations": len(self.conversations), "users": len(self.users), "replies": self.replies,
            "thumbs_up": self.thumbs_up, "thumbs_down": self.thumbs_down,
            "up_ratio": _round(self.thumbs_up / rated) if rated else None,
            "flagged": self.flagged, "flag_rate": _round(self.flagged / self.replies) if self.replies else None,
            "reports": self.reports,
            "ttft_p50": _quantile(self.ttft, 0.5), "ttft_p90": _quantile(self.ttft, 0.9),
            "tps_p50": _quantile(self.tps, 0.5), "latency_n": len(self.ttft),
        }


def _round(x: float) -> float:
    return round(x, 4)


def _quantile(xs: list[float], q: float) -> float | None:
    """Nearest-rank quantile (no interpolation: a p90 is a latency someone saw)."""
    if not xs:
        return None
    s = sorted(xs)
    return _round(s[min(len(s) - 1, max(0, int(q * len(s) + 0.999999) - 1))])


def _utc(dt: datetime) -> datetime:
    # SQLite hands back naive datetimes; the store writes UTC.
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def bucket_start(dt: datetime, bucket: str) -> datetime:
    dt = _utc(dt)
    return dt.replace(minute=0, second=0, microsecond=0) if bucket == "hour" else \
        dt.replace(hour=0, minute=0, second=0, microsecond=0)


def bucket_label(dt: datetime, bucket: str) -> str:
    return dt.strftime("%Y-%m-%dT%H:00" if bucket == "hour" else "%Y-%m-%d")


def is_flagged(meta: dict[str, Any] | None) -> bool:
    meta = meta or {}
    return bool(meta.get("input_moderation") or meta.get("moderation")
                or meta.get("finish_reason") == "content_filter")


def window(days: float, now: datetime | None = None) -> tuple[datetime, datetime]:
    until = _utc(now) if now is not None else datetime.now(timezone.utc)
    return until - timedelta(days=days), until


def arena(store: Any, since: datetime, until: datetime, bucket: str, labels: list[str]) -> dict[str, Any]:
    """``arena_stats`` over the picks made in ``[since, until]``, with ``by_bucket``: the picks
    made in each of ``labels`` (every bucket, zeros included, as ``metrics`` gives them)."""
    picks = list_picks(store, since=since, until=until)
    per_bucket: dict[str, int] = defaultdict(int)
    for p in picks:
        per_bucket[bucket_label(bucket_start(p.created_at, bucket), bucket)] += 1
    return {**arena_stats(picks), "by_bucket": [{"bucket": b, "picks": per_bucket[b]} for b in labels]}


def metrics(store: Any, days: float = 14, bucket: str = "day", now: datetime | None = None) -> dict[str, Any]:
    """The monitoring numbers for the last ``days`` days, bucketed by ``bucket`` ("day" or "hour")."""
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {sorted(BUCKETS)}, not {bucket!r}")
    if not 0 < days <= 366:
        raise ValueError("days must be in (0, 366]")
    since, until = window(days, now)
    labels = []
    t = bucket_start(since, bucket)
    while t <= until:
        labels.append(bucket_label(t, bucket))
        t += BUCKETS[bucket]
    cells: dict[tuple[str | None, str | None], _Cell] = defaultdict(_Cell)

    def touch(version: str | None, label: str | None) -> list[_Cell]:
        keys = [(None, None), (None, label)]
        if version is not None:
            keys += [(version, None), (version, label)]
        return [cells[k] for k in keys]

    reply_key: dict[int, tuple[str, str]] = {}  # message id -> (version, bucket label)
    reports_by_kind: dict[str, int] = defaultdict(int)
    with store.session() as s:
        # 1. Replies: traffic, flags and latency.
        rows = s.execute(
            select(MessageRow.id, MessageRow.conversation_id, MessageRow.model_version, MessageRow.created_at,
                   MessageRow.meta, ConversationRow.user_id)
            .join(ConversationRow, MessageRow.conversation_id == ConversationRow.id)
            .where(MessageRow.role == "assistant", MessageRow.created_at >= since, MessageRow.created_at <= until))
        for mid, cid, version, created, meta, uid in rows:
            version, label = version or UNKNOWN_VERSION, bucket_label(bucket_start(created, bucket), bucket)
            reply_key[mid] = (version, label)
            meta = meta or {}
            flagged = is_flagged(meta)
            ttft, tps = meta.get("ttft_s"), meta.get("tokens_per_s")
            for c in touch(version, label):
                c.conversations.add(cid)
                c.users.add(uid)
                c.replies += 1
                c.flagged += flagged
                if isinstance(ttft, (int, float)):
                    c.ttft.append(float(ttft))
                if isinstance(tps, (int, float)):
                    c.tps.append(float(tps))
        # 2. Thumbs on those replies (the join keeps the window in SQL; the dict gives the cell).
        for mid, rating in s.execute(
                select(FeedbackRow.message_id, FeedbackRow.rating)
                .join(MessageRow, FeedbackRow.message_id == MessageRow.id)
                .where(MessageRow.role == "assistant", MessageRow.created_at >= since)):
            if mid not in reply_key or rating == 0:
                continue
            for c in touch(*reply_key[mid]):
                c.thumbs_up += rating > 0
                c.thumbs_down += rating < 0
        # 3. Reports made in the window, under the version of the reply they are about.
        for kind, mid, version, created in s.execute(
                select(ReportRow.kind, ReportRow.message_id, MessageRow.model_version, ReportRow.created_at)
                .outerjoin(MessageRow, ReportRow.message_id == MessageRow.id)
                .where(ReportRow.created_at >= since, ReportRow.created_at <= until)):
            reports_by_kind[kind] += 1
            v = (version or UNKNOWN_VERSION) if mid is not None else None
            for c in touch(v, bucket_label(bucket_start(created, bucket), bucket)):
                c.reports += 1

    versions = sorted({v for v, _ in cells if v is not None})
    return {
        "since": since.isoformat(), "until": until.isoformat(), "days": days, "bucket": bucket,
        "buckets": labels, "versions": versions,
        "totals": cells[(None, None)].json(),
        "by_version": {v: cells[(v, None)].json() for v in versions},
        "by_bucket": [{"bucket": b, **cells[(None, b)].json()} for b in labels],
        # Only the buckets where a version had a reply or a report (a sparse series; the page
        # fills the gaps with nulls against ``buckets``).
        "by_version_bucket": {v: [{"bucket": b, **cells[(v, b)].json()} for b in labels if (v, b) in cells]
                              for v in versions},
        "reports_by_kind": dict(sorted(reports_by_kind.items())),
        "arena": arena(store, since, until, bucket, labels),
    }
