"""JSON API under ``/api/v1/`` (search, repositories, versions, signatures), described by OpenAPI 3.1.

Everything here is read-only and sees only what the caller may pull. ``yanked`` versions are
left out of listings unless asked for, and always marked, so ``deploy`` can refuse them.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from registry import views
from registry.auth import Principal, Unauthorized
from registry.openapi import document
from registry.state import Registry

PREFIX = "/api/v1"


async def not_found(request: Request, exc: Exception) -> Response:
    """Paths no route matches (a name with a newline, say): JSON under the API, the HTML page elsewhere."""
    if request.url.path.startswith(PREFIX + "/"):
        return JSONResponse({"error": "not found (or not visible to you)"}, 404)
    from registry.web import render_error

    return render_error(404, "Not found, or not visible without a token.")


def principal_of(reg: Registry, request: Request) -> Principal:
    return reg.auth.authenticate(request.headers.get("authorization"))


def routes(reg: Registry) -> list[Route]:
    def endpoint(fn: Any) -> Any:
        async def run(request: Request) -> Response:
            try:
                principal = principal_of(reg, request)
            except Unauthorized as exc:
                return JSONResponse({"error": str(exc)}, 401)
            try:
                return JSONResponse(await views.run(reg, fn, principal, request))
            except views.NotVisible:
                return JSONResponse({"error": "not found (or not visible to you)"}, 404)
            except views.BadRequest as exc:
                return JSONResponse({"error": str(exc)}, 400)
        return run

    openapi = document()
    return [
        Route(f"{PREFIX}/openapi.json", lambda request: JSONResponse(openapi)),
        Route(f"{PREFIX}/search", endpoint(_search)),
        Route(f"{PREFIX}/repositories", endpoint(_repositories)),
        Route(PREFIX + "/repositories/{name:path}/-/versions/{reference}/signatures", endpoint(_signatures)),
        Route(PREFIX + "/repositories/{name:path}/-/versions/{reference}", endpoint(_version)),
        Route(PREFIX + "/repositories/{name:path}/-/versions", endpoint(_versions)),
        Route(PREFIX + "/repositories/{name:path}", endpoint(_repository)),
    ]


def _flag(request: Request, key: str) -> bool:
    return views.flag(request.query_params.get(key), key)


def _page(request: Request) -> int:
    return views.page_number(request.query_params.get("page"))


def _search(reg: Registry, principal: Principal, request: Request) -> dict[str, Any]:
    return {"results": views.search(reg, principal, request.query_params.get("q"))}


def _repositories(reg: Registry, principal: Principal, request: Request) -> dict[str, Any]:
    return {"repositories": views.search(reg, principal, None, limit=1000)}


def _repository(reg: Registry, principal: Principal, request: Request) -> dict[str, Any]:
    return views.repository(reg, principal, request.path_params["name"], _flag(request, "include_yanked"),
                            _page(request))


def _versions(reg: Registry, principal: Principal, request: Request) -> dict[str, Any]:
    repo = views.repository(reg, principal, request.path_params["name"], _flag(request, "include_yanked"),
                            _page(request))
    return {"name": repo["name"], "versions": repo["tags"], "page": repo["page"], "pages": repo["pages"]}


def _version(reg: Registry, principal: Principal, request: Request) -> dict[str, Any]:
    p = request.path_params
    return views.version(reg, principal, p["name"], p["reference"]).to_json()


def _signatures(reg: Registry, principal: Principal, request: Request) -> dict[str, Any]:
    p = request.path_params
    v = views.version(reg, principal, p["name"], p["reference"])
    return {"digest": v.digest, "signatures": [s.to_json() for s in v.signatures]}
