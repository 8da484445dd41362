"""A hostile registry or token service streams an endless body: the client stops at its limit and says so.

Before, the token response and registry error bodies were read whole (``.content``) before any size
check, so a peer could make the client buffer without bound.
"""

from __future__ import annotations

import pytest

from enarx_pkg.errors import NotFoundError, TransportError
from enarx_pkg.oci.auth import AuthError
from enarx_pkg.oci.client import Client
from enarx_pkg.oci.transport import Settings
from tests.security.hostile import endless

pytestmark = pytest.mark.timeout(60)
FAST = Settings(retries=0, timeout=10)


def test_endless_token_response_is_refused() -> None:
    challenge = {"WWW-Authenticate": 'Bearer realm="http://127.0.0.1:{port}/token",service="x"'}
    with endless({"/v2/a/b/manifests/1": (401, challenge), "/token": (200, {})}) as (host, sent):
        with Client(host, settings=FAST) as c, pytest.raises(TransportError, match=r"token service .* failed"):
            c.fetch_manifest("a/b", "1")
    assert max(sent) < 64  # MiB: the client hung up near the 1 MiB limit


def test_endless_error_body_is_not_buffered() -> None:
    with endless({"/v2/a/b/manifests/1": (404, {"Content-Type": "application/json"})}) as (host, sent):
        with Client(host, settings=FAST) as c, pytest.raises(NotFoundError, match="a/b/manifests/1"):
            c.fetch_manifest("a/b", "1")
    assert max(sent) < 64


def test_endless_challenge_body_is_not_buffered() -> None:
    with endless({"/v2/a/b/manifests/1": (401, {"WWW-Authenticate": 'Basic realm="x"'})}) as (host, sent):
        with Client(host, settings=FAST) as c, pytest.raises(AuthError, match="anonymous access"):
            c.fetch_manifest("a/b", "1")
    assert max(sent) < 64


def test_endless_collateral_download_is_refused(tmp_path) -> None:
    from enarx_pkg.attestation.fetch import Download, download

    with endless({"/vcek": (200, {})}) as (host, sent):
        with pytest.raises(TransportError, match="collateral response too large"):
            download([Download(f"http://{host}/vcek", "vcek.der")], tmp_path)
    assert max(sent) < 128 and not (tmp_path / "vcek.der").exists()
