"""The AI-trainer workspace's HTTP routes: its pages and its JSON API (``router``).

Consumes ``app.state.store`` and ``app.state.service`` (model suggestions and task completions are
sampled through the service's batching scheduler, never by a second engine) and calls
``chatrlhf.workspace`` for everything else. Every route checks the role on the server: pages and
``/api/workspace/*`` need ``trainer`` (admins pass too), ``/api/workspace/admin/*`` and the admin
page need ``admin``. Cookie-authenticated writes must carry ``X-Requested-With`` (CSRF: a
cross-site form cannot set it). Store calls block, so routes are plain ``def`` (FastAPI's thread
pool) except the ones that await the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from chatrlhf import workspace as ws

from .auth import ROLE_ORDER, SESSION_COOKIE, optional_user, require_role
from .protocol import BodyId, PathId
from .errors import APIError

PAGES = Path(__file__).parent / "static" / "workspace"
# Same policy as the chat UI, except that our own pages may frame the guidelines page.
_PAGE_HEADERS = {
    "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'self'; form-action 'self'"),
}
# Default length of suggestions and task completions; ``app.state.workspace_max_tokens`` overrides it.
SUGGEST_MAX_TOKENS = 256


def _csrf(request: Request) -> None:
    if (request.method not in ("GET", "HEAD") and request.cookies.get(SESSION_COOKIE)
            and not request.headers.get("authorization") and not request.headers.get("x-requested-with")):
        raise APIError(403, "cookie-authenticated writes need the X-Requested-With header", code="csrf")


def _role(role: str) -> Callable[[Request], Any]:
    check = require_role(role)

    def dependency(request: Request) -> Any:
        user = check(request)
        _csrf(request)
        return user

    return dependency


trainer = _role("trainer")
admin = _role("admin")
router = APIRouter()


def _store(request: Request) -> Any:
    store = request.app.state.store
    if store is None:
        raise APIError(503, "the trainer workspace needs a database (start the server with --db)")
    return store


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a workspace function, turning its exceptions into HTTP errors."""
    from chatrlhf.store import Conflict, NotFound

    try:
        return fn(*args, **kwargs)
    except NotFound as e:
        raise APIError(404, str(e).strip("'\""), code="not_found") from None
    except Conflict as e:
        raise APIError(409, str(e), code="conflict") from None
    except ValueError as e:
        raise APIError(400, str(e)) from None


# --------------------------------------------------------------------------- pages

def _page(request: Request, name: str, role: str) -> Response:
    user = optional_user(request)
    if user is None:
        return RedirectResponse(f"/?next={request.url.path}", status_code=303)
    if ROLE_ORDER.get(user.role, 0) < ROLE_ORDER[role]:
        # A person followed a link: an HTML page that says why beats a JSON error object.
        body = (f"<!doctype html><meta charset='utf-8'><title>Not allowed</title>"
                f"<p>This page needs the <b>{html.escape(role)}</b> role; you are signed in as "
                f"<b>{html.escape(user.username)}</b> ({html.escape(user.role)}). Ask an admin for access.</p>"
                f"<p><a href='/'>Back to the chat</a></p>")
        return HTMLResponse(body, status_code=403, headers=_PAGE_HEADERS)
    return FileResponse(PAGES / name, media_type="text/html", headers=_PAGE_HEADERS)


@router.get("/workspace", include_in_schema=False)
def page_home(request: Request) -> Response:
    return _page(request, "index.html", "trainer")


@router.get("/workspace/demo", include_in_schema=False)
def page_demo(request: Request) -> Response:
    return _page(request, "demo.html", "trainer")


@router.get("/workspace/rank", include_in_schema=False)
def page_rank(request: Request) -> Response:
    return _page(request, "rank.html", "trainer")


@router.get("/workspace/guidelines", include_in_schema=False)
def page_guidelines(request: Request) -> Response:
    return _page(request, "guidelines.html", "trainer")


@router.get("/workspace/admin", include_in_schema=False)
def page_admin(request: Request) -> Response:
    return _page(request, "admin.html", "admin")


@router.get("/workspace/monitor", include_in_schema=False)
def page_monitor(request: Request) -> Response:
    return _page(request, "monitor.html", "admin")  # its data: server/monitor_routes.py


# --------------------------------------------------------------------------- trainer API

class Msg(BaseModel):
    role: str
    content: str


class SuggestBody(BaseModel):
    messages: list[Msg]
    k: int = Field(4, ge=1, le=ws.K_MAX)
    temperature: float = Field(0.9, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1, le=1024)  # None: app.state.workspace_max_tokens


class DemoBody(BaseModel):
    messages: list[Msg]
    meta: dict[str, Any] = Field(default_factory=dict)


class RankingBody(BaseModel):
    ranks: list[int]
    flags: dict[str, list[str]] = Field(default_factory=dict)
    all_unacceptable: bool = False
    comment: str = ""


def _max_tokens(request: Request, asked: int | None) -> int:
    return asked or getattr(request.app.state, "workspace_max_tokens", SUGGEST_MAX_TOKENS)


