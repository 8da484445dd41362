"""Signature referrers on a registry: find them and attach them, by the OCI 1.1 referrers API or,
where a registry lacks it, the referrers tag schema (an image index tagged ``sha256-<hex>``).

What either route returns is an untrusted hint: callers fetch each referrer by digest and check
that its ``subject`` really is the package before using it.
"""

from __future__ import annotations

from collections.abc import Sequence

from enarx_pkg._internal import canonical
from enarx_pkg.errors import NotFoundError, VerificationError
from enarx_pkg.oci.client import Client, parse_index
from enarx_pkg.package import MEDIA_INDEX, Descriptor


def tag_for(subject: str) -> str:
    """The referrers tag schema's tag for ``subject`` (``sha256-<hex>``)."""
    return "sha256-" + subject.split(":", 1)[1]


def find_referrers(client: Client, repo: str, subject: str) -> list[Descriptor]:
    """Referrers of ``subject``: the OCI 1.1 API, or else the tag schema's index."""
    found = client.referrers(repo, subject)
    if found is not None:
        return found
    existing = _tag_index(client, repo, subject)
    return existing if existing is not None else []


def merge_tag_index(client: Client, repo: str, subject: str, refs: Sequence[Descriptor]) -> None:
    """Add ``refs`` to the tag schema's index of ``subject``, keeping the entries already there."""
    existing = _tag_index(client, repo, subject) or []
    have = {d.digest for d in existing}
    merged = existing + [r for r in refs if r.digest not in have]
    if len(merged) == len(existing):
        return
    index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [d.to_json() for d in merged]}
    client.put_manifest(repo, tag_for(subject), canonical.dumps(index), MEDIA_INDEX)


def _tag_index(client: Client, repo: str, subject: str) -> list[Descriptor] | None:
    tag = tag_for(subject)
    try:
        fetched = client.fetch_manifest(repo, tag)
    except NotFoundError:
        return None
    if fetched.media_type != MEDIA_INDEX:
        raise VerificationError(f"{repo}:{tag} (the referrers tag of {subject}) is not an image index")
    return parse_index(fetched.data, f"referrers tag index {repo}:{tag}")
