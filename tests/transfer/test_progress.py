"""Progress bars name blobs by their title (`m.wasm`, `Enarx.toml`), or by what they are, never a bare digest.

The library test records the labels publish and pull report; the CLI test runs `enarx-pkg pull` with
its stderr on a pseudo-terminal (as a person watching would) and reads what rich drew there.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from enarx_pkg import keys
from enarx_pkg.build import build
from enarx_pkg.oci.reference import parse_registry
from enarx_pkg.package import Layout
from enarx_pkg.publish import Target, publish
from enarx_pkg.pull import pull
from enarx_pkg.sign import sign_layout
from tests.build.helpers import wat_project
from tests.conftest import REPO


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    tmp = tmp_path_factory.mktemp("progress")
    built = build(wat_project(tmp / "hello", '(func (export "_start"))', name="hello"))
    pair = keys.generate(tmp / "signer", password_env=None)
    layout = Layout.open(built.layout)
    sign_layout(layout, built.tag, key=keys.load_private(pair.private_path, password_env=None))
    return layout


def _recorder(labels: list[str]) -> Callable[[str, int], Callable[[int], None]]:
    def factory(label: str, total: int) -> Callable[[int], None]:
        labels.append(label)
        return lambda done: None
    return factory


def test_publish_and_pull_report_blob_titles(package: Layout, docker_registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pushed: list[str] = []
    publish(package, Target(parse_registry(docker_registry.host), "progress/titles", "1.0.0"),
            progress=_recorder(pushed))
    pulled: list[str] = []
    pull(f"{docker_registry.host}/progress/titles:1.0.0", tmp_path / "out", progress=_recorder(pulled))
    for labels in (pushed, pulled):
        assert {"m.wasm", "Enarx.toml"} <= set(labels), labels
        assert any(label.startswith("config ") for label in labels), labels
        assert "bundle.sigstore.json" in labels, labels  # the signature referrer's layer
        assert all(" " in label or "." in label for label in labels), labels  # never a bare digest prefix


def test_cli_pull_draws_bars_named_by_title(package: Layout, docker_registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    publish(package, Target(parse_registry(docker_registry.host), "progress/cli", "1.0.0"))
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"COLUMNS": "120", "TERM": "xterm"}
    try:
        proc = subprocess.run([sys.executable, "-m", "enarx_pkg", "pull", f"{docker_registry.host}/progress/cli:1.0.0",
                               "-o", str(tmp_path / "out")], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=follower, timeout=120)
    finally:
        os.close(follower)
    drawn = _drain(leader)
    assert proc.returncode == 0, drawn
    assert b"m.wasm" in drawn and b"Enarx.toml" in drawn, drawn


def _drain(fd: int) -> bytes:
    """Everything written to the terminal (the child has exited; EIO marks the end)."""
    out = bytearray()
    try:
        while chunk := os.read(fd, 65536):
            out += chunk
    except OSError:
        pass
    finally:
        os.close(fd)
    return bytes(out)