def _msgs(ms: list[Msg]) -> list[dict[str, str]]:
    return [m.model_dump() for m in ms]


async def sample(request: Request, messages: list[dict[str, str]], n: int, *, temperature: float = 0.9,
                 max_tokens: int = SUGGEST_MAX_TOKENS) -> list[str]:
    """``n`` replies to ``messages`` from the served model, through the service's scheduler.

    ``ChatService.generate`` rather than ``chat``: suggestions are not conversations, so nothing
    is recorded in the chat store.
    """
    from .service import GenOptions

    service = request.app.state.service
    checked = service.check_messages(messages)
    prep = await service.prepare_messages(checked, GenOptions(max_tokens=max_tokens, temperature=temperature,
                                                              n=n, seed=random.randrange(2**31)))
    texts = [""] * n
    # aclosing: if this request is cancelled, generate's cleanup frees the engine rows at once.
    async with contextlib.aclosing(service.generate(prep)) as events:
        async for ev in events:
            texts[ev.index] += ev.text
    return [t.strip() for t in texts]


@router.get("/api/workspace/me")
def me(user: Any = Depends(trainer)) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "role": user.role, "flags": list(ws.FLAGS),
            "k_min": ws.K_MIN, "k_max": ws.K_MAX}


@router.post("/api/workspace/suggest")
async def suggest(body: SuggestBody, request: Request, user: Any = Depends(trainer)) -> dict[str, Any]:
    messages = _msgs(body.messages)
    if not messages or messages[-1]["role"] != "user":
        raise APIError(400, "suggestions continue a dialog that ends with a user turn", param="messages")
    _call(ws.check_messages, messages, final=True)
    texts = await sample(request, messages, body.k, temperature=body.temperature,
                         max_tokens=_max_tokens(request, body.max_tokens))
    return {"suggestions": texts, "model": request.app.state.model_name}


@router.get("/api/workspace/demos")
def list_demos(request: Request, status: str | None = None, user: Any = Depends(trainer)) -> dict[str, Any]:
    demos = ws.list_demos(_store(request), user.id, status)
    return {"demos": [_demo_json(d) for d in demos]}


def _demo_json(d: ws.Demo) -> dict[str, Any]:
    out = asdict(d)
    out["updated_at"] = d.updated_at.isoformat() if d.updated_at else None
    return out


@router.post("/api/workspace/demos")
def create_draft(body: DemoBody, request: Request, user: Any = Depends(trainer)) -> dict[str, Any]:
    return _demo_json(_call(ws.save_draft, _store(request), user.id, _msgs(body.messages), meta=body.meta))


@router.get("/api/workspace/demos/{demo_id}")
def get_demo(demo_id: PathId, request: Request, user: Any = Depends(trainer)) -> dict[str, Any]:
    for d in ws.list_demos(_store(request), user.id):
        if d.id == demo_id:
            return _demo_json(d)
    raise APIError(404, f"no demonstration {demo_id}", code="not_found")


@router.put("/api/workspace/demos/{demo_id}")
def save_draft(demo_id: PathId, body: DemoBody, request: Request, user: Any = Depends(trainer)) -> dict[str, Any]:
    return _demo_json(_call(ws.save_draft, _store(request), user.id, _msgs(body.messages), demo_id=demo_id,
                            meta=body.meta))


@router.post("/api/workspace/demos/{demo_id}/submit")
def submit_demo(demo_id: PathId, body: DemoBody, request: Request, user: Any = Depends(trainer)) -> dict[str, Any]:
    return _demo_json(_call(ws.submit_demo, _store(request), user.id, _msgs(body.messages), demo_id=demo_id,
                            meta=body.meta))


@router.delete("/api/workspace/demos/{demo_id}", status_code=204)
def delete_draft(demo_id: PathId, request: Request, user: Any = Depends(trainer)) -> Response:
    _call(ws.delete_draft, _store(request), user.id, demo_id)
    return Response(status_code=204)


def _task_json(t: ws.TaskView | None) -> dict[str, Any]:
    return {"task": None if t is None else asdict(t)}


@router.get("/api/workspace/tasks/next")
def next_task(request: Request, user: Any = Depends(trainer)) -> dict[str, Any]:
    return _task_json(ws.next_task(_store(request), user.id))


@router.get("/api/workspace/tasks/{task_id}")
def get_task(task_id: PathId, request: Request, user: Any = Depends(trainer)) -> dict[str, Any]:
    return _task_json(_call(ws.get_task, _store(request), task_id, user.id))


@router.post("/api/workspace/tasks/{task_id}/ranking")
def submit_ranking(task_id: PathId, body: RankingBody, request: Request, user: Any = Depends(trainer)) -> dict[str, Any]:
    rid = _call(ws.submit_ranking, _store(request), task_id, user.id, body.ranks, flags=body.flags,
                all_unacceptable=body.all_unacceptable, comment=body.comment)
    return {"id": rid}


@router.post("/api/workspace/tasks/{task_id}/skip", status_code=204)
def skip_task(task_id: PathId, request: Request, user: Any = Depends(trainer)) -> Response:
    _call(ws.release_task, _store(request), task_id, user.id)
    return Response(status_code=204)


