"""Server-rendered HTML pages (Jinja2): home with search, repository, version. No JavaScript needed.

Links are plain URLs (``/repo/NAME``, ``/repo/NAME/-/versions/REF``) so they can be shared.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from registry import views
from registry.auth import ANONYMOUS, Principal, Unauthorized
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


# The one script on the pages: the deploy line's copy button. Allowed by its hash, nothing else may run.
COPY_SCRIPT = (
    'document.querySelectorAll("button[data-copy]").forEach(function (b) {'
    ' b.addEventListener("click", function () {'
    ' var el = document.getElementById(b.dataset.copy);'
    ' window.getSelection().selectAllChildren(el);'
    ' if (navigator.clipboard) { navigator.clipboard.writeText(el.textContent).then(function () {'
    ' b.textContent = "Copied"; }); } }); });')
SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(COPY_SCRIPT.encode()).digest()).decode()
_env.globals["copy_script"] = COPY_SCRIPT
UNKNOWN_CREATED = ("", "1970-01-01T00:00:00Z")


def _render(name: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**context), status, headers=headers)


def render_error(status: int, message: str, user: str | None = None) -> HTMLResponse:
    return _render("error.html", status, message=message, user=user)


def _user(principal: Principal) -> str | None:
    """Who the header says is signed in (a token's name), or None when signed out."""
    return None if principal is ANONYMOUS else principal.name


def routes(reg: Registry) -> list[Route]:
    def page(fn: Any) -> Any:
        async def run(request: Request) -> Response:
            try:
                principal = reg.auth.authenticate(request.headers.get("authorization"))
            except Unauthorized as exc:
                return render_error(401, str(exc))
            try:
                return await views.run(reg, fn, principal, request)
            except views.NotVisible:
                return render_error(404, "Not found, or not visible without a token.", _user(principal))
            except views.BadRequest as exc:
                return render_error(400, str(exc), _user(principal))
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

    async def logout(request: Request) -> Response:
        # a 401 for the same realm makes browsers drop the Basic credentials they cached
        return _render("error.html", 401, message="Signed out. If the browser asks to sign in again, cancel.",
                       headers={"WWW-Authenticate": 'Basic realm="enarx-pkg registry"'})

    return [
        Route("/login", login),
        Route("/logout", logout),
        Route("/", page(_home)),
        Route("/repo/{name:path}/-/versions/{reference}", page(_version)),
        Route("/repo/{name:path}", page(_repository)),
    ]


def _home(reg: Registry, principal: Principal, request: Request) -> Response:
    q = request.query_params.get("q", "")
    return _render("home.html", q=q, results=views.search(reg, principal, q), user=_user(principal))


def _repository(reg: Registry, principal: Principal, request: Request) -> Response:
    repo = views.repository(reg, principal, request.path_params["name"],
                            page=views.page_number(request.query_params.get("page")))
    return _render("repo.html", repo=repo, user=_user(principal))


def _version(reg: Registry, principal: Principal, request: Request) -> Response:
    p = request.path_params
    v = views.version(reg, principal, p["name"], p["reference"])
    host = reg.settings.public_url.split("://", 1)[-1] if reg.settings.public_url else request.headers.get(
        "host", "localhost")
    return _render("version.html", v=v, deploy=v.deploy_line(host), user=_user(principal))
