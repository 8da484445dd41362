"""Publish to and pull from the enarx-pkg registry (its Bearer token flow, referrers API, resumable uploads)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enarx_pkg.oci import parse_registry
from enarx_pkg.oci.auth import AuthError, Credential, static
from enarx_pkg.oci.transport import Settings
from enarx_pkg.publish import Target, publish
from enarx_pkg.pull import pull
from tests.transfer.conftest import add_signature, make_package
from tests.transfer.faultproxy import Handler, ProxyServer

FAST = Settings(backoff=0.01, retries=3, upload_chunk=1 << 20, monolithic_limit=1 << 20)


def _creds(server: Any, host: str | None = None) -> Any:
    return static(host or server.host, Credential("admin", server.admin_token, "test"))


def test_round_trip_uses_the_referrers_api(registry_server: Any, tmp_path: Path) -> None:
    layout, dg = make_package(tmp_path / "pkg", note="ours")
    first = add_signature(layout, dg, "alice")
    second = add_signature(layout, dg, "bob")
    res = publish(layout, Target(parse_registry(registry_server.host), "ours/hello", "1.0.0"),
                  credentials=_creds(registry_server))
    assert res.referrers_via == "api" and set(res.referrers) == {first, second}
    got = pull(f"{registry_server.host}/ours/hello:1.0.0", tmp_path / "out", credentials=_creds(registry_server))
    assert got.manifest_digest == dg and set(got.referrers) == {first, second}
    assert {d.digest for d in got.layout.referrers(dg)} == {first, second}


def test_wrong_token_is_refused_without_echoing_it(registry_server: Any, tmp_path: Path) -> None:
    bad = static(registry_server.host, Credential("admin", "ep_not-a-real-token-9f8e7d", "test"))
    layout, _ = make_package(tmp_path / "pkg", note="bad-token")
    with pytest.raises(AuthError) as exc:
        publish(layout, Target(parse_registry(registry_server.host), "ours/denied", "1"), credentials=bad)
    assert registry_server.host in exc.value.diagnostics()
    assert "not-a-real-token" not in exc.value.diagnostics()


def test_push_scoped_token_publishes_and_pulls_through_the_token_flow(registry_server: Any, tmp_path: Path) -> None:
    # a CI token that may only push to team/*: the client starts with a pull-scoped bearer token and must
    # be sent back to /token for push (regression: it used to be refused with 403 DENIED)
    creds = static(registry_server.host, Credential("ci", registry_server.token("push:team/*"), "test"))
    layout, dg = make_package(tmp_path / "pkg", note="scoped")
    res = publish(layout, Target(parse_registry(registry_server.host), "team/app", "2.0.0"), credentials=creds)
    assert str(res.reference).endswith(dg)
    assert pull(f"{registry_server.host}/team/app:2.0.0", tmp_path / "out", credentials=creds).manifest_digest == dg
    with pytest.raises(AuthError):
        publish(layout, Target(parse_registry(registry_server.host), "other/app", "2.0.0"), credentials=creds)


@pytest.fixture
def ours_proxy(registry_server: Any) -> Iterator[ProxyServer]:
    p = ProxyServer(registry_server.url).start()
    yield p
    p.stop()


def test_upload_resumes_at_the_registry_offset_after_a_lost_answer(registry_server: Any, ours_proxy: ProxyServer,
                                                                   tmp_path: Path) -> None:
    layout, dg = make_package(tmp_path / "pkg", note="ours-resume", extra=(4 << 20) + 99)
    patches: list[int] = []

    def lose_answer(h: Handler, method: str, path: str, body: bytes) -> bool:
        if method != "PATCH":
            return False
        patches.append(int(h.headers["Content-Range"].split("-")[0]))
        if len(patches) == 2:  # the registry stores the chunk; the client never hears back
            h.forward(body)
            h.reset()
            return True
        return False
    ours_proxy.fault = lose_answer
    publish(layout, Target(parse_registry(ours_proxy.host), "ours/resume", "1"),
            credentials=_creds(registry_server, ours_proxy.host), settings=FAST)
    mib = 1 << 20
    assert patches == [0, mib, 2 * mib, 3 * mib, 4 * mib]  # went on from the registry's offset, nothing resent
    got = pull(f"{registry_server.host}/ours/resume:1", tmp_path / "out", credentials=_creds(registry_server))
    assert got.manifest_digest == dg


def test_a_taken_version_tag_is_refused_with_the_registry_advice_in_full(registry_server: Any, tmp_path: Path) -> None:
    """Version tags are immutable on our registry; its 409 names the admin command, which must reach the user."""
    from enarx_pkg.oci.transport import TransportError

    first, _ = make_package(tmp_path / "one", note="first")
    second, _ = make_package(tmp_path / "two", note="second")
    target = Target(parse_registry(registry_server.host), "ours/immutable", "1.0.0")
    publish(first, target, credentials=_creds(registry_server))
    with pytest.raises(TransportError) as exc:
        publish(second, target, credentials=_creds(registry_server))
    text = exc.value.diagnostics()
    assert "ours/immutable:1.0.0 already points to sha256:" in text and "HTTP 409" in text
    assert "'enarx-pkg registry repo ours/immutable --allow-overwrite')" in text  # not cut short
