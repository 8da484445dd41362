"""The data behind the web pages and the JSON API: repositories, versions, layers, signatures.

Pure reads over :class:`registry.state.Registry`; the HTML and JSON layers only render these.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from enarx_pkg.package import ENCRYPTED_SUFFIX, MEDIA_ENARX_CONFIG, MEDIA_SIGSTORE_BUNDLE
from registry import signatures
from registry.auth import Principal
from registry.names import DIGEST_RE, valid_name, valid_tag
from registry.state import Registry

T = TypeVar("T")


async def run(reg: Registry, fn: Callable[..., T], principal: Principal, request: Any) -> T:
    """A page or API view: on a worker thread when the store is remote (a bucket read blocks), inline otherwise."""
    if reg.store.remote:
        return await run_in_threadpool(fn, reg, principal, request)
    return fn(reg, principal, request)


class NotVisible(Exception):
    """No such repository or version, or the caller may not pull it (the two look the same)."""


PAGE_SIZE = 100  # versions per repository page (HTML and JSON)


class BadRequest(ValueError):
    """A query parameter that is not what the API documents (a junk boolean, page 0)."""


def repo_summary(reg: Registry, row: Any) -> dict[str, Any]:
    count, newest = reg.meta.recent_tags(row.name, 0, 1)
    latest = newest[0] if newest else None
    return {"name": row.name, "description": row.description, "license": row.license,
            "versions": count, "updated": _iso(latest.updated) if latest else _iso(row.created),
            "latest": latest.tag if latest else None}


def search(reg: Registry, principal: Principal, query: str | None, limit: int = 50) -> list[dict[str, Any]]:
    rows = reg.meta.repos(query=(query or "").strip()[:100] or None)
    visible = [r for r in rows if reg.auth.allowed(principal, "pull", r.name)]
    return [repo_summary(reg, r) for r in visible[:limit]]


def repository(reg: Registry, principal: Principal, name: str, include_yanked: bool = False,
               page: int = 1) -> dict[str, Any]:
    """A repository and one page of its versions, newest first (``page`` counts from 1)."""
    row = reg.meta.repo(name) if valid_name(name) else None
    if row is None or not reg.auth.allowed(principal, "pull", name):
        raise NotVisible(name)
    out = repo_summary(reg, row)
    out["allow_overwrite"] = row.allow_overwrite
    total, tags = reg.meta.recent_tags(name, (page - 1) * PAGE_SIZE, PAGE_SIZE, include_yanked)
    out["tags"] = [{"tag": t.tag, "digest": t.digest, "pushed_by": t.pushed_by, "pushed_at": _iso(t.updated),
                    "yanked": t.yanked} for t in tags]
    out["page"], out["pages"] = page, max(1, -(-total // PAGE_SIZE))
    return out


def page_number(value: str | None) -> int:
    if value is None:
        return 1
    if not value.isdigit() or not 1 <= int(value) <= 1_000_000:
        raise BadRequest("page must be a whole number from 1")
    return int(value)


def flag(value: str | None, name: str) -> bool:
    if value is None:
        return False
    if value.lower() not in ("true", "false", "1", "0"):
        raise BadRequest(f"{name} must be true or false")
    return value.lower() in ("true", "1")


@dataclass
class Version:
    repository: str
    reference: str
    digest: str
    media_type: str
    size: int
    tags: list[str]
    yanked: bool
    pushed_by: str | None
    pushed_at: str
    annotations: dict[str, str]
    layers: list[dict[str, Any]] = field(default_factory=list)
    encrypted: bool = False
    enarx_toml: str | None = None
    signatures: list[signatures.Signature] = field(default_factory=list)
    created: str = "unknown"  # the package's own creation time; "unknown" when absent or the epoch

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "signatures"}
        out["signatures"] = [s.to_json() for s in self.signatures]
        return out

    def deploy_line(self, host: str) -> str:
        """A command that works when pasted, once the placeholders in capitals name the user's files."""
        line = f"enarx-pkg deploy {host}/{self.repository}@{self.digest} --host http://127.0.0.1:8470 " \
               "--policy POLICY.toml"
        if self.encrypted:
            line += " --decryption-key DECRYPTION-KEY.pem"
        keyless = [s for s in self.signatures if s.verified and s.kind == "keyless"]
        if keyless:
            line += f" --certificate-identity '{keyless[0].signer}' --certificate-oidc-issuer '{keyless[0].issuer}'"
        elif any(s.kind == "key" for s in self.signatures):
            line += " --key SIGNER.pub"
        return line


