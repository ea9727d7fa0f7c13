"""``BrowserGuard``: what a web page in the user's browser must not be able to make the server do.

Every request, every route (``/v1`` included), with or without ``--no-auth``:
  1. **Host allow-list.** The ``Host`` header must name this server. A DNS-rebinding page gets
     its own domain resolved to 127.0.0.1, so the browser then treats the server as that page's
     origin; its requests still carry the attacker's host name, and are refused here.
  2. **Origin on writes.** Browsers send ``Origin`` on every request that is not a GET or HEAD
     (cross-site forms and ``no-cors`` fetches included), and ``Sec-Fetch-Site`` on all of them:
     a write whose origin is not an allowed one, or which a browser marks cross-site, is refused.
  3. **CSRF header on writes without an API key.** A write that does not carry
     ``Authorization`` (so a session cookie, or the cookie-less ``--no-auth`` user, would act)
     needs ``X-Requested-With`` or a JSON content type, which a cross-site page cannot send
     without a CORS preflight this server never grants. Checked whether or not a cookie is sent.

Refusals are OpenAI-style 403s (``code``: ``host_not_allowed``, ``origin_not_allowed``,
``csrf_failed``). The allow-list holds ``host`` or ``host:port`` entries; ``host_allow_list``
builds the default for a bound address.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from fastapi.responses import JSONResponse

from .errors import error_body

WRITE_METHODS = frozenset({b"POST", b"PUT", b"PATCH", b"DELETE"})
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def host_allow_list(host: str, port: int, extra: Iterable[str] = ()) -> list[str]:
    """The default allow-list for a server bound to ``host:port``: the loopback names and the
    bound host itself (unless it is a wildcard such as 0.0.0.0), at that port, plus ``extra``
    (``--allowed-host``: the names a server reachable from elsewhere is called by)."""
    names = list(LOOPBACK_NAMES)
    bound = f"[{host}]" if ":" in host and not host.startswith("[") else host
    if bound not in ("0.0.0.0", "[::]", "") and bound not in names:
        names.append(bound)
    out = [f"{n}:{port}" for n in names]
    if port == 80:  # browsers leave out the default port
        out += names
    return out + [e.lower() for e in extra]


def _split_host(value: str) -> tuple[str, str | None]:
    """'example.com:8000' -> ('example.com', '8000'); '[::1]:80' -> ('[::1]', '80')."""
    if value.startswith("["):
        end = value.find("]")
        rest = value[end + 1:]
        return value[: end + 1], rest[1:] if rest.startswith(":") else None
    name, sep, port = value.rpartition(":")
    return (name, port) if sep else (value, None)


class HostAllowList:
    """Matches ``Host`` values: an entry with a port matches only that port; one without matches
    any port (how ``create_app`` defaults when it does not know the bound port)."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.exact: set[str] = set()
        self.any_port: set[str] = set()
        for e in entries:
            e = e.strip().lower()
            name, port = _split_host(e)
            (self.exact if port else self.any_port).add(e if port else name)

    def allows(self, host: str) -> bool:
        host = host.strip().lower()
        if not host:
            return False
        return host in self.exact or _split_host(host)[0] in self.any_port

    def allows_origin(self, origin: str) -> bool:
        scheme, sep, rest = origin.strip().lower().partition("://")
        if not sep or scheme not in ("http", "https") or "/" in rest:
            return False  # "null" (sandboxed or privacy-stripped), file:, other schemes
        return self.allows(rest)


class BrowserGuard:
    """The pure-ASGI middleware applying the three checks in the module docstring."""

    def __init__(self, app: Any, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = HostAllowList(allowed_hosts)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal = self.check(scope["method"].encode(), dict(scope.get("headers") or []))
        if refusal is not None:
            code, message = refusal
            response = JSONResponse(error_body(message, "permission_error", code=code),
                                    status_code=403)
            return await response(scope, receive, send)
        return await self.app(scope, receive, send)

    def check(self, method: bytes, headers: dict[bytes, bytes]) -> tuple[str, str] | None:
        """None when the request may go on, else (code, message)."""
        def header(name: bytes) -> str | None:
            v = headers.get(name)
            return None if v is None else v.decode("latin-1")

        host = header(b"host") or ""
        if not self.hosts.allows(host):
            return ("host_not_allowed",
                    f"Host {host!r} is not one this server answers to (see --allowed-host).")
        if method not in WRITE_METHODS:
            return None
        origin = header(b"origin")
        if origin is not None and not self.hosts.allows_origin(origin):
            return "origin_not_allowed", f"cross-origin writes are refused (Origin {origin!r})"
        if header(b"sec-fetch-site") in ("cross-site", "same-site"):
            return "origin_not_allowed", "cross-site writes are refused (Sec-Fetch-Site)"
        if header(b"authorization") is None:
            ctype = (header(b"content-type") or "").split(";")[0].strip().lower()
            if not header(b"x-requested-with") and ctype != "application/json":
                return ("csrf_failed", "writes need a JSON content type or an X-Requested-With "
                                       "header (CSRF check)")
        return None
