"""OCI Distribution v1.1 endpoints under ``/v2/``: dispatch, auth challenge, manifests, tags, referrers.

Blob and upload endpoints live in :mod:`registry.uploads`. Requests are routed with one regex over
the path (repository names contain slashes) and every handler raises :class:`OciError` for the spec's
error bodies.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from registry import uploads
from registry.accept import acceptable
from registry.auth import ANONYMOUS, Principal, Unauthorized
from registry.errors import OciError
from registry.meta import ManifestRow, TagImmutable
from registry.names import digest_problem, valid_name, valid_tag
from registry.objectstore import StoreUnavailable
from registry.state import Registry

MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json",
}
INDEX_TYPES = {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}
MAX_PAGE = 100000  # tags or repositories in one listing page
MAX_TAG_PARAMS = 100  # ?tag= on a manifest PUT by digest; the spec asks for at least 10
API_HEADERS = {"Docker-Distribution-API-Version": "registry/2.0", "X-Content-Type-Options": "nosniff"}

_ROUTE = re.compile(
    r"^(?P<name>.+?)/(?:"
    r"(?P<tags>tags/list)|manifests/(?P<ref>[^/]+)|blobs/uploads/?(?P<upload>[^/]*)|"
    r"blobs/(?P<blob>[^/]+)|referrers/(?P<subject>[^/]+))$"
)
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-]{1,253}(?::\d{1,5})?$|^\[[0-9a-fA-F:.]{2,45}\](?::\d{1,5})?$")
log = logging.getLogger("registry")
Handler = Callable[[Registry, Request, Principal, dict[str, str]], Awaitable[Response]]


async def handle(reg: Registry, scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI entry for every path under /v2."""
    body = _Body(receive)
    request = Request(scope, body)
    try:
        response = await _dispatch(reg, request)
    except OciError as exc:
        await body.drain(request.headers.get("content-length", ""))
        response = exc.response()
    except StoreUnavailable as exc:
        log.warning("registry: %s %s: %s", request.method, request.url.path[:200], exc)
        # nothing was made visible: a client retries later (the spec's clients honour Retry-After)
        response = OciError("UNAVAILABLE", f"blob storage is unavailable ({exc}); retry later", status=503,
                            headers={"Retry-After": "5"}).response()
    except ClientDisconnect:
        log.info("registry: %s %s: the client went away mid-request (what arrived is kept for a resume)",
                 request.method, request.scope["path"][:200])
        return
    response.headers.update(API_HEADERS)
    await response(scope, receive, send)


