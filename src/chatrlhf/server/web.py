"""The web chat UI's routes: the page, login/logout, and the JSON + SSE endpoints app.js calls.

Consumes ``app.state.store`` (a ``chatrlhf.store.Store``) and ``app.state.service`` (the
``ChatService``; generation goes through its ``prepare_messages``/``generate``, never around it);
produces the single-page UI (``static/index.html``) and these endpoints, all for the logged-in
user (session cookie or bearer key, via ``server.auth.current_user``) and only on their own data::

    POST   /api/login {username, password}      -> {user} + HttpOnly SameSite=Lax session cookie
    POST   /api/logout                          GET /api/me -> {user}
    GET    /api/conversations                   -> {conversations: [...]}
    POST   /api/conversations {title?, system_prompt?, settings?} -> {conversation}
    GET    /api/conversations/{id}              -> {conversation, messages: every tree node}
    PATCH  /api/conversations/{id} {title?, system_prompt?, settings?, current_id?}
    DELETE /api/conversations/{id}
    POST   /api/conversations/{id}/messages {content, parent_id}   -> SSE (new user turn + reply)
    POST   /api/messages/{id}/regenerate        -> SSE (a new assistant sibling, or a first reply)
    POST   /api/messages/{id}/edit {content}    -> SSE (a new user sibling: a branch + its reply)
    POST   /api/messages/{id}/stop              POST/DELETE /api/messages/{id}/feedback
    POST   /api/messages/{id}/report {kind, comment}

A new user turn may be an arena turn (two versions answer side by side; ``server/arena.py``).

The SSE streams carry ``data: {json}`` events: ``{"type": "user"|"assistant", "message"}`` for the
rows just created, ``{"type": "delta", "id", "text"}``, then ``{"type": "done", "message"}`` (or
``{"type": "error", "error", "message"}``). The assistant row is written before the first token and
finished (content, finish_reason, moderation) when the reply ends, is stopped, or the client goes
away, with partial text flushed every few seconds so a killed server loses little.

CSRF: writes must carry ``X-Requested-With`` or a JSON content type; a cross-site form can send
neither without a CORS preflight, which this app never grants. ``browser.BrowserGuard`` adds the
Host allow-list and the Origin check on every route, and ``quotas`` the per-user limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any, AsyncIterator, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from .auth import SESSION_COOKIE, current_user
from .protocol import BodyId, PathId
from .errors import SSE_RESPONSE, APIError
from .openai_routes import released
from .quotas import quotas_of

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
SESSION_TTL_S = 30 * 86400
FLUSH_EVERY_S = 2.0
# Password guessing is throttled per (username, client address) and per address, never per
# username alone (an attacker could lock anyone out): see server.quotas.
DEFAULT_SETTINGS: dict[str, Any] = {"temperature": 0.7, "top_p": 1.0, "max_tokens": 256, "seed": None}
_WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# The UI page's policy: scripts and styles only from this origin, so even an escaping bug could
# not run injected script.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'")


def csrf_guard(request: Request) -> None:
    if request.method not in _WRITE_METHODS:
        return
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.headers.get("x-requested-with") or ctype == "application/json":
        return
    raise APIError(403, "writes need a JSON content type or an X-Requested-With header (CSRF check)",
                   code="csrf_failed")


router = APIRouter(dependencies=[Depends(csrf_guard)])


# ---- request bodies ---------------------------------------------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginBody(_Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class Settings(_Strict):
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)


class ConversationBody(_Strict):
    title: str | None = Field(default=None, max_length=200)
    system_prompt: str | None = None
    settings: Settings | None = None
    current_id: BodyId | None = None


class SendBody(_Strict):
    content: str = Field(min_length=1)
    parent_id: BodyId | None = None


class EditBody(_Strict):
    content: str = Field(min_length=1)


class FeedbackBody(_Strict):
    rating: Literal[1, -1]
    reasons: list[str] = Field(default_factory=list)
    comment: str = ""


class ReportBody(_Strict):
    kind: Literal["harmful", "untrue", "moderation_false_positive", "moderation_false_negative"]
    comment: str = ""


# ---- helpers ----------------------------------------------------------------------------------

def _store(request: Request) -> Any:
    store = request.app.state.store
    if store is None:
        raise APIError(503, "the web UI needs a store; start the server with a database")
    return store


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """A store call with its errors as HTTP errors: bad input 400, missing 404, duplicate 409."""
    from ..store import Conflict, NotFound

    try:
        return fn(*args, **kwargs)
    except NotFound as e:
        raise APIError(404, str(e).strip("'\"")) from None
    except Conflict as e:
        raise APIError(409, str(e)) from None
    except ValueError as e:
        raise APIError(400, str(e)) from None


def _iso(dt: Any) -> str:
    from datetime import timezone

    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).isoformat()


def user_json(user: Any) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "role": user.role}


def effective_settings(stored: dict[str, Any] | None) -> dict[str, Any]:
    """The sampling settings in force: stored values over the defaults (a null seed = random)."""
    out = dict(DEFAULT_SETTINGS)
    for k, v in (stored or {}).items():
        if k in out and v is not None:
            out[k] = v
    return out


def conversation_json(c: Any) -> dict[str, Any]:
    return {
        "id": c.id, "title": c.title, "system_prompt": c.system_prompt,
        "settings": effective_settings(c.settings), "source": c.source, "current_id": c.current_id,
        "created_at": _iso(c.created_at), "updated_at": _iso(c.updated_at),
    }


def message_json(m: Any, feedback: Any = None, reports: list[str] | None = None) -> dict[str, Any]:
    meta = m.meta or {}
    arena = meta.get("arena")  # {turn, side[, choice]}: one of two side-by-side replies
    return {
        "id": m.id, "parent_id": m.parent_id, "role": m.role, "content": m.content,
        "created_at": _iso(m.created_at),
        # An arena reply's version stays hidden until the user has picked.
        "model_version": None if arena and "choice" not in arena else m.model_version,
        "arena": arena,
        "status": meta.get("status", "done"), "finish_reason": meta.get("finish_reason"),
        "moderation": meta.get("moderation") or meta.get("input_moderation"),
        "feedback": None if feedback is None else
        {"rating": feedback.rating, "reasons": feedback.reasons, "comment": feedback.comment},
        "reports": reports or [],
    }


def _title(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _owned_message(store: Any, message_id: int, user: Any) -> Any:
    m = _call(store.get_message, message_id, user_id=user.id)
    if m is None:
        raise APIError(404, f"no message {message_id}")
    return m


def _owned_conversation(store: Any, conv_id: int, user: Any) -> Any:
    c = _call(store.get_conversation, conv_id, user_id=user.id)
    if c is None:
        raise APIError(404, f"no conversation {conv_id}")
    return c


# ---- page, login ------------------------------------------------------------------------------

@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={
        "Cache-Control": "no-cache", "Content-Security-Policy": _CSP,
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
    })


@router.post("/api/login")
def login(body: LoginBody, request: Request, response: Response) -> dict[str, Any]:
    store = _store(request)
    quotas, address = quotas_of(request), request.client.host if request.client else "unknown"
    wait = quotas.login_retry_after(body.username, address)
    if wait is not None:
        raise APIError(429, "Too many failed logins from this address; try again in a few "
                            "minutes.", code="login_throttled", headers={"Retry-After": str(wait)})
    user = store.authenticate(body.username, body.password)
    if user is None:
        quotas.login_failed(body.username, address)
        raise APIError(401, "Incorrect username or password.", code="invalid_login")
    quotas.login_succeeded(body.username, address)
    token = store.create_session(user.id, ttl_s=SESSION_TTL_S)
    response.set_cookie(SESSION_COOKIE, token, max_age=SESSION_TTL_S, path="/", httponly=True,
                        samesite="lax", secure=request.url.scheme == "https")
    return {"user": user_json(user)}


@router.post("/api/logout")
def logout(request: Request, response: Response) -> dict[str, Any]:
    token = request.cookies.get(SESSION_COOKIE)
    if token and request.app.state.store is not None:
        request.app.state.store.delete_session(token)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return {"ok": True}


@router.get("/api/me")
def me(user: Any = Depends(current_user)) -> dict[str, Any]:
    return {"user": user_json(user)}


# ---- conversations ----------------------------------------------------------------------------

def _merged_settings(request: Request, old: dict[str, Any] | None,
                     new: Settings | None) -> dict[str, Any] | None:
    """The fields sent replace the old ones; a null resets a field to its default."""
    if new is None:
        return None
    ceiling = request.app.state.service.limits.max_tokens
    if new.max_tokens is not None and new.max_tokens > ceiling:
        raise APIError(400, f"settings.max_tokens: at most {ceiling} on this server "
                            f"(got {new.max_tokens})", param="settings.max_tokens")
    return effective_settings({**effective_settings(old), **new.model_dump(exclude_unset=True)})


@router.get("/api/conversations")
def list_conversations(request: Request, user: Any = Depends(current_user)) -> dict[str, Any]:
    convs = _call(_store(request).list_conversations, user.id, limit=200)
    return {"conversations": [conversation_json(c) for c in convs]}


@router.post("/api/conversations")
def create_conversation(body: ConversationBody, request: Request,
                        user: Any = Depends(current_user)) -> dict[str, Any]:
    conv = _call(_store(request).create_conversation, user.id, title=body.title or "",
                 system_prompt=body.system_prompt or "",
                 settings=_merged_settings(request, None, body.settings) or dict(DEFAULT_SETTINGS), source="web")
    return {"conversation": conversation_json(conv)}


@router.get("/api/conversations/{conv_id}")
def get_conversation(conv_id: PathId, request: Request, user: Any = Depends(current_user)) -> dict[str, Any]:
    store = _store(request)
    conv = _owned_conversation(store, conv_id, user)
    mine = {f.message_id: f for f in conv.feedback if f.user_id == user.id}
    reports: dict[int, list[str]] = {}
    for m in conv.messages:
        if m.role == "assistant":
            reports[m.id] = [r.kind for r in store.list_reports(message_id=m.id) if r.user_id == user.id]
    return {
        "conversation": conversation_json(conv),
        "messages": [message_json(m, mine.get(m.id), reports.get(m.id)) for m in conv.messages],
    }


@router.patch("/api/conversations/{conv_id}")
def update_conversation(conv_id: PathId, body: ConversationBody, request: Request,
                        user: Any = Depends(current_user)) -> dict[str, Any]:
    store = _store(request)
    settings = None
    if body.settings is not None:
        old = _owned_conversation(store, conv_id, user).settings
        settings = _merged_settings(request, old, body.settings)
    conv = _call(store.update_conversation, conv_id, user.id, title=body.title,
                 system_prompt=body.system_prompt, settings=settings, current_id=body.current_id)
    return {"conversation": conversation_json(conv)}


@router.delete("/api/conversations/{conv_id}", status_code=204)
def delete_conversation(conv_id: PathId, request: Request, user: Any = Depends(current_user)) -> Response:
    if not _call(_store(request).delete_conversation, conv_id, user.id):
        raise APIError(404, f"no conversation {conv_id}")
    return Response(status_code=204)


# ---- feedback and reports ---------------------------------------------------------------------

@router.post("/api/messages/{message_id}/feedback")
def set_feedback(message_id: PathId, body: FeedbackBody, request: Request,
                 user: Any = Depends(current_user)) -> dict[str, Any]:
    store = _store(request)
    _owned_message(store, message_id, user)
    fb = _call(store.set_feedback, message_id, user.id, body.rating, body.reasons, body.comment)
    return {"feedback": {"rating": fb.rating, "reasons": fb.reasons, "comment": fb.comment}}


@router.delete("/api/messages/{message_id}/feedback")
def delete_feedback(message_id: PathId, request: Request, user: Any = Depends(current_user)) -> dict[str, Any]:
    store = _store(request)
    _owned_message(store, message_id, user)
    return {"deleted": store.delete_feedback(message_id, user.id)}


@router.post("/api/messages/{message_id}/report")
def report(message_id: PathId, body: ReportBody, request: Request,
           user: Any = Depends(current_user)) -> dict[str, Any]:
    store = _store(request)
    m = _owned_message(store, message_id, user)
    if m.role != "assistant":
        raise APIError(400, "only assistant messages can be reported", param="message_id")
    text = m.content
    if body.kind == "moderation_false_positive" and (m.meta or {}).get("input_moderation"):
        # The input was what moderation blocked; the reply is only the canned refusal.
        text = store.get_message(m.parent_id).content
    r = _call(store.add_report, user.id, body.kind, message_id=m.id, comment=body.comment, text=text)
    return {"report": {"id": r.id, "kind": r.kind, "status": r.status}}


# ---- generation -------------------------------------------------------------------------------

def _options(service: Any, settings: dict[str, Any]) -> Any:
    from .service import GenOptions

    s = effective_settings(settings)
    limits = service.limits
    return GenOptions(
        max_tokens=min(int(s["max_tokens"] or limits.default_max_tokens), limits.max_tokens),
        temperature=float(s["temperature"]), top_p=float(s["top_p"]), n=1,
        seed=None if s["seed"] is None else int(s["seed"]),
    )


async def _prepare(request: Request, conv: Any, messages: list[dict[str, str]], user: Any) -> Any:
    """Validate, render and moderate before anything is written: a bad request changes nothing."""
    service = request.app.state.service
    messages = service.check_messages(messages)
    # The version is chosen per user (sticky under a traffic split), so a chat stays on one.
    return await service.prepare_messages(messages, _options(service, conv.settings), user=user)


def _history(store: Any, conv: Any, parent_id: int | None) -> list[dict[str, str]]:
    if parent_id is not None:
        return store.prompt_messages(parent_id)
    return [{"role": "system", "content": conv.system_prompt}] if conv.system_prompt else []


@router.post("/api/conversations/{conv_id}/messages", responses=SSE_RESPONSE)
async def send_message(conv_id: PathId, body: SendBody, request: Request,
                       user: Any = Depends(current_user)) -> StreamingResponse:
    # A quota slot first: a refused request writes nothing; the reply's end frees it.
    slot = quotas_of(request).admit(user)
    try:
        store = _store(request)
        conv = await run_in_threadpool(_owned_conversation, store, conv_id, user)
        if body.parent_id is not None:
            parent = await run_in_threadpool(_owned_message, store, body.parent_id, user)
            if parent.conversation_id != conv.id or parent.role != "assistant":
                raise APIError(400, "parent_id must be an assistant message of this conversation",
                               param="parent_id")
        history = await run_in_threadpool(_history, store, conv, body.parent_id)
        messages = history + [{"role": "user", "content": body.content}]
        from .arena import arena_prepare, arena_stream  # two versions side by side (server/arena.py)

        arena = await arena_prepare(request, user, conv, messages)
        prep = arena[0] if arena else await _prepare(request, conv, messages, user)
        user_msg = await run_in_threadpool(_call, store.add_message, conv.id, "user", body.content,
                                           parent_id=body.parent_id, user_id=user.id)
        if not conv.title:
            await run_in_threadpool(store.update_conversation, conv.id, title=_title(body.content))
        if arena:
            return arena_stream(request, user, user_msg, arena, slot=slot)
        return _reply_stream(request, user, user_msg, prep, announce=True, slot=slot)
    except BaseException:
        slot.release()
        raise


@router.post("/api/messages/{message_id}/regenerate", responses=SSE_RESPONSE)
async def regenerate(message_id: PathId, request: Request, user: Any = Depends(current_user)) -> StreamingResponse:
    # A quota slot first: a refused request writes nothing; the reply's end frees it.
    slot = quotas_of(request).admit(user)
    try:
        store = _store(request)
        m = await run_in_threadpool(_owned_message, store, message_id, user)
        if m.role == "assistant" and m.parent_id is not None:
            anchor = await run_in_threadpool(store.get_message, m.parent_id)
        elif m.role == "user":
            anchor = m  # a user turn whose reply failed or was never made: give it a first reply
        else:
            raise APIError(400, "regenerate needs an assistant reply or a user message", param="message_id")
        conv = await run_in_threadpool(_owned_conversation, store, m.conversation_id, user)
        prep = await _prepare(request, conv, await run_in_threadpool(store.prompt_messages, anchor.id), user)
        return _reply_stream(request, user, anchor, prep, announce=False, slot=slot)
    except BaseException:
        slot.release()
        raise


@router.post("/api/messages/{message_id}/edit", responses=SSE_RESPONSE)
async def edit(message_id: PathId, body: EditBody, request: Request,
               user: Any = Depends(current_user)) -> StreamingResponse:
    # A quota slot first: a refused request writes nothing; the reply's end frees it.
    slot = quotas_of(request).admit(user)
    try:
        store = _store(request)
        m = await run_in_threadpool(_owned_message, store, message_id, user)
        if m.role != "user":
            raise APIError(400, "only user messages can be edited", param="message_id")
        conv = await run_in_threadpool(_owned_conversation, store, m.conversation_id, user)
        history = await run_in_threadpool(_history, store, conv, m.parent_id)
        prep = await _prepare(request, conv, history + [{"role": "user", "content": body.content}], user)
        user_msg = await run_in_threadpool(_call, store.add_message, conv.id, "user", body.content,
                                           parent_id=m.parent_id, user_id=user.id)
        return _reply_stream(request, user, user_msg, prep, announce=True, slot=slot)
    except BaseException:
        slot.release()
        raise


@router.post("/api/messages/{message_id}/stop")
async def stop(message_id: PathId, request: Request, user: Any = Depends(current_user)) -> dict[str, Any]:
    entry = _streams(request.app).get(message_id)
    if entry is None or entry[0] != user.id:
        return {"stopped": False}  # already finished (or not ours): nothing to stop
    entry[1].set()
    return {"stopped": True}


def _streams(app: Any) -> dict[int, tuple[int, asyncio.Event]]:
    """Replies streaming now in this process, by assistant message id: (user id, stop event).
    With several server replicas a stop may reach another one; the client then drops the
    connection, which cancels the generation too."""
    if not hasattr(app.state, "web_streams"):
        app.state.web_streams = {}
    return app.state.web_streams


def _sse(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def _reply_stream(request: Request, user: Any, parent: Any, prep: Any, *, announce: bool,
                  slot: Any) -> StreamingResponse:
    """Stream a new assistant reply under the user message ``parent`` (announced to the client
    when it was just created)."""
    return StreamingResponse(
        released(_reply_events(request, user, parent, prep, announce), slot),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _reply_events(request: Request, user: Any, parent: Any, prep: Any,
                        announce: bool) -> AsyncIterator[str]:
    import anyio

    store, service = request.app.state.store, request.app.state.service
    meta: dict[str, Any] = {"status": "streaming", "sampling": _sampling_meta(prep.options)}
    if prep.blocked is not None:
        meta["input_moderation"] = prep.blocked.flagged_categories
    reply = await run_in_threadpool(store.add_message, parent.conversation_id, "assistant", "",
                                    parent_id=parent.id, model_version=prep.backend.version if prep.backend else service.model_version,
                                    meta=meta)
    stop_event = asyncio.Event()
    streams = _streams(request.app)
    streams[reply.id] = (user.id, stop_event)
    from .service import Reply

    row, error = Reply(), None
    try:
        if announce:
            yield _sse({"type": "user", "message": message_json(parent)})
        yield _sse({"type": "assistant", "message": message_json(reply)})
        flushed = time.monotonic()
        async for ev in _until(service.generate(prep, [row]), stop_event):
            if ev.text:
                yield _sse({"type": "delta", "id": reply.id, "text": ev.text})
            if time.monotonic() - flushed > FLUSH_EVERY_S:
                flushed = time.monotonic()
                await run_in_threadpool(store.update_message, reply.id, content=row.text)
    except APIError as e:
        error = e.message
    except Exception:
        log.exception("web reply %s failed", reply.id)
        error = "the reply failed (server error)"
    finally:
        streams.pop(reply.id, None)
        # Runs on client disconnect too (the task is being cancelled): shield the final write.
        with anyio.CancelScope(shield=True):
            final = await run_in_threadpool(store.update_message, reply.id, content=row.text,
                                            meta=_final_meta(row, error))
        if service.on_usage is not None:
            service.on_usage(user, row.tokens)
    if error is not None:
        yield _sse({"type": "error", "error": error, "message": message_json(final)})
    else:
        yield _sse({"type": "done", "message": message_json(final)})


def _final_meta(row: Any, error: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "status": "error" if error else "done",
        "finish_reason": row.finish or ("error" if error else "cancelled"),
        "completion_tokens": row.tokens,
        **row.latency_meta(),  # ttft_s, tokens_per_s (deploy/monitor.py reads them)
    }
    if row.moderation is not None:
        meta["moderation"] = row.moderation.flagged_categories
    if error:
        meta["error"] = error
    return meta


def _sampling_meta(opts: Any) -> dict[str, Any]:
    return {"temperature": opts.temperature, "top_p": opts.top_p, "max_tokens": opts.max_tokens,
            "seed": opts.seed}


async def _until(events: AsyncIterator[Any], stop_event: asyncio.Event) -> AsyncIterator[Any]:
    """Relay ``events`` until they end or ``stop_event`` is set; either way (and on cancellation)
    close them, which cancels the generation's engine rows."""
    stopper = asyncio.ensure_future(stop_event.wait())
    nxt: asyncio.Future | None = None
    try:
        while True:
            nxt = asyncio.ensure_future(events.__anext__())
            await asyncio.wait({nxt, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not nxt.done():
                return
            try:
                item = nxt.result()
            except StopAsyncIteration:
                return
            nxt = None
            yield item
    finally:
        import anyio

        with anyio.CancelScope(shield=True):
            stopper.cancel()
            if nxt is not None and not nxt.done():
                nxt.cancel()
                with contextlib.suppress(BaseException):
                    await nxt
            with contextlib.suppress(BaseException):
                await events.aclose()
