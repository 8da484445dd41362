"""A build runs third-party code; enarx-pkg's own credentials in the environment are not passed to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from enarx_pkg.build import build
from tests.build.helpers import WASI_START, wasm

SECRETS = {"ENARX_PKG_REGISTRY_TOKEN": "tok-7c1e", "ENARX_PKG_REGISTRY_PASSWORD": "pw-91aa",
           "ENARX_PKG_KEY_PASSWORD": "kp-33d0", "SIGSTORE_ID_TOKEN": "oidc-5e2f"}


def test_build_command_does_not_see_our_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("UNRELATED_VAR", "still-here")
    project = tmp_path / "p"
    project.mkdir()
    (project / "in.wasm").write_bytes(wasm(f"(module {WASI_START} (func (export \"_start\")))"))
    (project / "Enarx.toml").write_text(
        '[package]\nname = "t"\nversion = "1.0.0"\n\n'
        '[build]\ncommand = ["sh", "-c", "env > seen-env.txt && cp in.wasm out.wasm"]\noutput = "out.wasm"\n')
    build(project, tmp_path / "oci")
    seen = (project / "seen-env.txt").read_text()
    assert "UNRELATED_VAR=still-here" in seen
    for k, v in SECRETS.items():
        assert k not in seen and v not in seen
