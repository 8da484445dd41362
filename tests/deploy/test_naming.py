"""`deploy` names what it needs: a published package (not a local project) and a host URL
(HOST:PORT without a scheme is plain HTTP only on loopback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from enarx_pkg import keys
from enarx_pkg._cli.main import main
from enarx_pkg.errors import UsageError
from enarx_pkg.oci.reference import service_url
from tests.build.helpers import wat_project
from tests.deploy.conftest import MARKER, SECRET


def test_deploy_of_a_local_project_says_publish_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = wat_project(tmp_path / "proj", '(func (export "_start"))')
    keys.generate(tmp_path / "k", password_env=None)
    code = main(["deploy", str(root), "--host", "http://127.0.0.1:9", "--policy", str(tmp_path / "p.toml"),
                 "--key", str(tmp_path / "k.pub")])
    err = capsys.readouterr().err
    assert code == 2 and "needs a published package" in err and "local project" in err
    assert f"enarx-pkg publish {root}" in err and "docker.io" not in err


@pytest.mark.parametrize("form", ["proj:0.1.0", "proj", "proj/target/oci:0.1.0"])
def test_deploy_of_a_local_name_with_a_tag_is_not_sent_to_docker_hub(tmp_path: Path, form: str,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`deploy hello:0.1.0` beside the project `hello` names it as run/sign/publish would, not docker.io's hello."""
    root = wat_project(tmp_path / "proj", '(func (export "_start"))')
    assert main(["build", str(root)]) == 0
    keys.generate(tmp_path / "k", password_env=None)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    code = main(["deploy", form, "--host", "http://127.0.0.1:9", "--policy", "p.toml", "--key", "k.pub"])
    err = capsys.readouterr().err
    assert code == 2 and f"needs a published package; {form} is a local" in err, err
    assert "docker.io" not in err


def test_host_without_scheme_is_http_on_loopback_and_refused_elsewhere() -> None:
    assert service_url("127.0.0.1:5077", "--host") == "http://127.0.0.1:5077"
    assert service_url("localhost:5077/", "--host") == "http://localhost:5077"
    assert service_url("https://host.example:5077", "--host") == "https://host.example:5077"
    with pytest.raises(UsageError) as info:
        service_url("host.example:5077", "--host")
    assert "no scheme" in info.value.message and "https://host.example:5077" in (info.value.hint or "")


def test_deploy_reaches_a_host_given_without_scheme(published: Any, sim_host: Any, policy_for: Any,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    bare = sim_host.url.removeprefix("http://")
    code = main(["deploy", published.plain, "--host", bare, "--host-token-file", str(sim_host.token_file),
                 "--policy", str(policy_for(sim_host)), "--key", str(published.signer_pub), "--insecure-sim",
                 "--", "x", "y", "z"])
    out, err = capfdbinary.readouterr()
    assert code == 3 and MARKER in out, err
