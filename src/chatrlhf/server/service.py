"""``ChatService``: chat completions over a batching engine, a moderation hook and a store.

Consumes OpenAI-style requests (``protocol.ChatCompletionRequest``) or plain message lists, and
produces ``ChatCompletion`` objects, SSE ``chat.completion.chunk`` lines, or (for the web UI)
``ReplyEvent``s. It knows nothing of HTTP: routes call it, tests drive it with a fake engine.

Order of work for one request:
  1. ``prepare``: validate against ``ServiceLimits`` (clear 4xx messages, nothing written yet),
     render the prompt with ``chat_format.render_prompt`` (off the event loop), moderate the last
     user message;
  2. ``generate``: submit the rows to the ``BatchScheduler`` and relay its token events, moderating
     each reply as it grows (a flagged reply stops with ``finish_reason="content_filter"``);
  3. record the exchange in the store (off the event loop) once the replies are complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

from ..schema import RecordError, validate_messages
from . import protocol as P
from .errors import APIError, bad_request
from .router import Backend, Router
from .scheduler import BatchScheduler, Done, Failed, SchedulerBusy, SchedulerStopped

log = logging.getLogger(__name__)

REFUSAL = "I can't help with that request."
# A reply is moderated when its new text ends a word; moderating every token costs CPU.
_BOUNDARY = set(" \n\t.,;:!?)\"'")
# While a reply streams only its new text is checked, with this much of the text before it, so a
# phrase that straddles two checks is still seen whole (the patterns reach over at most a few
# dozen words). Re-scoring the whole reply at every word would be quadratic in its length.
MODERATION_OVERLAP = 400
# The window then starts at a sentence start found at most this far further back, so that a
# refusing sentence ("I can't help you make a bomb.") is never seen cut, as "make a bomb.".
MODERATION_SENTENCE_REACH = 600


@dataclass
class ServiceLimits:
    """Bounds on what one request may ask for; each violation is a 400 naming the limit."""

    max_messages: int = 256
    max_content_chars: int = 32_000  # per message
    max_content_bytes: int = 64 * 1024  # per message, UTF-8 (what the store accepts)
    max_total_chars: int = 128_000  # all messages together
    max_tokens: int = 2048  # ceiling for max_tokens / max_completion_tokens
    default_max_tokens: int = 256
    max_n: int = 8
    max_stop: int = 4
    max_stop_chars: int = 128
    max_body_bytes: int = 1_000_000  # checked by the app before JSON parsing


@dataclass
class GenOptions:
    """Validated sampling options for one request (``n`` rows)."""

    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    n: int = 1
    seed: int | None = None
    ignore_eos: bool = False


@dataclass
class Prepared:
    """A validated request, ready to generate."""

    messages: list[dict[str, str]]
    prompt_ids: list[int]
    options: GenOptions
    blocked: Any = None  # the ModerationResult that blocked the input, if any
    user_tag: str | None = None  # the OpenAI ``user`` field
    stream: bool = False
    include_usage: bool = False
    backend: Backend | None = None  # the model version that runs it (None: the default)
    model: str | None = None  # the name to answer with (the request's ``model``)


@dataclass
class ReplyEvent:
    """New text of reply ``index``; ``finish_reason`` is set on the reply's last event."""

    index: int
    text: str
    finish_reason: str | None = None


@dataclass
class Reply:
    """One choice's totals, filled in by ``generate`` as the reply streams."""

    text: str = ""
    tokens: int = 0
    finish: str | None = None
    moderation: Any = None  # the ModerationResult that stopped the reply, if any
    checked: int = 0  # len(text) when the reply was last moderated
    # time.monotonic() when generation was asked for, at the first token and at the last one
    started: float | None = None
    first_at: float | None = None
    last_at: float | None = None

    def latency_meta(self) -> dict[str, float]:
        """``ttft_s`` (request to first token, queueing included) and ``tokens_per_s`` (decode
        rate after the first token), for the stored message's meta; empty for a reply with no
        tokens (a blocked prompt, a failed request)."""
        if self.started is None or self.first_at is None:
            return {}
        out = {"ttft_s": round(self.first_at - self.started, 4)}
        if self.tokens > 1 and self.last_at is not None and self.last_at > self.first_at:
            out["tokens_per_s"] = round((self.tokens - 1) / (self.last_at - self.first_at), 2)
        return out


