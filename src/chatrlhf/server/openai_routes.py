"""Thin routes of the OpenAI-compatible API: HTTP in, a ``ChatService`` call, JSON or SSE out.

``POST /v1/chat/completions`` (plain and streaming), ``GET /v1/models[/{id}]``,
``POST /v1/moderations``.
Everything the routes need lives on ``request.app.state``.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from . import protocol as P
from .auth import current_user
from .errors import SSE_RESPONSE, bad_request
from .quotas import quotas_of

router = APIRouter(prefix="/v1")

# How often a non-streaming request checks whether its client is still there.
DISCONNECT_POLL_S = 0.5


@router.get("/models", response_model=P.ModelList)
def list_models(request: Request, user: Any = Depends(current_user)) -> P.ModelList:
    return request.app.state.service.list_models()


@router.get("/models/{model_id:path}", response_model=P.ModelCard)
def get_model(model_id: str, request: Request, user: Any = Depends(current_user)) -> P.ModelCard:
    service = request.app.state.service
    service.check_model(model_id)
    return P.ModelCard(id=model_id, created=service.created)


@router.post("/chat/completions", response_model=None, responses=SSE_RESPONSE)
async def chat_completions(
    body: P.ChatCompletionRequest, request: Request, user: Any = Depends(current_user)
) -> Any:
    service = request.app.state.service
    slot = quotas_of(request).admit(user)  # 429 past the user's quota, before any work
    try:
        prep = await service.prepare(body, user)
    except BaseException:
        slot.release()
        raise
    if prep.stream:
        return StreamingResponse(
            released(service.stream(prep, user), slot),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    try:
        task = asyncio.ensure_future(service.chat(prep, user))
        # A client that hangs up should not keep the engine busy: poll, and cancel its generation.
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if done:
                return task.result()
            if await request.is_disconnected():
                task.cancel()
                return Response(status_code=499)
    finally:
        slot.release()


async def released(events: AsyncIterator[str], slot: Any) -> AsyncIterator[str]:
    """``events``, releasing the quota ``slot`` when they end, fail or the client goes away."""
    try:
        async for e in events:
            yield e
    finally:
        slot.release()
        await events.aclose()


@router.post("/moderations", response_model=P.ModerationResponse)
def moderations(
    body: P.ModerationRequest, request: Request, user: Any = Depends(current_user)
) -> P.ModerationResponse:
    moderate = request.app.state.moderation
    texts = [body.input] if isinstance(body.input, str) else body.input
    limits = request.app.state.service.limits
    # The total is bounded too: moderation costs CPU time linear in it (this plain ``def`` route
    # runs in the thread pool, but one request should not occupy a core for a minute).
    if (len(texts) > limits.max_messages or any(len(t) > limits.max_content_chars for t in texts)
            or sum(map(len, texts)) > limits.max_total_chars):
        raise bad_request(
            f"moderation input is too large (at most {limits.max_messages} texts of "
            f"{limits.max_content_chars} characters, {limits.max_total_chars} in all)", "input",
        )
    results = []
    for t in texts:
        r = moderate(t)
        results.append(
            P.ModerationResultOut(flagged=r.flagged, categories=r.categories, category_scores=r.scores)
        )
    return P.ModerationResponse(results=results)
