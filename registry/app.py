"""The ASGI application: ``/v2/`` (OCI distribution) on a fast path, everything else via Starlette.

``create_app(settings)`` builds it; ``factory()`` builds it from the environment for uvicorn workers.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from enarx_pkg.accesslog import with_access_log
from registry import api, v2, web
from registry.auth import Unauthorized
from registry.errors import OciError
from registry.settings import Settings
from registry.state import Registry

MAX_TOKEN_FORM = 64 << 10  # a docker token request: a few scopes and one token

# The pages are read-only: only the copy button's script (by hash) may run; nothing may frame them or be
# sniffed into HTML.
SITE_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
                                 b"script-src '" + web.SCRIPT_HASH.encode() + b"'; "
                                 b"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class RegistryApp:
    """Routes ``/v2`` straight to the distribution handlers (no middleware on the hot path)."""

    def __init__(self, reg: Registry) -> None:
        self.reg = reg
        self.site = Starlette(routes=[Route("/token", self.token, methods=["GET", "POST"]), *api.routes(reg),
                                      *web.routes(reg)], exception_handlers={404: api.not_found})
        self._logged = with_access_log(self._route, reg.settings.access_log)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._logged(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (scope["path"] == "/v2" or scope["path"].startswith("/v2/")):
            await v2.handle(self.reg, scope, receive, send)
        elif scope["type"] == "http":
            await self.site(scope, receive, _with_headers(send))
        else:
            await self.site(scope, receive, send)

    async def token(self, request: Request) -> Response:
        """Docker token auth: Basic (any user, API token as password) in, short-lived bearer token out."""
        authorization = request.headers.get("authorization")
        scopes = request.query_params.getlist("scope")
        if request.method == "POST":
            try:
                body: bytes | None = await v2.read_limited(request, MAX_TOKEN_FORM)
                form = parse_qs((body or b"").decode("utf-8", "replace"), max_num_fields=100)
            except (OciError, ValueError):
                body = None
            if body is None:
                return JSONResponse({"errors": [{"code": "SIZE_INVALID", "message": "token request is over "
                                                 f"{MAX_TOKEN_FORM} bytes or 100 fields"}]}, 413)
            scopes += form.get("scope", [])
            password = (form.get("password") or form.get("refresh_token") or [""])[0]
            if password:
                authorization = f"Bearer {password}"
        try:
            principal = self.reg.auth.authenticate(authorization)
        except Unauthorized as exc:
            return JSONResponse({"errors": [{"code": "UNAUTHORIZED", "message": str(exc)}]}, 401)
        grants = self.reg.auth.grant(principal, scopes)
        if principal.admin:
            grants |= {"admin"}
        token, ttl = self.reg.auth.issue_bearer(principal, frozenset(grants))
        return JSONResponse({"token": token, "access_token": token, "expires_in": ttl})


def _with_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *SITE_HEADERS]}
        await send(message)
    return sending


def create_app(settings: Settings) -> RegistryApp:
    return RegistryApp(Registry(settings))


def factory() -> RegistryApp:
    """uvicorn ``--factory`` entry: settings come from ENARX_REGISTRY_CONFIG (set by ``registry serve``)."""
    log = logging.getLogger("registry")
    if not log.handlers:  # one plain line per event on stderr, beside uvicorn's own
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    return create_app(Settings.from_env())
