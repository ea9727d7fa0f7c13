"""The arena in the web chat: some turns are answered by two model versions side by side.

Consumes ``app.state.arena`` (an ``ArenaConfig``; ``chatrlhf serve --arena-share X``), the
service's ``Router`` (which versions are served: a traffic split, or the versions the config
names) and the store; produces, for an arena turn of ``POST /api/conversations/{id}/messages``,
one SSE stream carrying both replies, and these routes::

    POST /api/arena/{turn}/pick {choice: "A"|"B"|"tie"|"both_bad", reason?}
         -> {pick, chosen_id, versions: {A, B}}      (turn = the user message both replies answer)
    GET  /api/admin/arena                             -> deploy.arena.arena_stats (admin role)

A turn is an arena turn when at least two versions are available and a draw fixed by (user,
conversation, turn index) falls under ``share`` (``is_arena_turn``); which version is A is drawn
the same way. Both replies are generated at once (two ``prepare_messages(..., backend=...)`` and
two ``generate`` streams), stored as assistant siblings with their ``model_version`` and
``meta["arena"] = {"turn", "side"}``, and streamed with events tagged by side::

    {"type": "user", "message"}
    {"type": "arena", "turn", "messages": [A, B]}      the two rows just written (no versions)
    {"type": "delta", "id", "side", "text"}             either side, interleaved
    {"type": "arena_reply", "side", "message"}          a side finished
    {"type": "done", "message": A, "arena": {"turn", "messages": [A, B]}}   (or "error")

The final event is a normal ``done`` naming A, so a client that knows nothing of the arena goes on
from A, as a tie does. Until the pick, ``message_json`` hides both replies' versions; the pick's
answer reveals them. The conversation continues from the picked reply (A after a tie or "both
bad": ``store.arena_tables.continue_from``). Regenerating or editing is never an arena turn.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from .auth import current_user, require_role
from .errors import APIError
from .protocol import PathId
from .web import csrf_guard

log = logging.getLogger(__name__)

router = APIRouter(dependencies=[Depends(csrf_guard)], tags=["arena"])


@dataclass
class ArenaConfig:
    share: float = 0.0  # the share of web chat turns answered side by side; 0 = off
    # The two versions to compare; () = the two heaviest of the traffic split, when there is one.
    versions: tuple[str, ...] = ()


# ---- pure decisions ---------------------------------------------------------------------------

def _draw(*parts: Any) -> float:
    """A stable number in [0, 1) for ``parts``."""
    key = ":".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def is_arena_turn(share: float, user_id: Any, conversation_id: Any, turn: int) -> bool:
    """True for about ``share`` of (user, conversation, turn index) triples, always the same."""
    return share > 0 and _draw("arena", user_id, conversation_id, turn) < share


def arena_versions(cfg: ArenaConfig | None, traffic: dict[str, float]) -> tuple[str, str] | None:
    """The two versions to compare, or None when fewer than two are available: the configured
    ones, else the two heaviest of the split (ties by name)."""
    if cfg is None or cfg.share <= 0:
        return None
    if len(cfg.versions) >= 2:
        return cfg.versions[0], cfg.versions[1]
    ranked = sorted((v for v, w in traffic.items() if w > 0), key=lambda v: (-traffic[v], v))
    return (ranked[0], ranked[1]) if len(ranked) >= 2 else None


def arena_sides(pair: tuple[str, str], user_id: Any, conversation_id: Any, turn: int) -> tuple[str, str]:
    """``(version A, version B)``: the order drawn per turn, so neither version is always A."""
    flip = _draw("arena-side", user_id, conversation_id, turn) < 0.5
    return (pair[1], pair[0]) if flip else pair


# ---- an arena turn ----------------------------------------------------------------------------

async def arena_prepare(request: Request, user: Any, conv: Any,
                        messages: list[dict[str, str]]) -> list[Any] | None:
    """Two ``Prepared`` (A, B) when this turn is an arena turn, else None. A blocked input is
    answered by the one canned refusal, never side by side (None too)."""
    from . import web

    service = request.app.state.service
    pair = arena_versions(getattr(request.app.state, "arena", None), service.router.traffic)
    turn = sum(m["role"] == "user" for m in messages) - 1
    if pair is None or not is_arena_turn(request.app.state.arena.share, user.id, conv.id, turn):
        return None
    messages = service.check_messages(messages)
    options = web._options(service, conv.settings)
    preps = []
    for version in arena_sides(pair, user.id, conv.id, turn):
        try:
            backend = await service.router.backend_for(version)
        except APIError as e:  # a configured version that is gone or will not load: a plain turn
            log.warning("arena: cannot serve %s (%s); answering with one version", version, e.message)
            return None
        preps.append(await service.prepare_messages(messages, options, backend=backend, user=user))
    return None if preps[0].blocked is not None else preps


def arena_stream(request: Request, user: Any, parent: Any, preps: list[Any], *, slot: Any) -> StreamingResponse:
    """Stream both replies to the user message ``parent`` (just created)."""
    from .openai_routes import released

    return StreamingResponse(
        released(_arena_events(request, user, parent, preps), slot),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _arena_events(request: Request, user: Any, parent: Any, preps: list[Any]) -> AsyncIterator[str]:
    import anyio

    from . import web
    from .service import Reply

    store, service = request.app.state.store, request.app.state.service
    replies = []
    for side, prep in zip("AB", preps):
        meta = {"status": "streaming", "sampling": web._sampling_meta(prep.options),
                "arena": {"turn": parent.id, "side": side}}
        replies.append(await run_in_threadpool(store.add_message, parent.conversation_id, "assistant", "",
                                               parent_id=parent.id, model_version=prep.backend.version,
                                               meta=meta))
    # Until the pick the chat would go on from A (what a tie does); B was written last.
    await run_in_threadpool(store.update_conversation, parent.conversation_id, current_id=replies[0].id)
    stop_event = asyncio.Event()
    streams = web._streams(request.app)
    for r in replies:
        streams[r.id] = (user.id, stop_event)  # a stop on either side stops both
    rows, errors = [Reply(), Reply()], [None, None]
    finals: list[Any] = [None, None]
    queue: asyncio.Queue = asyncio.Queue()

    async def pump(i: int) -> None:
        try:
            async for ev in web._until(service.generate(preps[i], [rows[i]]), stop_event):
                if ev.text:
                    await queue.put((i, ev.text))
        except APIError as e:
            errors[i] = e.message
        except Exception:
            log.exception("arena reply %s failed", replies[i].id)
            errors[i] = "the reply failed (server error)"
        finally:
            queue.put_nowait((i, None))

    def finish(i: int) -> Any:
        return store.update_message(replies[i].id, content=rows[i].text, meta=web._final_meta(rows[i], errors[i]))

    tasks = [asyncio.create_task(pump(i)) for i in range(2)]
    try:
        yield web._sse({"type": "user", "message": web.message_json(parent)})
        yield web._sse({"type": "arena", "turn": parent.id,
                        "messages": [web.message_json(r) for r in replies]})
        flushed, running = time.monotonic(), 2
        while running:
            i, text = await queue.get()
            if text is None:
                running -= 1
                finals[i] = await run_in_threadpool(finish, i)
                yield web._sse({"type": "arena_reply", "side": "AB"[i], "message": web.message_json(finals[i])})
                continue
            yield web._sse({"type": "delta", "id": replies[i].id, "side": "AB"[i], "text": text})
            if time.monotonic() - flushed > web.FLUSH_EVERY_S:
                flushed = time.monotonic()
                for j in range(2):
                    if finals[j] is None:
                        await run_in_threadpool(store.update_message, replies[j].id, content=rows[j].text)
    finally:
        for r in replies:
            streams.pop(r.id, None)
        # Runs on client disconnect too (this task is being cancelled): shield the cleanup.
        with anyio.CancelScope(shield=True):
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for i in range(2):
                if finals[i] is None:
                    finals[i] = await run_in_threadpool(finish, i)
            if service.on_usage is not None:
                service.on_usage(user, rows[0].tokens + rows[1].tokens)
    both = [web.message_json(m) for m in finals]
    arena = {"turn": parent.id, "messages": both}
    error = next((e for e in errors if e is not None), None)
    if error is not None:
        yield web._sse({"type": "error", "error": error, "message": both[0], "arena": arena})
    else:
        yield web._sse({"type": "done", "message": both[0], "arena": arena})


# ---- routes -----------------------------------------------------------------------------------

class PickBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    choice: Literal["A", "B", "tie", "both_bad"]
    reason: str = Field("", max_length=1000)


def pick_json(p: Any) -> dict[str, Any]:
    return {"id": p.id, "turn": p.turn_id, "choice": p.choice, "reason": p.reason,
            "created_at": p.created_at.isoformat()}


@router.post("/api/arena/{turn}/pick")
def pick(turn: PathId, body: PickBody, request: Request, user: Any = Depends(current_user)) -> dict[str, Any]:
    """Record the user's pick on their arena turn ``turn``; 404 when it is not theirs or no arena
    turn, 400 while a reply still streams, 409 for a second pick."""
    from ..store.arena_tables import add_pick
    from . import web

    store = web._store(request)
    p = web._call(add_pick, store, user.id, turn, body.choice, body.reason)
    return {"pick": pick_json(p), "chosen_id": p.chosen_id,
            "versions": {"A": p.a_version, "B": p.b_version}}


@router.get("/api/admin/arena", tags=["admin"])
def admin_arena(request: Request, user: Any = Depends(require_role("admin"))) -> dict[str, Any]:
    """Per-version arena win rates (Wilson 95% intervals) and Bradley-Terry/Elo ratings over every
    pick, and the arena's configuration on this server (``GET /api/admin/monitor`` has the same
    statistics over its window's picks)."""
    from ..deploy.arena import arena_stats
    from ..store.arena_tables import list_picks
    from . import web

    cfg = getattr(request.app.state, "arena", None) or ArenaConfig()
    stats = arena_stats(list_picks(web._store(request)))
    pair = arena_versions(cfg, request.app.state.service.router.traffic)
    return {**stats, "config": {"share": cfg.share, "versions": list(cfg.versions),
                                "comparing": list(pair) if pair else []}}