class _Body:
    """The ASGI receive channel, remembering whether the request body was read to its end."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.done = False

    async def __call__(self) -> Message:
        message = await self.receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.done = True
        return message

    async def drain(self, length: str) -> None:
        """Read a small unread body before answering an error, so the client sees the answer, not a reset."""
        if self.done or not length.isdigit() or int(length) > 1 << 20:
            return
        while not self.done:
            await self()


async def _dispatch(reg: Registry, request: Request) -> Response:
    path = request.scope["path"][3:].lstrip("/")  # not request.url: parsing a URL costs more than the lookup
    method = request.method
    if path == "":
        principal = _principal(reg, request, None, "pull")
        if principal is ANONYMOUS:
            raise _challenge(reg, request, None, "pull", "authentication required")
        return Response("{}", media_type="application/json")
    if path == "_catalog":
        principal = _principal(reg, request, None, "pull")
        if principal is ANONYMOUS and not reg.auth.anonymous_pull_default():
            raise _challenge(reg, request, None, "pull", "authentication required", "registry:catalog:*")
        return await _catalog(reg, request, principal)
    m = _ROUTE.match(path)
    if m is None:
        raise OciError("NAME_INVALID" if method != "GET" else "NAME_UNKNOWN", "no such endpoint", status=404)
    parts = {k: v for k, v in m.groupdict().items() if v is not None}
    name = parts["name"]
    if not valid_name(name):
        raise OciError("NAME_INVALID", f"invalid repository name {name[:300]!r}: see the OCI distribution spec")
    handler, action = _route(parts, method)
    principal = _principal(reg, request, name, action)
    if not reg.auth.allowed(principal, action, name):
        extra = _mount_scope(request) if "upload" in parts else None
        if principal.anonymous:  # with no token or an anonymous one: ask for credentials, as distribution does
            raise _challenge(reg, request, name, action, "authentication required", extra)
        raise OciError("DENIED", f"token does not grant {action} on {name}", headers=_challenge_header(
            reg, request, name, action, extra))
    return await handler(reg, request, principal, parts)


@functools.cache
def _table() -> dict[tuple[str, str], tuple[Handler, str]]:
    """(what the path names, method) -> (handler, action the caller needs); built once."""
    return {
        ("tags", "GET"): (_tags, "pull"),
        ("ref", "GET"): (_get_manifest, "pull"), ("ref", "HEAD"): (_get_manifest, "pull"),
        ("ref", "PUT"): (_put_manifest, "push"), ("ref", "DELETE"): (_delete_manifest, "delete"),
        ("subject", "GET"): (_referrers, "pull"),
        ("blob", "GET"): (uploads.get_blob, "pull"), ("blob", "HEAD"): (uploads.get_blob, "pull"),
        ("blob", "DELETE"): (uploads.delete_blob, "delete"),
        ("upload", "POST"): (uploads.start, "push"), ("upload", "PATCH"): (uploads.patch, "push"),
        ("upload", "PUT"): (uploads.finish, "push"), ("upload", "GET"): (uploads.status, "push"),
        ("upload", "DELETE"): (uploads.cancel, "push"),
    }


def _route(parts: dict[str, str], method: str) -> tuple[Handler, str]:
    kind: str = next(k for k in ("tags", "ref", "subject", "upload", "blob") if k in parts)
    if kind == "upload" and method == "POST" and parts["upload"]:
        kind = "none"
    found = _table().get((kind, method))
    if found is None:
        raise OciError("UNSUPPORTED", f"{method} is not supported on this endpoint")
    return found


def _principal(reg: Registry, request: Request, name: str | None, action: str) -> Principal:
    try:
        return reg.auth.authenticate(request.headers.get("authorization"))
    except Unauthorized as exc:
        raise _challenge(reg, request, name, action, str(exc)) from None


def _mount_scope(request: Request) -> str | None:
    """A mount needs pull on the source repository too: ask for it in the same challenge."""
    source = request.query_params.get("from", "")
    return f"repository:{source}:pull" if "mount" in request.query_params and valid_name(source) else None


def _challenge_header(reg: Registry, request: Request, name: str | None, action: str,
                      extra: str | None = None) -> dict[str, str]:
    host = request.headers.get("host", "")
    if not _HOST_RE.match(host):  # the realm is echoed into a header: no quotes or odd bytes from clients
        host = "localhost"
    base = reg.settings.public_url or f"{request.url.scheme}://{host}"
    service = base.split("://", 1)[-1]
    value = f'Bearer realm="{base}/token",service="{service}"'
    scopes = [] if name is None else [f"repository:{name}:" + ("pull" if action == "pull" else f"pull,{action}")]
    scopes += [extra] if extra else []
    if scopes:
        value += f',scope="{" ".join(scopes)}"'
    return {"WWW-Authenticate": value}


def _challenge(reg: Registry, request: Request, name: str | None, action: str, why: str,
               extra: str | None = None) -> OciError:
    return OciError("UNAUTHORIZED", why, headers=_challenge_header(reg, request, name, action, extra))


# -- manifests ---------------------------------------------------------------------------------
def _check_ref(ref: str) -> bool:
    """True if ``ref`` is a digest, False if a tag; OciError if neither."""
    if ":" in ref:
        problem = digest_problem(ref)
        if problem:
            raise OciError("DIGEST_INVALID", problem)
        return True
    if not valid_tag(ref):
        raise OciError("TAG_INVALID", f"invalid tag {ref[:200]!r}")
    return False


async def _get_manifest(reg: Registry, request: Request, principal: Principal, parts: dict[str, str]) -> Response:
    name, ref = parts["name"], parts["ref"]
    try:
        by_digest = _check_ref(ref)
    except OciError as exc:  # a reference that cannot exist names no manifest: 404, as the spec asks
        raise OciError("MANIFEST_UNKNOWN", exc.message) from None
    found = reg.meta.resolve(name, ref, by_digest)
    if found is None:
        raise OciError("MANIFEST_UNKNOWN", f"manifest {ref} is not in {name}")
    digest, media_type, size, yanked = found
    if yanked:
        raise OciError("MANIFEST_UNKNOWN", f"{name}:{ref} was yanked; it is still available by digest")
    if not acceptable(",".join(request.headers.getlist("accept")), media_type):
        raise OciError("MANIFEST_UNKNOWN", f"manifest is {media_type}, which the Accept header does not allow")
    headers = {"Docker-Content-Digest": digest, "Content-Length": str(size), "Content-Type": media_type}
    if request.method == "HEAD":
        return Response(None, headers=headers)
    data = reg.manifests.get(digest)
    if data is None:  # a bucket read goes to a thread: a slow store must not stall the worker's other requests
        data = await run_in_threadpool(reg.manifest_bytes, digest) if reg.store.remote else reg.manifest_bytes(digest)
    if data is None:
        raise OciError("MANIFEST_UNKNOWN", f"manifest {digest} content is missing")
    return Response(data, headers=headers)


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise OciError("MANIFEST_INVALID", f"manifest is {declared} bytes; the limit is {limit}", status=413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise OciError("MANIFEST_INVALID", f"manifest is over the {limit}-byte limit", status=413)
    return bytes(body)


async def _put_manifest(reg: Registry, request: Request, principal: Principal, parts: dict[str, str]) -> Response:
    name, ref = parts["name"], parts["ref"]
    by_digest = _check_ref(ref)
    data = await read_limited(request, reg.settings.max_manifest_bytes)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if by_digest and ref != digest:
        raise OciError("DIGEST_INVALID", f"manifest body hashes to {digest}, not {ref}")
    doc, media_type = _parse_manifest(data, request.headers.get("content-type"))
    refs, subject, artifact_type = _references(doc, media_type)
    missing = await run_in_threadpool(_missing, reg, name, refs, media_type in INDEX_TYPES)
    if missing:
        raise OciError("MANIFEST_BLOB_UNKNOWN", f"manifest references {missing}, which is not in {name}",
                       detail={"digest": missing})
    raw_annotations = doc.get("annotations")
    annotations: dict[str, Any] = raw_annotations if isinstance(raw_annotations, dict) else {}
    row = ManifestRow(name, digest, media_type, len(data), artifact_type, subject, time.time(), principal.name,
                      {str(k): str(v) for k, v in annotations.items()})
    tags = _push_tags(request, ref, by_digest)
    await run_in_threadpool(reg.store.write_small, digest, data)
    try:
        await run_in_threadpool(reg.meta.put_manifest, row, refs, tags, request.client.host if request.client else None)
    except TagImmutable as exc:
        raise OciError("DENIED", str(exc), status=409) from None
    reg.manifests.put(digest, data)
    headers = {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": digest}
    if subject:
        headers["OCI-Subject"] = subject
    if by_digest and tags:
        headers["OCI-Tag"] = ", ".join(tags)
    return Response(None, 201, headers=headers)


def _push_tags(request: Request, ref: str, by_digest: bool) -> list[str]:
    """The tags a manifest PUT moves: its reference if that is a tag, else its ``?tag=`` parameters (OCI-Tag)."""
    if not by_digest:
        return [ref]
    tags = list(dict.fromkeys(request.query_params.getlist("tag")))
    if len(tags) > MAX_TAG_PARAMS:
        raise OciError("TAG_INVALID", f"{len(tags)} tag parameters; at most {MAX_TAG_PARAMS} a push", status=414)
    for tag in tags:
        if not valid_tag(tag):
            raise OciError("TAG_INVALID", f"invalid tag {tag[:200]!r}")
    return tags


def _parse_manifest(data: bytes, content_type: str | None) -> tuple[dict[str, Any], str]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise OciError("MANIFEST_INVALID", "manifest is not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        raise OciError("MANIFEST_INVALID", "manifest must be a JSON object with schemaVersion 2")
    # media types are case-insensitive in headers (RFC 9110); the body's mediaType is taken as written
    declared = content_type.split(";", 1)[0].strip().lower() if content_type else None
    body_type = doc.get("mediaType")
    if body_type is not None and declared and str(body_type).lower() != declared:
        raise OciError("MANIFEST_INVALID", f"Content-Type {declared} does not match mediaType {str(body_type)[:100]}")
    media_type = body_type or declared or ("application/vnd.oci.image.index.v1+json" if "manifests" in doc
                                           else "application/vnd.oci.image.manifest.v1+json")
    if media_type not in MANIFEST_TYPES:
        raise OciError("MANIFEST_INVALID", f"unsupported manifest media type {str(media_type)[:100]!r}")
    return doc, media_type


def _references(doc: dict[str, Any], media_type: str) -> tuple[list[str], str | None, str | None]:
    """Digests the manifest needs present, its subject digest and its artifact type."""
    if media_type in INDEX_TYPES:
        descs = doc.get("manifests")
        if not isinstance(descs, list):
            raise OciError("MANIFEST_INVALID", "index.manifests must be a list")
        items = [("manifests", i, d) for i, d in enumerate(descs)]
    else:
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise OciError("MANIFEST_INVALID", "manifest.layers must be a list")
        items = [("config", 0, doc.get("config"))] + [("layers", i, d) for i, d in enumerate(layers)]
    refs = [_descriptor_digest(d, f"{k}[{i}]") for k, i, d in items]
    subject = doc.get("subject")
    subject_digest = _descriptor_digest(subject, "subject") if subject is not None else None
    artifact_type = doc.get("artifactType")
    if not artifact_type and media_type not in INDEX_TYPES:  # empty or missing: the config's type (spec)
        artifact_type = doc["config"].get("mediaType")
    return refs, subject_digest, artifact_type if isinstance(artifact_type, str) and artifact_type else None


def _descriptor_digest(desc: Any, where: str) -> str:
    if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
        raise OciError("MANIFEST_INVALID", f"{where}: expected a descriptor with a digest")
    size = desc.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise OciError("MANIFEST_INVALID", f"{where}.size: expected a non-negative integer")
    problem = digest_problem(desc["digest"])
    if problem:
        raise OciError("DIGEST_INVALID", f"{where}: {problem}")
    return str(desc["digest"])


def _missing(reg: Registry, name: str, refs: list[str], index: bool) -> str | None:
    for ref in refs:
        present = reg.meta.manifest(name, ref) is not None if index else reg.meta.blob_in_repo(name, ref)
        if not present or not reg.store.has(ref):
            return ref
    return None


async def _delete_manifest(reg: Registry, request: Request, principal: Principal, parts: dict[str, str]) -> Response:
    name, ref = parts["name"], parts["ref"]
    if _check_ref(ref):
        done = await run_in_threadpool(reg.meta.delete_manifest, name, ref, principal.name)
        reg.manifests.drop(ref)
    else:
        done = await run_in_threadpool(reg.meta.delete_tag, name, ref, principal.name)
    if not done:
        raise OciError("MANIFEST_UNKNOWN", f"manifest {ref} is not in {name}")
    return Response(None, 202)


# -- listings ----------------------------------------------------------------------------------
def _page_size(request: Request) -> int | None:
    n = request.query_params.get("n")
    if n is None:
        return None
    if not n.isdigit():
        raise OciError("PAGINATION_NUMBER_INVALID", "n must be a non-negative integer", status=400)
    return min(int(n), MAX_PAGE)  # fewer than asked, with a Link to the rest, is what the spec allows


def _page(items: list[str], n: int | None, path: str, key: str, last_param: str) -> Response:
    headers = {}
    if n is not None and len(items) > n:
        items = items[:n]
        if items:
            headers["Link"] = f'<{path}?n={n}&last={quote(items[-1])}>; rel="next"'
    body = {key: items} if key == "repositories" else {"name": last_param, "tags": items}
    return Response(json.dumps(body), headers=headers, media_type="application/json")


async def _tags(reg: Registry, request: Request, principal: Principal, parts: dict[str, str]) -> Response:
    name = parts["name"]
    n = _page_size(request)
    if reg.meta.repo(name) is None:
        raise OciError("NAME_UNKNOWN", f"repository {name} is not known")
    rows = reg.meta.tags(name, request.query_params.get("last"), None if n is None else n + 1)
    return _page([r.tag for r in rows], n, f"/v2/{name}/tags/list", "tags", name)


async def _catalog(reg: Registry, request: Request, principal: Principal) -> Response:
    n = _page_size(request)
    last = request.query_params.get("last")
    names = [r.name for r in reg.meta.repos(last) if reg.auth.allowed(principal, "pull", r.name)]
    return _page(names if n is None else names[: n + 1], n, "/v2/_catalog", "repositories", "")


async def _referrers(reg: Registry, request: Request, principal: Principal, parts: dict[str, str]) -> Response:
    name, subject = parts["name"], parts["subject"]
    problem = digest_problem(subject)
    if problem:
        raise OciError("DIGEST_INVALID", problem)
    artifact_type = request.query_params.get("artifactType")
    rows = reg.meta.referrers(name, subject, artifact_type)
    body = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [_referrer(r) for r in rows]}
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type is not None else {}
    return Response(json.dumps(body), headers=headers, media_type="application/vnd.oci.image.index.v1+json")


def _referrer(row: ManifestRow) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": row.media_type, "digest": row.digest, "size": row.size}
    if row.artifact_type:
        out["artifactType"] = row.artifact_type
    if row.annotations:
        out["annotations"] = row.annotations
    return out
