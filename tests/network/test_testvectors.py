"""Every real Enarx.toml in the test vectors validates and builds, packaged with the Rust HTTP server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from enarx_pkg import manifest
from enarx_pkg.build import build
from enarx_pkg.package import MEDIA_ENARX_CONFIG, Layout
from tests.conftest import REPO, TESTVECTORS

VECTORS = sorted((TESTVECTORS / "enarx-toml").glob("*.toml")) if TESTVECTORS.is_dir() else []
PACKAGING = '\n[package]\nname = "vector"\nversion = "1.0.0"\n\n[build]\nrecipe = "prebuilt"\noutput = "server.wasm"\n'


@pytest.mark.parametrize("vector", VECTORS, ids=[p.stem for p in VECTORS])
def test_real_enarx_toml_validates_and_builds(vector: Path, tmp_path: Path, testvectors: Path,
                                              http_module: Callable[[str], Path]) -> None:
    project = tmp_path / vector.stem
    project.mkdir()
    shutil.copyfile(http_module("rust"), project / "server.wasm")
    (project / "Enarx.toml").write_text(vector.read_text() + "\n" + PACKAGING)
    checked = subprocess.run([sys.executable, "-m", "enarx_pkg", "validate", str(project)], cwd=REPO,
                             capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stderr
    declared = manifest.load(project)
    layout = Layout.open(build(project).layout)
    image = layout.manifest(layout.resolve(None).digest)
    toml = next(d for d in image.layers if d.media_type == MEDIA_ENARX_CONFIG)
    packaged = manifest.loads(layout.read_blob(toml.digest, 1 << 20), "layer")
    assert packaged.files == declared.files and packaged.fd_names == declared.fd_names
    if any(f.kind == "listen" for f in declared.files):  # a service: no time limit unless it sets one
        assert packaged.keep.time_limit_s is None


def test_most_vectors_are_network_services() -> None:
    if not VECTORS:
        pytest.skip("test vectors not found")
    services = [p.stem for p in VECTORS if manifest.load(p).socket_files]
    assert len(services) >= 8, services
