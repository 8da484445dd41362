"""Server-rendered HTML pages (Jinja2): home with search, repository, version. No JavaScript needed.

Links are plain URLs (``/repo/NAME``, ``/repo/NAME/-/versions/REF``) so they can be shared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from registry import views
from registry.auth import Unauthorized
from registry.state import Registry

_env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                   autoescape=select_autoescape(["html"]), auto_reload=False)


def _human(size: Any) -> str:
    if not isinstance(size, int):
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return str(size)


_env.filters["human"] = _human


def _render(name: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**context), status, headers=headers)


def routes(reg: Registry) -> list[Route]:
    def page(fn: Any) -> Any:
        async def run(request: Request) -> Response:
            try:
                principal = reg.auth.authenticate(request.headers.get("authorization"))
            except Unauthorized as exc:
                return _render("error.html", 401, message=str(exc))
            try:
                return fn(reg, principal, request)
            except views.NotVisible:
                return _render("error.html", 404, message="Not found, or not visible without a token.")
        return run

    async def login(request: Request) -> Response:
        # browsers send Basic credentials only after a challenge; afterwards every page gets them
        try:
            principal = reg.auth.authenticate(request.headers.get("authorization"))
        except Unauthorized:
            principal = None
        if principal is None or principal.token_id is None:
            return _render("error.html", 401, message="Sign in with any user name and an API token as password.",
                           headers={"WWW-Authenticate": 'Basic realm="enarx-pkg registry"'})
        return RedirectResponse("/", 303)

    return [
        Route("/login", login),
        Route("/", page(_home)),
        Route("/repo/{name:path}/-/versions/{reference}", page(_version)),
        Route("/repo/{name:path}", page(_repository)),
    ]


def _home(reg: Registry, principal: Any, request: Request) -> Response:
    q = request.query_params.get("q", "")
    return _render("home.html", q=q, results=views.search(reg, principal, q))


def _repository(reg: Registry, principal: Any, request: Request) -> Response:
    repo = views.repository(reg, principal, request.path_params["name"])
    return _render("repo.html", repo=repo)


def _version(reg: Registry, principal: Any, request: Request) -> Response:
    p = request.path_params
    v = views.version(reg, principal, p["name"], p["reference"])
    host = reg.settings.public_url.split("://", 1)[-1] if reg.settings.public_url else request.headers.get(
        "host", "localhost")
    return _render("version.html", v=v, deploy=v.deploy_line(host))