@dataclass
class Outcome:
    """What a finished request produced (for usage, the store and the response)."""

    replies: list[Reply]
    prompt_tokens: int

    @property
    def completion_tokens(self) -> int:
        return sum(r.tokens for r in self.replies)


class ChatService:
    def __init__(
        self,
        scheduler: BatchScheduler,
        tokenizer: Any,
        *,
        model_name: str,
        moderation: Callable[..., Any] | None = None,  # (text, role=) -> ModerationResult
        store: Any = None,
        limits: ServiceLimits | None = None,
        context_length: int | None = None,
        model_version: str | None = None,
        on_usage: Callable[[Any, int], None] | None = None,  # (user, completion tokens): quotas
        router: Router | None = None,
    ) -> None:
        """``scheduler``, ``tokenizer``, ``context_length`` and ``model_version`` describe the
        version served at start; ``router`` (built from them when not given) may move to others."""
        self.model_name = model_name
        self.moderation = moderation
        self.store = store
        self.limits = limits or ServiceLimits()
        self.router = router or Router(
            Backend(model_version or model_name, scheduler, tokenizer, context_length),
            alias=model_name)
        self.on_usage = on_usage
        self.created = int(time.time())

    # The version served by default right now (it changes on a promote or rollback).
    @property
    def scheduler(self) -> BatchScheduler:
        return self.router.default_backend.scheduler

    @property
    def tokenizer(self) -> Any:
        return self.router.default_backend.tokenizer

    @property
    def context_length(self) -> int | None:
        return self.router.default_backend.context_length

    @property
    def model_version(self) -> str:
        return self.router.default

    # -- 1. validation -----------------------------------------------------------------------
    def check_messages(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        lim = self.limits
        if not messages:
            raise bad_request("messages must contain at least one message", "messages")
        if len(messages) > lim.max_messages:
            raise bad_request(
                f"too many messages: {len(messages)} > {lim.max_messages}", "messages"
            )
        total = 0
        for i, m in enumerate(messages):
            content = m.get("content") or ""
            total += len(content)
            if len(content) > lim.max_content_chars or len(content.encode()) > lim.max_content_bytes:
                raise bad_request(
                    f"messages[{i}].content is too long: {len(content)} characters (at most "
                    f"{lim.max_content_chars} characters and {lim.max_content_bytes} bytes)",
                    f"messages[{i}].content", "content_too_large",
                )
            if "\x00" in content:
                raise bad_request(f"messages[{i}].content contains a NUL character",
                                  f"messages[{i}].content")
        if total > lim.max_total_chars:
            raise bad_request(
                f"messages are too long in total: {total} characters > {lim.max_total_chars}",
                "messages", "content_too_large",
            )
        try:
            messages = validate_messages(messages)
        except RecordError as e:
            raise bad_request(str(e), "messages") from None
        if messages[-1]["role"] != "user":
            raise bad_request(
                f"the last message must have role 'user', got {messages[-1]['role']!r}",
                f"messages[{len(messages) - 1}].role",
            )
        return messages

    def check_options(self, req: P.ChatCompletionRequest) -> GenOptions:
        lim = self.limits
        if req.max_tokens and req.max_completion_tokens and req.max_tokens != req.max_completion_tokens:
            raise bad_request("max_tokens and max_completion_tokens disagree; send one", "max_tokens")
        max_tokens = req.max_completion_tokens or req.max_tokens or lim.default_max_tokens
        if max_tokens > lim.max_tokens:
            raise bad_request(
                f"max_tokens is too large: {max_tokens} > {lim.max_tokens}", "max_tokens"
            )
        if req.n > lim.max_n:
            raise bad_request(f"n is too large: {req.n} > {lim.max_n}", "n")
        if req.seed is not None and req.seed + req.n - 1 > P.INT64_MAX:
            raise bad_request(f"seed is too large: choice i uses seed + i, which must stay at most "
                              f"{P.INT64_MAX}", "seed")
        stop = req.stop_list()
        if len(stop) > lim.max_stop:
            raise bad_request(f"stop may hold at most {lim.max_stop} sequences", "stop")
        if any(not s or len(s) > lim.max_stop_chars for s in stop):
            raise bad_request(
                f"each stop sequence must have 1 to {lim.max_stop_chars} characters", "stop"
            )
        return GenOptions(
            max_tokens=max_tokens,
            temperature=1.0 if req.temperature is None else req.temperature,
            top_p=1.0 if req.top_p is None else req.top_p,
            stop=stop,
            n=req.n,
            seed=req.seed,
            ignore_eos=req.ignore_eos,
        )

    def check_model(self, name: str | None) -> None:
        if name and not self.router.knows(name):
            raise APIError(
                404, f"The model {name!r} does not exist; this server serves {self.model_name!r}"
                " and the registered versions (GET /v1/models).",
                param="model", code="model_not_found",
            )

    async def prepare(self, req: P.ChatCompletionRequest, user: Any = None) -> Prepared:
        """Validate ``req`` and render its prompt; raises ``APIError`` (4xx) on bad input."""
        messages = self.check_messages(req.chat_messages())
        options = self.check_options(req)
        backend = await self.router.backend_for(req.model, getattr(user, "id", None))
        prep = await self.prepare_messages(messages, options, backend)
        prep.model = req.model or self.model_name
        prep.user_tag = req.user
        prep.stream = req.stream
        prep.include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return prep

    async def prepare_messages(self, messages: list[dict[str, str]], options: GenOptions,
                               backend: Backend | None = None, user: Any = None) -> Prepared:
        """Render and moderate already-checked messages (the web UI's entry point); ``backend``
        None: the version the router serves ``user``."""
        from ..chat_format import render_prompt

        be = backend or self.router.served(getattr(user, "id", None))
        ids = await asyncio.to_thread(render_prompt, messages, be.tokenizer)
        if be.context_length and len(ids) + options.max_tokens > be.context_length:
            raise bad_request(
                f"This model's context is {be.context_length} tokens; the messages take "
                f"{len(ids)} and max_tokens asks for {options.max_tokens} more.",
                "messages", "context_length_exceeded",
            )
        blocked = None
        if self.moderation is not None:
            # Off the event loop: a long message costs milliseconds that every client would share.
            result = await asyncio.to_thread(self.moderation, messages[-1]["content"], role="user")
            blocked = result if result.flagged else None
        return Prepared(messages=messages, prompt_ids=ids, options=options, blocked=blocked, backend=be)

    # -- 2. generation -----------------------------------------------------------------------
    def _sampling_params(self, opts: GenOptions) -> list[Any]:
        from ..engine import SamplingParams

        return [
            SamplingParams(
                max_new_tokens=opts.max_tokens,
                temperature=opts.temperature,
                top_p=opts.top_p,
                stop=list(opts.stop),
                # Distinct seeds per choice: n identical replies would be useless.
                seed=None if opts.seed is None else opts.seed + i,
                ignore_eos=opts.ignore_eos,
            )
            for i in range(opts.n)
        ]

    async def _moderate_reply(self, row: Reply, new_text: str, final: bool) -> bool:
        """True when the reply with ``new_text`` appended is flagged. At a word boundary the new
        text is checked in a bounded window (``moderation_window``); the finished reply is
        checked whole once, so signals spread over a long reply still add up."""
        if self.moderation is None:
            return False
        text = row.text + new_text
        # A hook may ask to be called less often (a trained model costs tens of milliseconds a
        # call: safety.moderator checks at clause ends and every ``stream_every`` characters),
        # so up to that much of a flagged reply reaches the client before it is cut.
        boundary = getattr(self.moderation, "stream_boundary", _BOUNDARY)
        every = getattr(self.moderation, "stream_every", MODERATION_OVERLAP)
        due = any(c in boundary for c in new_text) or len(text) - row.checked >= every
        if not (final or due):
            return False
        start = 0 if final else moderation_window(text, row.checked)
        result = await asyncio.to_thread(self.moderation, text[start:], role="assistant")
        row.checked = len(text)
        if result.flagged:
            row.moderation = result
        return bool(result.flagged)

    async def generate(self, prep: Prepared, rows: list[Reply] | None = None) -> AsyncIterator[ReplyEvent]:
        """Stream the replies' text; ``rows`` (one per choice) collects the totals as it goes."""
        n = prep.options.n
        rows = rows if rows is not None else [Reply() for _ in range(n)]
        if prep.blocked is not None:
            for i, row in enumerate(rows):
                row.text, row.finish, row.moderation = REFUSAL, "content_filter", prep.blocked
                yield ReplyEvent(i, REFUSAL, "content_filter")
            return
        be = prep.backend or self.router.default_backend
        for row in rows:
            row.started = time.monotonic()
        try:
            sub = be.scheduler.submit([prep.prompt_ids] * n, self._sampling_params(prep.options))
        except SchedulerBusy as e:
            raise APIError(503, f"The server is busy ({e}); retry shortly.", code="overloaded")
        except SchedulerStopped as e:
            raise APIError(503, str(e), code="shutting_down")
        be.inflight += 1  # the router does not unload a version while this runs
        try:
            async for item in sub.events():
                if isinstance(item, Failed):
                    raise APIError(500, f"generation failed: {item.error}")
                if isinstance(item, Done):
                    for i, (row, comp) in enumerate(zip(rows, item.completions)):
                        if row.finish is None:  # should not happen; the engine ended the row
                            row.finish = comp.finish_reason
                            yield ReplyEvent(i, "", row.finish)
                    break
                ev, row = item.event, rows[item.index]
                if row.finish is not None:
                    continue
                row.tokens += 1
                row.last_at = time.monotonic()
                row.first_at = row.first_at or row.last_at
                if await self._moderate_reply(row, ev.text, ev.finish_reason is not None):
                    row.finish = "content_filter"
                    sub.cancel(item.index)
                    yield ReplyEvent(item.index, "", "content_filter")
                else:
                    row.text += ev.text
                    row.finish = ev.finish_reason
                    yield ReplyEvent(item.index, ev.text, ev.finish_reason)
                if all(r.finish is not None for r in rows):
                    break
        finally:
            be.inflight -= 1
            if any(r.finish is None for r in rows):
                sub.cancel()  # the caller went away (client disconnect): free the engine rows

    # -- 3. OpenAI responses -----------------------------------------------------------------
    async def chat(self, prep: Prepared, user: Any = None) -> P.ChatCompletion:
        rows = [Reply() for _ in range(prep.options.n)]
        async with contextlib.aclosing(self.generate(prep, rows)) as events:
            async for _ in events:
                pass
        outcome = Outcome(rows, len(prep.prompt_ids))
        await self.record(prep, outcome, user)
        return P.ChatCompletion(
            model=prep.model or self.model_name, system_fingerprint=_version(prep, self),
            choices=[
                P.Choice(index=i, message=P.AssistantMessage(content=r.text), finish_reason=r.finish)
                for i, r in enumerate(rows)
            ],
            usage=_usage(outcome),
        )

    async def stream(self, prep: Prepared, user: Any = None) -> AsyncIterator[str]:
        """SSE lines: a role chunk per choice, content chunks, a finish chunk per choice, the
        usage chunk when asked for, then ``[DONE]``. Every chunk shares one id and created."""
        cid, created = P.new_completion_id(), int(time.time())
        version = _version(prep, self)

        def chunk(choices: list[P.ChunkChoice], **extra: Any) -> str:
            c = P.ChatCompletionChunk(id=cid, created=created, model=prep.model or self.model_name,
                                      system_fingerprint=version, choices=choices,
                                      **extra).model_dump(mode="json")
            for ch in c["choices"]:  # a delta carries only what changed
                ch["delta"] = {k: v for k, v in ch["delta"].items() if v is not None}
            if not prep.include_usage:
                del c["usage"]
            return f"data: {json.dumps(c, ensure_ascii=False)}\n\n"

        for i in range(prep.options.n):
            yield chunk([P.ChunkChoice(index=i, delta=P.Delta(role="assistant", content=""),
                                       finish_reason=None)])
        rows = [Reply() for _ in range(prep.options.n)]
        try:
            async with contextlib.aclosing(self.generate(prep, rows)) as events:
                async for ev in events:
                    if ev.text:
                        yield chunk([P.ChunkChoice(index=ev.index, delta=P.Delta(content=ev.text),
                                                   finish_reason=None)])
                    if ev.finish_reason:
                        yield chunk([P.ChunkChoice(index=ev.index, delta=P.Delta(),
                                                   finish_reason=ev.finish_reason)])
        except APIError as e:
            # The 200 status is already sent: report the error in-band, as OpenAI does (its
            # client raises on an event with an "error" key).
            yield f"data: {json.dumps(e.body())}\n\n"
            yield "data: [DONE]\n\n"
            return
        outcome = Outcome(rows, len(prep.prompt_ids))
        await self.record(prep, outcome, user)
        if prep.include_usage:
            yield chunk([], usage=_usage(outcome))
        yield "data: [DONE]\n\n"

    # -- 4. the store ------------------------------------------------------------------------
    async def record(self, prep: Prepared, outcome: Outcome, user: Any) -> None:
        """Keep the exchange in the store; a store failure is logged, never shown to the client
        (the reply was already generated, and for a stream already sent)."""
        if self.on_usage is not None and user is not None:
            self.on_usage(user, outcome.completion_tokens)
        if self.store is None or user is None or getattr(user, "id", None) is None:
            return
        try:
            await asyncio.to_thread(self._record_sync, prep, outcome, user)
        except Exception:
            log.exception("could not record an API conversation")

    def _record_sync(self, prep: Prepared, outcome: Outcome, user: Any) -> None:
        """One conversation per request: the prompt chain and the first reply in one transaction;
        further choices (n > 1) become siblings of that reply."""
        msgs = prep.messages
        has_system = msgs[0]["role"] == "system"
        chain: list[dict[str, Any]] = [
            {"role": m["role"], "content": m["content"], "model_version": None}
            for m in msgs[1 if has_system else 0 :]
        ]
        replies = []
        for r in outcome.replies:
            meta: dict[str, Any] = {"finish_reason": r.finish, "completion_tokens": r.tokens,
                                    **r.latency_meta()}
            if r.moderation is not None:
                meta["moderation"] = r.moderation.flagged_categories
            replies.append({"role": "assistant", "content": r.text, "meta": meta})
        settings: dict[str, Any] = {
            "sampling": _jsonable(prep.options), "prompt_tokens": outcome.prompt_tokens,
        }
        if prep.blocked is not None:
            settings["input_moderation"] = prep.blocked.flagged_categories
        if prep.user_tag:
            settings["user"] = prep.user_tag
        conv = self.store.create_conversation(
            user.id, title=_title(chain[0]["content"]),
            system_prompt=msgs[0]["content"] if has_system else "", settings=settings,
            source="api", messages=chain + replies[:1], model_version=_version(prep, self),
        )
        if len(replies) > 1:
            parent = conv.messages[-2].id
            for reply in replies[1:]:
                self.store.add_message(conv.id, "assistant", reply["content"], parent_id=parent,
                                       model_version=_version(prep, self), meta=reply["meta"])

    def list_models(self) -> P.ModelList:
        """The served alias, then every loaded or registered version (each may be asked for)."""
        names = dict.fromkeys([self.model_name, *self.router.backends])
        if self.store is not None and self.router.loader is not None:
            names.update(dict.fromkeys(v.name for v in self.store.list_model_versions()
                                       if v.status != "rejected"))
        return P.ModelList(data=[P.ModelCard(id=n, created=self.created) for n in names])


def _version(prep: Prepared, service: ChatService) -> str:
    """The model version that produced (or will produce) ``prep``'s reply."""
    return prep.backend.version if prep.backend is not None else service.model_version


def moderation_window(text: str, checked: int) -> int:
    """Where to start moderating ``text`` whose first ``checked`` characters were checked before:
    ``MODERATION_OVERLAP`` characters before the unchecked part, moved back to the start of
    that sentence when one begins within ``MODERATION_SENTENCE_REACH`` more characters."""
    cut = max(0, checked - MODERATION_OVERLAP)
    if cut == 0:
        return 0
    floor = max(0, cut - MODERATION_SENTENCE_REACH)
    ends = [text.rfind(c, floor, cut) for c in ".!?\n"]
    found = max(ends)
    return found + 1 if found >= 0 else floor if floor == 0 else cut


def _usage(outcome: Outcome) -> P.Usage:
    return P.Usage(
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        total_tokens=outcome.prompt_tokens + outcome.completion_tokens,
    )


def _title(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _jsonable(opts: GenOptions) -> dict[str, Any]:
    from dataclasses import asdict

    return json.loads(json.dumps(asdict(opts)))
