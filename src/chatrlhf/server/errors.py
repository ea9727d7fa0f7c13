"""OpenAI-style errors: ``APIError`` raised anywhere in the server becomes
``{"error": {"message", "type", "param", "code"}}`` with its HTTP status (see ``app.create_app``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

# OpenAI's error types by HTTP status, so a client's exception class matches the status.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,  # e.g. Retry-After on a 429
    ) -> None:
        super().__init__(message)
        self.headers = headers
        self.status = status
        self.message = message
        self.type = type or _TYPES.get(status, "invalid_request_error")
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """OpenAI's error object: what every non-2xx answer of this server carries."""

    error: ErrorDetail


# Every error status the server answers, for the OpenAPI schema (``app._honest_openapi``).
ERROR_STATUSES = {
    400: "bad input (the field is named in param)", 401: "no API key or session, or a wrong one",
    403: "role too low, host or origin not allowed, or the CSRF check failed",
    404: "no such object (or not yours)", 409: "conflicts with a stored row",
    413: "request body too large", 429: "a quota or the login throttle (see Retry-After)",
    500: "server error", 503: "the server is busy or shutting down",
}


# The 200 answer of a route that streams server-sent events (or JSON, for /v1 without "stream").
SSE_RESPONSE = {200: {"description": "JSON, or with stream=true server-sent events", "content": {
    "application/json": {}, "text/event-stream": {"schema": {"type": "string"}}}}}


def error_body(
    message: str, type: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)
