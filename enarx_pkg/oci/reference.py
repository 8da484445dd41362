"""Image references: ``[registry/]repository[:tag][@sha256:...]`` and registry endpoints.

The rules follow docker/distribution's reference grammar, which skopeo, oras and cosign share:
the first path component names a registry only when it contains a ``.`` or a ``:`` or is
``localhost``; otherwise the registry is Docker Hub (``docker.io``, single names under ``library/``).
Loopback registries speak plain HTTP by default (as every local ``docker-registry`` does); every
other host needs HTTPS unless the caller explicitly asks for plain HTTP.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from enarx_pkg._internal import digest as _digest
from enarx_pkg.errors import UsageError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HOST = re.compile(r"^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?$")
MAX_REFERENCE = 4096


def service_url(text: str, what: str) -> str:
    """A server URL as given, or ``HOST:PORT`` without a scheme: plain HTTP for loopback, else refused.

    Guessing https for a remote host would fail later with a TLS error far from the cause; guessing
    http would send a host token in clear. So only loopback gets a default, as for registries.
    """
    if "://" in text:
        return text.rstrip("/")
    if is_loopback(text.split("/", 1)[0]):
        return "http://" + text.rstrip("/")
    from enarx_pkg.errors import UsageError

    raise UsageError(f"{what} {text!r} has no scheme", hint=f"write https://{text} (http:// only on loopback)")


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1`` (with or without a port)."""
    name = _strip_port(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host[: host.index("]") + 1]
    return host.rsplit(":", 1)[0] if ":" in host else host


@dataclass(frozen=True)
class Registry:
    """A registry endpoint: the host as written in references, and the scheme to reach it."""

    host: str
    scheme: str = "https"

    @property
    def base_url(self) -> str:
        api = DOCKER_HUB_API if self.host == DOCKER_HUB else self.host
        return f"{self.scheme}://{api}"

    def __str__(self) -> str:
        return self.host


def default_scheme(host: str, plain_http: bool | None = None) -> str:
    """``http`` for loopback hosts or when asked for, ``https`` otherwise."""
    if plain_http is not None:
        return "http" if plain_http else "https"
    return "http" if is_loopback(host) else "https"


def parse_registry(text: str, *, plain_http: bool | None = None) -> Registry:
    """Parse ``host[:port]`` or ``http(s)://host[:port]`` (an explicit scheme wins)."""
    text = text.strip()
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
            raise UsageError(f"invalid registry {text!r}: expected host[:port] or http(s)://host[:port]")
        return Registry(_check_host(parts.netloc, text), parts.scheme)
    host = _check_host(text.rstrip("/"), text)
    return Registry(host, default_scheme(host, plain_http))


def _check_host(host: str, original: str) -> str:
    if "@" in host or not _HOST.match(host):
        raise UsageError(f"invalid registry host in {original!r}")
    return DOCKER_HUB if host in ("index.docker.io", DOCKER_HUB_API) else host.lower()


@dataclass(frozen=True)
class Reference:
    """A parsed reference; ``digest`` pins it, ``tag`` is only a name for humans once pinned."""

    registry: Registry
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest when pinned, else the tag (default ``latest``)."""
        return self.digest or self.tag or "latest"

    def pinned(self, dg: str) -> Reference:
        return replace(self, digest=dg)

    def with_tag(self, tag: str | None) -> Reference:
        return replace(self, tag=tag)

    def __str__(self) -> str:
        out = f"{self.registry.host}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse(text: str, *, plain_http: bool | None = None) -> Reference:
    """Parse a reference; raises :class:`UsageError` naming the part that is wrong."""
    if not text or len(text) > MAX_REFERENCE:
        raise UsageError("empty or over-long image reference")
    name, dg = text, None
    if "@" in text:
        name, dg = text.split("@", 1)
        _digest.parse(dg)
    host, rest = _split_registry(name)
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        if not _TAG.match(tag):
            raise UsageError(f"invalid tag {tag!r} in reference {text!r}")
    if host == DOCKER_HUB and "/" not in rest:
        rest = f"library/{rest}"
    check_repository(rest, text)
    registry = Registry(_check_host(host, text), default_scheme(host, plain_http))
    return Reference(registry, rest, tag, dg)


def _split_registry(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        return first, rest
    return DOCKER_HUB, name


def check_repository(name: str, where: str | None = None) -> str:
    """Validate a repository name (lowercase path components, as the distribution spec requires)."""
    if len(name) > 255 or not _REPOSITORY.match(name):
        suffix = f" in {where!r}" if where and where != name else ""
        raise UsageError(
            f"invalid repository name {name!r}{suffix}",
            hint="use lowercase letters, digits and separators (. _ -), with / between components",
        )
    return name


def check_tag(tag: str) -> str:
    if not _TAG.match(tag):
        raise UsageError(f"invalid tag {tag!r}: up to 128 of [A-Za-z0-9_.-], not starting with . or -")
    return tag
