"""The shared access log (``enarx_pkg.accesslog``) on the host agent, the registry's sibling server."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import REPO, free_port


def _agent(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port, log = free_port(), tmp_path / "agent.out"
    proc = subprocess.Popen([sys.executable, "-m", "enarx_pkg", "host", "serve", "--backend", "sim", "--pool", "0",
                             "--listen", f"127.0.0.1:{port}", "--data", str(tmp_path / "host"), *extra],
                            cwd=REPO, stdout=log.open("wb"), stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(url + "/v1/platform", timeout=2)
            return proc, url, log
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("host agent did not start")


def test_host_agent_logs_each_request_without_its_token(tmp_path):
    proc, url, log = _agent(tmp_path, "--access-log", "combined")
    try:
        token = (tmp_path / "host" / "agent-token").read_text().strip()
        assert httpx.get(url + "/v1/platform", headers={"Authorization": f"Bearer {token}",
                                                         "User-Agent": "deployer/1"}, timeout=60).status_code == 200
        time.sleep(0.3)
    finally:
        proc.terminate()
        proc.wait(20)
    text = log.read_text()
    assert re.search(r'127\.0\.0\.1 - - \[[^\]]+\] "GET /v1/platform HTTP/1\.1" 401 \d+ "-" "python-httpx/', text)
    assert re.search(r'"GET /v1/platform HTTP/1\.1" 200 \d+ "-" "deployer/1"', text)
    assert token not in text


def test_host_agent_access_log_off_and_bad_format(tmp_path):
    from enarx_pkg._cli.main import main

    assert main(["host", "serve", "--backend", "sim", "--data", str(tmp_path / "x"), "--access-log", "json"]) == 2
    proc, url, log = _agent(tmp_path, "--access-log", "off")
    try:
        httpx.get(url + "/v1/platform", timeout=60)
        time.sleep(0.3)
    finally:
        proc.terminate()
        proc.wait(20)
    assert "/v1/platform" not in log.read_text()
