"""`verify` names the source revision a package was built from, even from a checkout with no origin URL,
and says when the checkout had uncommitted changes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from enarx_pkg import keys
from enarx_pkg._cli.main import main
from tests.build.helpers import wat_project

GIT = ["git", "-c", "user.email=dev@example.com", "-c", "user.name=dev", "-c", "commit.gpgsign=false"]


@pytest.fixture()
def repo(tmp_path: Path) -> tuple[Path, str, Path]:
    """A project committed in a fresh git repository without a remote: (project, HEAD, public key)."""
    project = wat_project(tmp_path / "hello", '(func (export "_start"))')
    subprocess.run([*GIT, "init", "-q"], cwd=project, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=project, check=True)
    subprocess.run([*GIT, "commit", "-qm", "first"], cwd=project, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, check=True, capture_output=True,
                          text=True).stdout.strip()
    pair = keys.generate(tmp_path / "signer", password_env=None)
    return project, head, pair.public_path


def _build_sign_verify(project: Path, pub: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main(["build", str(project)]) == 0
    assert main(["sign", str(project), "--key", str(pub.with_suffix(".key"))]) == 0
    capsys.readouterr()
    assert main(["verify", str(project), "--key", str(pub), *extra]) == 0
    return capsys.readouterr().out


def test_verify_prints_the_revision_of_a_checkout_without_origin(repo, capsys) -> None:
    project, head, pub = repo
    out = _build_sign_verify(project, pub, capsys)
    assert f"      source:  git commit {head} (no repository URL recorded)\n" in out


def test_verify_says_the_checkout_had_uncommitted_changes(repo, capsys) -> None:
    project, head, pub = repo
    with (project / "m.wat").open("a") as f:
        f.write(";; edited after the commit\n")
    out = _build_sign_verify(project, pub, capsys, "--json")
    [sig] = json.loads(out)["verified"]
    assert (sig["provenance"]["sourceRevision"], sig["provenance"]["sourceDirty"]) == (head, True)


def test_verify_prints_repository_and_revision_with_an_origin(repo, capsys) -> None:
    project, head, pub = repo
    subprocess.run([*GIT, "remote", "add", "origin", "https://example.com/team/hello.git"], cwd=project, check=True)
    out = _build_sign_verify(project, pub, capsys)
    assert f"      source:  https://example.com/team/hello.git@{head}\n" in out
