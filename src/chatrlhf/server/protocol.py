"""Pydantic models of the OpenAI protocol subset the server speaks (requests and responses).

Requests ignore unknown fields (clients send many we do not use); semantic checks that need
server limits (message count, sizes, ``max_tokens`` bounds) live in ``service.ChatService`` so the
error messages can name the limit.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, field_validator
from typing_extensions import Annotated

FinishReason = Literal["stop", "length", "content_filter", "cancelled"]

# Every number a request carries is bounded, so none reaches the engine or the database out of
# range (an int past 64 bits made SQLite and torch raise, a 500 for the whole batch).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# A row id in a path or a body: the database's 64-bit range (out of range: 400 naming it).
PathId = Annotated[int, Path(ge=INT64_MIN, le=INT64_MAX)]
BodyId = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
# Generous ceilings; the service's ``ServiceLimits`` hold the real ones and name them in errors.
_COUNT_MAX = 2**31 - 1


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ChatMessage(_Lenient):
    # "developer" is OpenAI's newer name for a system message.
    role: Literal["system", "developer", "user", "assistant"]
    # Required, as in OpenAI's API; a list holds content parts, of which only text is supported.
    content: str | list[dict[str, Any]] | None
    name: str | None = None

    @field_validator("content")
    @classmethod
    def _text_parts_only(cls, v: Any) -> Any:
        if isinstance(v, list):
            for i, part in enumerate(v):
                kind = part.get("type")
                if kind != "text" or not isinstance(part.get("text"), str):
                    raise ValueError(
                        f"content part {i} has type {kind!r}; only text parts "
                        '({"type": "text", "text": "..."}) are supported'
                    )
        return v

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p["text"] for p in self.content)


class StreamOptions(_Lenient):
    include_usage: bool = False


class ChatCompletionRequest(_Lenient):
    # NaN and infinities (Python's JSON parser accepts them) are refused: NaN passes no range check.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    model: str | None = None
    messages: list[ChatMessage]
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1, le=_COUNT_MAX)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=_COUNT_MAX)
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1, le=_COUNT_MAX)
    # Choice i samples with seed + i; the service checks that the last one fits in 64 bits too.
    seed: int | None = Field(default=None, ge=INT64_MIN, le=INT64_MAX)
    user: str | None = Field(default=None, max_length=256)
    stream: bool = False
    stream_options: StreamOptions | None = None
    # vLLM's extension, for benchmarks: generate max_tokens even past end-of-turn.
    ignore_eos: bool = False

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def chat_messages(self) -> list[dict[str, str]]:
        return [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            for m in self.messages
        ]


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


class ChatCompletion(BaseModel):
    id: str = Field(default_factory=new_completion_id)
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: FinishReason | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "chatrlhf"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ModerationRequest(_Lenient):
    input: str | list[str]
    model: str | None = None


class ModerationResultOut(BaseModel):
    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]


class ModerationResponse(BaseModel):
    id: str = Field(default_factory=lambda: f"modr-{uuid.uuid4().hex[:24]}")
    model: str = "chatrlhf-moderation"
    results: list[ModerationResultOut]
