"""Reference parsing: docker's default-registry rules, loopback plain HTTP, pinned digests."""

from __future__ import annotations

import pytest

from enarx_pkg.errors import InputError, UsageError
from enarx_pkg.oci import parse, parse_registry

DG = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "host", "repo", "tag", "digest", "scheme"),
    [
        ("127.0.0.1:5000/demo/hello:1.0", "127.0.0.1:5000", "demo/hello", "1.0", None, "http"),
        ("localhost:5000/hello", "localhost:5000", "hello", None, None, "http"),
        ("localhost/hello@" + DG, "localhost", "hello", None, DG, "http"),
        ("ghcr.io/enarx/app:v1@" + DG, "ghcr.io", "enarx/app", "v1", DG, "https"),
        ("alpine", "docker.io", "library/alpine", None, None, "https"),
        ("user/app:2", "docker.io", "user/app", "2", None, "https"),
        ("[::1]:5000/x", "[::1]:5000", "x", None, None, "http"),
    ],
)
def test_parse(text: str, host: str, repo: str, tag: str | None, digest: str | None, scheme: str) -> None:
    ref = parse(text)
    assert (ref.registry.host, ref.repository, ref.tag, ref.digest, ref.registry.scheme) == (
        host, repo, tag, digest, scheme)
    assert ref.reference == (digest or tag or "latest")


def test_docker_hub_api_host() -> None:
    assert parse("alpine").registry.base_url == "https://registry-1.docker.io"


def test_plain_http_override() -> None:
    assert parse("registry.example:5000/a", plain_http=True).registry.scheme == "http"
    assert parse("127.0.0.1:5000/a", plain_http=False).registry.scheme == "https"


def test_pinned_str_round_trip() -> None:
    ref = parse("127.0.0.1:5000/demo/hello:1.0").pinned(DG)
    assert str(ref) == f"127.0.0.1:5000/demo/hello:1.0@{DG}"
    assert parse(str(ref)) == ref


@pytest.mark.parametrize("bad", ["", "UPPER/case", "host:5000/a:bad tag", "a//b", "x@sha256:short",
                                 "h.io/a:" + "t" * 200])
def test_rejects(bad: str) -> None:
    with pytest.raises((UsageError, InputError)):
        parse(bad)


def test_registry_urls() -> None:
    assert parse_registry("http://reg.example:8080").base_url == "http://reg.example:8080"
    assert parse_registry("127.0.0.1:5000").scheme == "http"
    assert parse_registry("reg.example").scheme == "https"
    with pytest.raises(UsageError):
        parse_registry("ftp://x")
    with pytest.raises(UsageError):
        parse_registry("user:pw@host")
