"""``create_app``: the FastAPI application, with all state on ``app.state``.

Consumes a ``ChatService`` (which holds the engine's scheduler), the store and the moderation hook;
produces an ASGI app serving the OpenAI API, plus the web UI and trainer workspace routers and the
static files when those modules exist. The scheduler's worker thread starts and stops with the
app's lifespan. Every error, ours or the framework's, leaves as OpenAI's error object.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import APIError, error_body

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
OPTIONAL_ROUTERS = ("chatrlhf.server.web", "chatrlhf.server.workspace", "chatrlhf.server.deploy_routes",
                    "chatrlhf.server.arena", "chatrlhf.server.monitor_routes")


def create_app(
    service: Any,
    *,
    store: Any = None,
    moderation: Callable[[str], Any] | None = None,
    no_auth: bool = False,
    allowed_hosts: Iterable[str] | None = None,
    quotas: Any = None,
) -> FastAPI:
    """The app for ``service`` (a ``ChatService``); ``store`` None runs without persistence.
    ``allowed_hosts``: the Host names (``host`` or ``host:port``) it answers to; the default is
    the loopback names on any port (``launch.build_app`` passes the bound port's list). The
    check cannot be switched off, with or without ``no_auth`` (see ``browser.BrowserGuard``).
    ``quotas``: a ``quotas.QuotaConfig`` (None: its defaults)."""
    from .browser import LOOPBACK_NAMES, BrowserGuard
    from .openai_routes import router as openai_router

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.router.start()  # the engines' workers, and following the deployment log
        try:
            yield
        finally:
            await service.router.stop()

    # No Swagger UI: it loads from a CDN, and the product must work offline (openapi.json stays).
    app = FastAPI(title="chatrlhf", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.service = service
    app.state.store = store
    app.state.moderation = moderation or service.moderation or _no_moderation
    app.state.model_name = service.model_name
    app.state.no_auth = no_auth
    app.state.local_user = None
    app.state.arena = None  # a server.arena.ArenaConfig (launch.build_app sets it); None = off
    from .quotas import Quotas

    app.state.quotas = Quotas(quotas)
    # Looked up at each call: tests and embedders may put other Quotas on app.state.
    service.on_usage = lambda user, tokens: app.state.quotas.record_tokens(user, tokens)

    _install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=service.limits.max_body_bytes)
    # Added last, so it runs first: a refused request costs no body parsing.
    app.state.allowed_hosts = list(LOOPBACK_NAMES if allowed_hosts is None else allowed_hosts)
    app.add_middleware(BrowserGuard, allowed_hosts=app.state.allowed_hosts)
    app.include_router(openai_router)

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, Any]:
        sched = service.scheduler
        engine = {k: getattr(sched, k, None) for k in ("batches_run", "max_rows_seen")}
        return {"status": "ok", "model": service.model_name, "version": service.model_version,
                "engine": engine}

    for name in OPTIONAL_ROUTERS:
        router = _optional_router(name)
        if router is not None:
            app.include_router(router)
    if STATIC_DIR.is_dir():
        from fastapi.staticfiles import StaticFiles

        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _honest_openapi(app)
    return app


def _honest_openapi(app: FastAPI) -> None:
    """The schema documents the error statuses the server answers (``errors.ERROR_STATUSES``, in
    OpenAI's error shape) and not FastAPI's 422, which this app never sends (they are 400s)."""
    from fastapi.openapi.utils import get_openapi

    from .errors import ERROR_STATUSES, ErrorResponse

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            body = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(body.pop("$defs", {}))
            components["ErrorResponse"] = body
            ref = {"$ref": "#/components/schemas/ErrorResponse"}
            for item in schema.get("paths", {}).values():
                for op in item.values():
                    responses = op.setdefault("responses", {})
                    responses.pop("422", None)
                    for status, why in ERROR_STATUSES.items():
                        responses.setdefault(str(status), {
                            "description": why, "content": {"application/json": {"schema": ref}}})
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _optional_router(module: str) -> Any | None:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        return None
    return getattr(mod, "router", None)


def _no_moderation(text: str, role: str = "user") -> Any:
    from ..moderation import CATEGORIES, ModerationResult

    return ModerationResult(False, {c: False for c in CATEGORIES}, {c: 0.0 for c in CATEGORIES})


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    """One readable sentence for the first problem, and the parameter it concerns."""
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    err = errors[0]
    if err.get("type") == "json_invalid":
        detail = (err.get("ctx") or {}).get("error", "")
        return f"We could not parse the JSON body of your request ({detail}).", None
    loc = [str(p) for p in err.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    msg = err.get("msg", "invalid value")
    if "input" in err and err.get("type") not in ("missing",) and not isinstance(err["input"], dict | list):
        msg += f" (got {err['input']!r})"
    more = f" ({len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return (f"{param}: {msg}{more}" if param else f"{msg}{more}"), param


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return JSONResponse(error_body(message, param=param), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI wraps errors raised while reading the body (BodyLimit's 413) in a vague 400.
        cause = exc.__cause__
        err = cause if isinstance(cause, APIError) else APIError(exc.status_code, str(exc.detail))
        return JSONResponse(err.body(), status_code=err.status, headers=exc.headers)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal server error", "server_error"), status_code=500)


class BodyLimit:
    """Reject request bodies over ``max_bytes`` with 413 before anything parses them."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._reject(send)
        seen = 0

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise APIError(413, self._message(), code="request_too_large")
            return message

        await self.app(scope, limited_receive, send)

    def _message(self) -> str:
        return f"request body is larger than {self.max_bytes} bytes"

    async def _reject(self, send: Callable) -> None:
        response = JSONResponse(
            error_body(self._message(), code="request_too_large"), status_code=413
        )
        await response({"type": "http"}, None, send)  # type: ignore[arg-type]