# --------------------------------------------------------------------------- admin API

class UserBody(BaseModel):
    username: str
    password: str
    role: str = "trainer"


class RoleBody(BaseModel):
    role: str


class TasksBody(BaseModel):
    count: int = Field(1, ge=1, le=50)
    k: int = Field(4, ge=ws.K_MIN, le=ws.K_MAX)
    required: int = Field(1, ge=1, le=50)
    source: str = "conversation"
    list_id: BodyId | None = None
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1, le=1024)  # None: app.state.workspace_max_tokens


class PromptsBody(BaseModel):
    name: str
    format: str = "prompts"
    text: str


def _user_json(u: Any) -> dict[str, Any]:
    return {"id": u.id, "username": u.username, "role": u.role, "created_at": u.created_at.isoformat()}


@router.get("/api/workspace/admin/users")
def admin_users(request: Request, user: Any = Depends(admin)) -> dict[str, Any]:
    return {"users": [_user_json(u) for u in _store(request).list_users()]}


@router.post("/api/workspace/admin/users")
def admin_create_user(body: UserBody, request: Request, user: Any = Depends(admin)) -> dict[str, Any]:
    return _user_json(_call(_store(request).create_user, body.username, body.password, body.role))


@router.post("/api/workspace/admin/users/{user_id}/role")
def admin_set_role(user_id: PathId, body: RoleBody, request: Request, user: Any = Depends(admin)) -> dict[str, Any]:
    if user_id == user.id and body.role != "admin":
        raise APIError(400, "you cannot remove your own admin role")
    return _user_json(_call(_store(request).set_role, user_id, body.role))


@router.get("/api/workspace/admin/tasks")
def admin_tasks(request: Request, status: str | None = None, user: Any = Depends(admin)) -> dict[str, Any]:
    return {"tasks": [{**asdict(t), "created_at": t.created_at.isoformat()}
                      for t in ws.task_summaries(_store(request), status=status)]}


@router.post("/api/workspace/admin/tasks")
async def admin_create_tasks(body: TasksBody, request: Request, user: Any = Depends(admin)) -> dict[str, Any]:
    """Create ``count`` tasks: pick a source, sample the missing completions, store (one by one)."""
    store, rng, created = _store(request), random.Random(), []
    for _ in range(body.count):
        picked = await asyncio.to_thread(_call, ws.pick_source, store, body.source, list_id=body.list_id, rng=rng)
        if picked is None:
            break
        prefix, given, ref = picked
        texts = await sample(request, prefix, body.k - len(given), temperature=body.temperature,
                             max_tokens=_max_tokens(request, body.max_tokens))
        completions = given + [(t, request.app.state.model_name) for t in texts]
        created.append(await asyncio.to_thread(
            _call, ws.create_task, store, prefix, completions, required=body.required, source=body.source,
            source_ref=ref, created_by=user.id, rng=rng))
    return {"created": created, "exhausted": len(created) < body.count}


@router.get("/api/workspace/admin/tasks/{task_id}")
def admin_task(task_id: PathId, request: Request, method: str = "ranked_pairs", user: Any = Depends(admin)) -> dict[str, Any]:
    detail = _call(ws.task_detail, _store(request), task_id)
    if detail["rankings"]:
        detail["aggregate"] = _call(ws.aggregate_task, _store(request), task_id, method)
    return detail


@router.get("/api/workspace/admin/agreement")
def admin_agreement(request: Request, user: Any = Depends(admin)) -> dict[str, Any]:
    rep = ws.agreement_report(_store(request))
    return {"overall": rep.overall, "pairs": rep.pairs,
            "trainers": [{"annotator": a, "agreement": v, "pairs": rep.per_annotator_pairs[a]}
                         for a, v in sorted(rep.per_annotator.items())]}


@router.get("/api/workspace/admin/prompts")
def admin_prompt_lists(request: Request, user: Any = Depends(admin)) -> dict[str, Any]:
    return {"lists": ws.list_prompt_lists(_store(request))}


@router.post("/api/workspace/admin/prompts")
def admin_upload_prompts(body: PromptsBody, request: Request, user: Any = Depends(admin)) -> dict[str, Any]:
    """Upload a JSONL prompt list (format "prompts" or "messages"); bad lines are reported, not fatal."""
    from chatrlhf import importers

    if body.format not in ("prompts", "messages"):
        raise APIError(400, "format must be 'prompts' (JSON strings) or 'messages' (OpenAI messages)")
    res = importers.parse_lines(body.format, enumerate(body.text.splitlines(), 1), "upload")
    prompts = [c for c in res.demos if c.is_prompt]
    errors = [str(e) for e in res.errors]
    errors += [f"upload: a conversation ending with the assistant is not a prompt ({n} skipped)"
               for n in [len(res.demos) - len(prompts)] if n]
    if not prompts:
        raise APIError(400, "no usable prompts in the upload" + (f": {errors[0]}" if errors else ""))
    list_id = _call(ws.upload_prompts, _store(request), body.name, prompts, user_id=user.id)
    return {"id": list_id, "prompts": len(prompts), "errors": errors}
