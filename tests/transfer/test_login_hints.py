"""Credential errors point the right way: a wrong password at `login` says to check it (not to run
`login`), and a token lacking a scope says which one, not to log in again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from enarx_pkg._cli.main import main
from tests.transfer.conftest import make_package


def test_wrong_password_at_login_does_not_suggest_login(registry_server: Any, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setattr("sys.stdin", _Line("ep_wrong-password-123\n"))
    code = main(["login", registry_server.host, "--username", "admin", "--password-stdin"])
    err = capsys.readouterr().err
    assert code == 77 and "enarx-pkg login" not in err and "user name and password" in err
    assert "ep_wrong-password-123" not in err and not (tmp_path / "cfg").exists()


def test_password_stdin_without_a_user_name_says_to_pass_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setattr("sys.stdin", _Line("enxr_a-token-value\n"))
    code = main(["login", "127.0.0.1:9", "--password-stdin"])  # refused before any connection
    err = capsys.readouterr().err
    assert code == 2 and "no user name: pass -u USER with --password-stdin" in err
    assert "enxr_a-token-value" not in err and not (tmp_path / "cfg").exists()


def test_token_without_push_scope_names_the_scope(registry_server: Any, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    token = registry_server.token("pull:hints/*")
    monkeypatch.setenv("ENARX_PKG_REGISTRY_USERNAME", "ci")
    monkeypatch.setenv("ENARX_PKG_REGISTRY_PASSWORD", token)
    make_package(tmp_path / "pkg", note="scope")
    code = main(["publish", "--registry", registry_server.host, "--repository", "hints/app", "--tag", "1",
                 f"oci:{tmp_path / 'pkg'}"])
    err = capsys.readouterr().err
    assert code == 77 and "push" in err and "scope" in err and "enarx-pkg login" not in err
    assert token not in err


class _Line:
    def __init__(self, text: str) -> None:
        self.text = text

    def readline(self) -> str:
        return self.text

    def isatty(self) -> bool:
        return False


def test_login_and_logout_json(registry_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> None:
    import json

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setattr("sys.stdin", _Line(registry_server.admin_token + "\n"))
    assert main(["login", registry_server.host, "--username", "admin", "--password-stdin", "--json"]) == 0
    out = capsys.readouterr().out
    got = json.loads(out)
    assert got["registry"] == registry_server.host and Path(got["stored"]).is_file()
    assert registry_server.admin_token not in out
    assert main(["logout", registry_server.host, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"registry": registry_server.host, "removed": True}
    assert main(["logout", registry_server.host, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] is False