def version(reg: Registry, principal: Principal, name: str, ref: str, with_signatures: bool = True) -> Version:
    if not valid_name(name) or not reg.auth.allowed(principal, "pull", name):
        raise NotVisible(name)
    by_digest = bool(DIGEST_RE.match(ref))
    if not by_digest and not valid_tag(ref):
        raise NotVisible(ref)
    found = reg.meta.resolve(name, ref, by_digest)
    row = reg.meta.manifest(name, found[0]) if found else None
    data = reg.manifest_bytes(found[0]) if found else None
    if found is None or row is None or data is None:
        raise NotVisible(ref)
    tags = reg.meta.tags_of(name, row.digest)
    doc = json.loads(data)
    v = Version(name, ref, row.digest, row.media_type, row.size, [t.tag for t in tags if not t.yanked],
                any(t.yanked for t in tags), row.pushed_by, _iso(row.created), row.annotations)
    created = row.annotations.get("org.opencontainers.image.created", "")
    v.created = "unknown" if not created or created.startswith("1970-01-01") else created
    _fill_layers(reg, v, doc)
    if with_signatures:
        v.signatures = signatures_of(reg, name, row.digest)
    return v


def _fill_layers(reg: Registry, v: Version, doc: dict[str, Any]) -> None:
    for i, layer in enumerate(doc.get("layers") or doc.get("manifests") or []):
        if not isinstance(layer, dict):
            continue
        mt = str(layer.get("mediaType", ""))
        raw_ann = layer.get("annotations")
        ann: dict[str, Any] = raw_ann if isinstance(raw_ann, dict) else {}
        v.layers.append({"index": i, "media_type": mt, "digest": layer.get("digest"), "size": layer.get("size"),
                         "title": ann.get("org.opencontainers.image.title"),
                         "encrypted": mt.endswith(ENCRYPTED_SUFFIX)})
        if mt.endswith(ENCRYPTED_SUFFIX):
            v.encrypted = True
        elif mt == MEDIA_ENARX_CONFIG and isinstance(layer.get("digest"), str) and DIGEST_RE.match(layer["digest"]):
            raw = reg.store.read(layer["digest"], reg.settings.max_bundle_bytes)
            v.enarx_toml = raw.decode("utf-8", "replace") if raw is not None else None


def signatures_of(reg: Registry, name: str, subject: str) -> list[signatures.Signature]:
    out = []
    for ref in reg.meta.referrers(name, subject, MEDIA_SIGSTORE_BUNDLE):
        cached = reg.signatures.get(ref.digest)
        if cached is None:
            cached = _inspect(reg, ref.digest, subject)
            reg.signatures.put(ref.digest, cached)
        out.append(cached)
    return out


def _inspect(reg: Registry, referrer: str, subject: str) -> signatures.Signature:
    data = reg.manifest_bytes(referrer)
    try:
        layers = json.loads(data or b"{}").get("layers") or []
        bundle_digest = next(lay["digest"] for lay in layers if lay.get("mediaType") == MEDIA_SIGSTORE_BUNDLE)
    except (ValueError, StopIteration, AttributeError, TypeError, KeyError):
        return signatures.Signature(referrer, "unknown", "no bundle layer", None, False, "not verified: no bundle")
    raw = reg.store.read(bundle_digest, reg.settings.max_bundle_bytes) if DIGEST_RE.match(str(bundle_digest)) else None
    if raw is None:
        return signatures.Signature(referrer, "unknown", "bundle missing", None, False, "not verified: bundle missing")
    return signatures.inspect(referrer, raw, subject, reg.trust)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
