"""Arena statistics: per-version win rates with Wilson intervals, and Bradley-Terry ratings.

Consumes arena picks (anything with ``a_version``, ``b_version`` and ``choice`` in A | B | tie |
both_bad, e.g. ``store.arena_tables.list_picks``); produces plain dicts for the admin API
(``GET /api/admin/arena``). Pure: no store, no server.

Scoring: a pick is one game between its two versions. The picked version scores 1 and the other
0; a tie and "both bad" score 1/2 each (neither was preferred). A game between two sides served by
the same version says nothing about it and is skipped.

- **Win rate** of a version: its points over its games, with a Wilson score interval. Half points
  make the count fractional; the Wilson formula is used on it as it is (an approximation, slightly
  too wide when many games are ties).
- **Bradley-Terry**: strengths ``p_i`` with P(i beats j) = p_i / (p_i + p_j), fitted by Hunter's
  MM iteration on the points (ties as half a win each way). ``prior`` adds that many virtual ties
  to every pair that met, so a version that never lost still gets a finite rating. Reported as
  ``bt`` = ln p_i (mean 0 over the versions) and ``elo`` = 1000 + 400 log10 p_i on that scale.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable

POINTS = {"A": (1.0, 0.0), "B": (0.0, 1.0), "tie": (0.5, 0.5), "both_bad": (0.5, 0.5)}


def wilson(wins: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``wins / n`` ((0, 1) when n is 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = wins / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, mid - half), min(1.0, mid + half)


def games(picks: Iterable[Any]) -> list[tuple[str, str, float]]:
    """``(version i, version j, points of i)`` per pick between two different versions."""
    out = []
    for p in picks:
        if p.a_version != p.b_version and p.choice in POINTS:
            out.append((p.a_version, p.b_version, POINTS[p.choice][0]))
    return out


def bradley_terry(played: list[tuple[str, str, float]], *, prior: float = 1.0, iters: int = 1000,
                  tol: float = 1e-10) -> dict[str, float]:
    """Log-strengths (mean 0) fitted to ``played`` (see the module docstring)."""
    wins: dict[str, float] = defaultdict(float)  # points won by each version
    meetings: dict[tuple[str, str], float] = defaultdict(float)  # games per unordered pair
    for i, j, s in played:
        wins[i] += s
        wins[j] += 1 - s
        meetings[tuple(sorted((i, j)))] += 1
    for pair in list(meetings):
        meetings[pair] += prior
        for v in pair:
            wins[v] += prior / 2
    names = sorted(wins)
    if not names:
        return {}
    p = {v: 1.0 for v in names}
    for _ in range(iters):
        new = {}
        for v in names:
            denom = sum(n / (p[a] + p[b]) for (a, b), n in meetings.items() if v in (a, b))
            new[v] = wins[v] / denom if denom else p[v]
        # Fix the scale (geometric mean 1); a version that never scored stays at 0 strength.
        logs = [math.log(x) for x in new.values() if x > 0]
        g = math.exp(sum(logs) / len(logs)) if logs else 1.0
        new = {v: x / g for v, x in new.items()}
        done = max(abs(new[v] - p[v]) for v in names) < tol
        p = new
        if done:
            break
    return {v: (math.log(x) if x > 0 else -math.inf) for v, x in p.items()}


def arena_stats(picks: Iterable[Any], *, prior: float = 1.0, z: float = 1.96) -> dict[str, Any]:
    """``{"picks", "games", "choices", "versions": [...]}``, versions by Elo, best first; each
    with games, wins, losses, ties (tie or both bad), both_bad, win_rate, ci, bt and elo."""
    picks = list(picks)
    played = games(picks)
    rows: dict[str, dict[str, Any]] = defaultdict(lambda: {"games": 0, "points": 0.0, "wins": 0,
                                                          "losses": 0, "ties": 0, "both_bad": 0})
    for p in picks:
        if p.a_version == p.b_version or p.choice not in POINTS:
            continue
        for v, pts in zip((p.a_version, p.b_version), POINTS[p.choice]):
            r = rows[v]
            r["games"] += 1
            r["points"] += pts
            r["wins"] += pts == 1.0
            r["losses"] += pts == 0.0
            r["ties"] += pts == 0.5
            r["both_bad"] += p.choice == "both_bad"
    bt = bradley_terry(played, prior=prior)
    out = []
    for v, r in rows.items():
        lo, hi = wilson(r["points"], r["games"], z)
        theta = bt.get(v, 0.0)
        out.append({"version": v, **{k: r[k] for k in ("games", "wins", "losses", "ties", "both_bad")},
                    "win_rate": r["points"] / r["games"], "ci": [lo, hi], "bt": theta,
                    "elo": 1000 + 400 * theta / math.log(10) if math.isfinite(theta) else None})
    out.sort(key=lambda r: (-(r["elo"] if r["elo"] is not None else -math.inf), r["version"]))
    choices = {c: sum(p.choice == c for p in picks) for c in POINTS}
    return {"picks": len(picks), "games": len(played), "choices": choices, "versions": out,
            "prior": prior, "z": z}
