"""The model registry: versions, what is served, promote, rollback and traffic splits.

Consumes a ``chatrlhf.store.Store`` (its ``model_versions`` table and ``deployments`` log) and
produces ``Deployment`` records. A running server follows ``current(store)`` (it polls the log),
so ``promote`` and ``rollback`` move it without a restart.

Rollback walks the log, not a "previous" pointer: the version to return to is the newest one
served by default before the current one, so rolling back twice does not bounce between two.
"""

from __future__ import annotations

import math
from typing import Any

from ..store.records import Deployment, ModelVersion


class RegistryError(ValueError):
    """A registry operation that cannot be done; the message says why."""


class UnknownVersion(RegistryError, LookupError):
    """No model version by that name."""


def current(store: Any) -> Deployment | None:
    return store.current_deployment()


def get(store: Any, name: str) -> ModelVersion:
    mv = store.get_model_version(name)
    if mv is None:
        raise UnknownVersion(f"no model version {name!r} (see `chatrlhf models list`)")
    return mv


def register(store: Any, name: str, path: str, *, kind: str = "", parent: str | None = None,
             meta: dict[str, Any] | None = None, notes: str = "") -> ModelVersion:
    """Add a version, or return it unchanged if one with this name and path exists."""
    mv = store.get_model_version(name)
    if mv is not None:
        if mv.path != path:
            raise RegistryError(f"model version {name!r} exists with another path: {mv.path}")
        return mv
    if parent is not None:
        get(store, parent)
    return store.add_model_version(name, path, kind=kind, parent=parent, meta=meta, notes=notes)


def lineage(store: Any, name: str) -> list[ModelVersion]:
    """``name`` and its ancestors, oldest first (base -> sft -> ppo ...)."""
    chain: list[ModelVersion] = []
    seen: set[str] = set()
    mv: ModelVersion | None = get(store, name)
    while mv is not None and mv.name not in seen:
        seen.add(mv.name)
        chain.append(mv)
        mv = store.get_model_version(mv.parent) if mv.parent else None
    return chain[::-1]


def promote(store: Any, name: str, *, actor: str = "", report: str = "") -> Deployment:
    """Serve ``name`` to everyone (ends any traffic split)."""
    mv = get(store, name)
    if mv.status == "rejected" and not report:
        raise RegistryError(f"{name!r} was rejected by the gates; promoting it needs a report saying why")
    return store.add_deployment("promote", name, actor=actor, report=report)


def rollback(store: Any, *, actor: str = "", report: str = "") -> Deployment:
    """Serve again the version that was served by default before the current one."""
    log = store.list_deployments(limit=10_000)
    if not log:
        raise RegistryError("nothing has been deployed yet, so there is nothing to roll back")
    now = log[0].version
    # Versions left by a rollback are skipped: rolling back twice goes two versions back.
    left = {d2.version for d1, d2 in zip(log, log[1:]) if d1.action == "rollback"}
    left.add(now)
    for d in log[1:]:
        if d.version not in left:
            return store.add_deployment("rollback", d.version, actor=actor,
                                        report=report or f"rolled back from {now}")
    raise RegistryError(f"no earlier version than {now!r} was ever served")


def split(store: Any, traffic: dict[str, float], *, actor: str = "", report: str = "") -> Deployment:
    """Serve several versions at once, ``traffic`` = {version: weight}; the heaviest is the
    default (what a request naming no version gets when no split applies)."""
    weights: dict[str, float] = {}
    for name, w in traffic.items():
        ok = isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w >= 0
        if not ok:
            raise RegistryError(f"the weight of {name!r} must be a finite number >= 0, got {w!r}")
        get(store, name)
        if w > 0:
            weights[name] = float(w)
    if len(weights) < 2:
        raise RegistryError("a split needs at least two versions with a weight above 0")
    default = max(weights, key=lambda k: (weights[k], k))
    return store.add_deployment("split", default, traffic=weights, actor=actor, report=report)
