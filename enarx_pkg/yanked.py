"""Is the version ``deploy`` was asked for yanked? Asked of registries that can say so, before any host.

enarx-pkg's registry answers ``GET /api/v1/repositories/NAME/-/versions/REF`` with the version's
digest and ``"yanked": true|false`` (and hides yanked tags from pulls by tag). Other OCI registries
(CNCF distribution, ...) have no such API: a 404, a non-JSON answer or no answer at all means "this
registry does not tell", and deploy goes on. Yanking is the publisher's advice, not a trust
boundary: the signature and the attestation are checked whatever the answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from enarx_pkg.errors import VerificationError

API_PATH = "/api/v1/repositories/{repository}/-/versions/{reference}"
MAX_ANSWER_BYTES = 4 << 20
TIMEOUT_S = 10.0
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class YankedError(VerificationError):
    """The registry says the version was yanked by its publisher (exit 77, like other refusals)."""


@dataclass(frozen=True)
class VersionStatus:
    """What the registry's JSON API says about one version."""

    digest: str | None
    yanked: bool


def parse_answer(status: int, body: bytes) -> VersionStatus | None:
    """The registry's answer, or None when it does not speak this API (pure; no I/O)."""
    if status != 200:
        return None
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("yanked"), bool):
        return None
    digest = obj.get("digest")
    return VersionStatus(digest if isinstance(digest, str) and _DIGEST.match(digest) else None, obj["yanked"])


def lookup(ref: Any, credential: Any = None) -> VersionStatus | None:
    """Ask ``ref``'s registry (an ``oci.reference.Reference``) about it; None if it cannot tell."""
    import httpx

    url = ref.registry.base_url + API_PATH.format(repository=ref.repository, reference=ref.reference)
    auth = httpx.BasicAuth(credential.username, credential.password) if credential is not None else None
    try:
        with httpx.stream("GET", url, auth=auth, timeout=TIMEOUT_S, follow_redirects=False) as r:
            body = bytearray()
            for chunk in r.iter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    return None
            return parse_answer(r.status_code, bytes(body))
    except httpx.HTTPError:
        return None  # the pull that follows reports an unreachable registry properly


def refuse(ref: Any, status: VersionStatus) -> YankedError:
    """The refusal for a yanked version: names it and says how to deploy it anyway."""
    pinned = f" ({status.digest})" if status.digest and status.digest != ref.digest else ""
    return YankedError(f"{ref}{pinned} is yanked: its registry marks this version as withdrawn by its publisher",
                       hint="deploy it anyway (for example to roll back) with --allow-yanked")
