"""Admin API over the model registry: list versions, promote, roll back, split traffic.

Consumes ``chatrlhf.deploy.registry`` (the store's deployment log) and the service's ``Router``.
Every route needs the ``admin`` role (checked on the server) and, as every web write, a JSON
content type or ``X-Requested-With`` (CSRF). A write is logged in the store first and then
applied to this server at once; other replicas follow the log within their poll interval.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from .auth import require_role
from .errors import APIError
from .web import csrf_guard

router = APIRouter(prefix="/api/admin/models", dependencies=[Depends(csrf_guard)], tags=["admin"])
admin = require_role("admin")


class ReportBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    report: str = Field("", max_length=4000)


class PromoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    report: str = Field("", max_length=4000)
    # The gates (deploy.gates) decide unless an admin skips them, which needs a report saying why.
    skip_gates: bool = False


class SplitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    traffic: dict[str, float] = Field(..., max_length=8)
    report: str = Field("", max_length=4000)


def _store(request: Request) -> Any:
    store = request.app.state.store
    if store is None:
        raise APIError(503, "the model registry needs a database (start the server with --db)")
    return store


def _json(v: Any) -> dict[str, Any]:
    d = asdict(v)
    d["created_at"] = v.created_at.isoformat()
    return d


async def _apply(request: Request, write: Any, *args: Any, **kw: Any) -> dict[str, Any]:
    from ..deploy.registry import RegistryError, UnknownVersion

    t0 = time.perf_counter()
    try:
        deployment = await run_in_threadpool(write, _store(request), *args, **kw)
    except UnknownVersion as e:
        raise APIError(404, str(e), code="model_not_found") from None
    except RegistryError as e:
        raise APIError(400, str(e), code="registry_error") from None
    except LookupError as e:
        raise APIError(404, str(e).strip("'\""), code="model_not_found") from None
    except ValueError as e:
        raise APIError(400, str(e)) from None
    router_ = request.app.state.service.router
    await router_.refresh()  # this replica moves now, not at its next poll
    return {"deployment": _json(deployment), "serving": router_.status(),
            "seconds": round(time.perf_counter() - t0, 3)}


@router.get("")
def list_versions(request: Request, user: Any = Depends(admin)) -> dict[str, Any]:
    store = _store(request)
    return {"versions": [_json(v) for v in store.list_model_versions()],
            "deployments": [_json(d) for d in store.list_deployments(limit=50)],
            "serving": request.app.state.service.router.status()}


@router.post("/rollback")
async def rollback(body: ReportBody, request: Request, user: Any = Depends(admin)) -> dict[str, Any]:
    from ..deploy import registry

    return await _apply(request, registry.rollback, actor=user.username, report=body.report)


@router.post("/split")
async def split(body: SplitBody, request: Request, user: Any = Depends(admin)) -> dict[str, Any]:
    from ..deploy import registry

    return await _apply(request, registry.split, body.traffic, actor=user.username, report=body.report)


@router.post("/{name:path}/promote")
async def promote(name: str, body: PromoteBody, request: Request, user: Any = Depends(admin)) -> dict[str, Any]:
    """Run the promotion gates against the served version and promote only if they pass (as
    ``chatrlhf models promote`` does); 409 with the failed gates otherwise, and the version is
    marked ``rejected``. ``skip_gates`` promotes without them and needs a report."""
    from ..deploy import gates, registry

    if len(name) > 128:
        raise APIError(400, "a version name has at most 128 characters", param="name")
    if body.skip_gates:
        if not body.report.strip():
            raise APIError(400, "skipping the gates needs a report saying why", param="report")
        return await _apply(request, registry.promote, name, actor=user.username, report=body.report)

    def gated(store: Any, name: str) -> Any:
        decision = gates.gate_and_promote(store, name, actor=user.username, note=body.report)
        if not decision.promote:
            why = "; ".join(f"{c.name}: {c.why}" for c in decision.failed)
            raise _Refused(f"the gates refused {name!r} against {decision.current!r}: {why}")
        return store.current_deployment()

    try:
        return await _apply(request, gated, name)
    except _Refused as e:
        raise APIError(409, str(e)[:2000], code="gates_refused") from None


class _Refused(Exception):
    pass
