"""An interrupted push resumes with enarx-pkg's own client (issue 14, defect 7).

The connection breaks halfway through a PATCH body: the registry keeps what arrived (the client went
away: one log line, no traceback), our client asks where the upload stands and sends only the rest.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import httpx

from enarx_pkg.oci import parse_registry
from enarx_pkg.oci.auth import Credential, static
from enarx_pkg.oci.transport import Settings
from enarx_pkg.publish import Target, publish
from enarx_pkg.pull import pull
from tests.transfer.conftest import make_package
from tests.transfer.faultproxy import Handler, ProxyServer

MIB = 1 << 20
HALF = 300_000
FAST = Settings(backoff=0.01, retries=3, upload_chunk=MIB, monolithic_limit=MIB)


def _half_then_cut(server: Any, patches: list[int]):  # type: ignore[no-untyped-def]
    def fault(h: Handler, method: str, path: str, body: bytes) -> bool:
        if method != "PATCH":
            return False
        patches.append(int(h.headers["Content-Range"].split("-")[0]))
        if len(patches) != 2:
            return False
        with socket.create_connection(("127.0.0.1", server.port)) as upstream:  # the registry sees half a body
            head = "".join(f"{k}: {v}\r\n" for k, v in h.headers.items() if k.lower() != "connection")
            upstream.sendall(f"PATCH {path} HTTP/1.1\r\n{head}\r\n".encode() + body[:HALF])
        for _ in range(200):  # the registry has kept the half before the client hears of the break
            status = httpx.get(server.url + path, headers={"Authorization": h.headers["Authorization"]})
            if status.headers.get("range") == f"0-{MIB + HALF - 1}":
                break
            time.sleep(0.02)
        h.reset()
        return True
    return fault


def test_a_push_cut_mid_chunk_resumes_where_the_bytes_stopped(registry_server: Any, tmp_path: Path) -> None:
    proxy = ProxyServer(registry_server.url).start()
    patches: list[int] = []
    proxy.fault = _half_then_cut(registry_server, patches)
    try:
        layout, dg = make_package(tmp_path / "pkg", note="cut-mid-chunk", extra=(3 << 20) + 7)
        creds = static(proxy.host, Credential("admin", registry_server.admin_token, "test"))
        publish(layout, Target(parse_registry(proxy.host), "resume/cut", "1"), credentials=creds, settings=FAST)
    finally:
        proxy.stop()
    assert patches[:3] == [0, MIB, MIB + HALF]  # resumed from the registry's offset, not from the chunk start
    got = pull(f"{registry_server.host}/resume/cut:1", tmp_path / "out",
               credentials=static(registry_server.host, Credential("admin", registry_server.admin_token, "test")))
    assert got.manifest_digest == dg
    log = (registry_server.data_dir / "server.log").read_text()
    assert "the client went away mid-request" in log and "Traceback" not in log
