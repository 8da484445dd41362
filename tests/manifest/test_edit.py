"""`enarx-pkg secret add|remove|list` and `version bump`: edits that keep every other byte, or write nothing."""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import pytest

from enarx_pkg import manifest
from enarx_pkg._cli.main import main
from enarx_pkg.errors import InputError, UsageError
from enarx_pkg.manifest import edit, semver

# Hand-written on purpose: comments everywhere, odd spacing, a literal string, a multi-line string,
# a compact inline table, blank lines inside a table. None of it may change except the edited line.
RICH = """\
# Enarx.toml for a demo service -- hand-written, with   odd   spacing.

args = [ "--port", "8443" ]   # trailing comment, two spaces before

[package]
name    = "demo"            # aligned
version = '1.4.2'           # literal string on purpose
description = \"\"\"
A multi-line
description.\"\"\"
authors = [
  "Ada <ada@example.com>",  # one per line
  "Bob <bob@example.com>",
]

[env]
GREETING = "hello"

[[files]]
kind = "stdin"

[[files]]
kind = "stdout"
# a comment between array-of-tables entries

[[files]]
kind = "stderr"

[build]
command = ["make", "demo.wasm"]
output  = "demo.wasm"

[secrets]
# the database password, from the CI secret store
DB_PASSWORD = { env = "DB_PASSWORD" }   # keep this comment

API_TOKEN = {file="~/.config/demo/token", mount = "/run/secrets/token"}

[keep]
backends = ["sim"]    # development only
memory_mb = 64
"""

PLAIN = ('[package]\nname = "demo"\nversion = "0.1.0"\n\n'
         '[build]\nrecipe = "wat"\nsources = ["demo.wat"]\noutput = "demo.wasm"\n')


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "Enarx.toml").write_text(RICH)
    return tmp_path


def cli(*args: str) -> int:
    return main(list(args))


def changes(old: str, new: str) -> list[str]:
    """The changed lines, as '-old' / '+new' (no context, no headers)."""
    diff = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]


# --- secret add ---------------------------------------------------------------------------------


def test_add_changes_only_the_one_line(project: Path) -> None:
    assert cli("secret", "add", "SMTP_PASSWORD", "--env", "SMTP_PASS", "--dir", str(project)) == 0
    new = (project / "Enarx.toml").read_text()
    assert changes(RICH, new) == ['+SMTP_PASSWORD = { env = "SMTP_PASS" }']
    # appended to [secrets], before the blank line that separates it from [keep]
    assert 'mount = "/run/secrets/token"}\nSMTP_PASSWORD = { env = "SMTP_PASS" }\n\n[keep]' in new
    secrets = {s.name: s for s in manifest.load(project).secrets}
    assert (secrets["SMTP_PASSWORD"].source, secrets["SMTP_PASSWORD"].ref) == ("env", "SMTP_PASS")


def test_add_creates_the_secrets_table(tmp_path: Path) -> None:
    (tmp_path / "Enarx.toml").write_text(PLAIN)
    assert cli("secret", "add", "TLS_KEY", "--file", "tls.key", "--mount", "/run/secrets/tls.key",
               "--dir", str(tmp_path)) == 0
    new = (tmp_path / "Enarx.toml").read_text()
    assert new.startswith(PLAIN)
    added = new[len(PLAIN):]
    assert added.startswith("\n[secrets]\n# ") and added.endswith(
        '\nTLS_KEY = { file = "tls.key", mount = "/run/secrets/tls.key" }\n')
    (secret,) = manifest.load(tmp_path).secrets
    assert (secret.name, secret.source, secret.ref, secret.mount) == ("TLS_KEY", "file", "tls.key",
                                                                      "/run/secrets/tls.key")


def test_add_to_a_file_without_a_final_newline(tmp_path: Path) -> None:
    (tmp_path / "Enarx.toml").write_text(PLAIN.rstrip("\n"))
    assert cli("secret", "add", "A", "--env", "A", "--dir", str(tmp_path)) == 0
    new = (tmp_path / "Enarx.toml").read_text()
    assert new.startswith(PLAIN + "\n[secrets]\n")


@pytest.mark.parametrize("layout", [
    'secrets = { OLD = { env = "OLD" } }\n' + PLAIN,
    'secrets.OLD.env = "OLD"\n' + PLAIN,
    PLAIN + '\n[secrets.OLD]\nenv = "OLD"\n',
    PLAIN + '\n[secrets]\n\n[secrets.OLD]\nenv = "OLD"\n',
])
def test_add_to_other_secrets_layouts(tmp_path: Path, layout: str) -> None:
    (tmp_path / "Enarx.toml").write_text(layout)
    assert cli("secret", "add", "NEW", "--env", "NEW_VAR", "--dir", str(tmp_path)) == 0
    secrets = {s.name: s.ref for s in manifest.load(tmp_path).secrets}
    assert secrets == {"OLD": "OLD", "NEW": "NEW_VAR"}


def test_add_refuses_an_existing_name(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("secret", "add", "DB_PASSWORD", "--env", "OTHER", "--dir", str(project)) == 2
    assert "already declared" in capsys.readouterr().err
    assert (project / "Enarx.toml").read_text() == RICH


def test_force_replaces_and_keeps_the_comment(project: Path) -> None:
    assert cli("secret", "add", "DB_PASSWORD", "--file", "/etc/demo/db", "--force", "--dir", str(project)) == 0
    assert changes(RICH, (project / "Enarx.toml").read_text()) == [
        '-DB_PASSWORD = { env = "DB_PASSWORD" }   # keep this comment',
        '+DB_PASSWORD = { file = "/etc/demo/db" }   # keep this comment',
    ]


def test_force_rewrites_a_section_in_place(tmp_path: Path) -> None:
    text = PLAIN + '\n[secrets.DB]\nenv = "DB" # from CI\n\n[keep]\nmemory_mb = 64\n'
    (tmp_path / "Enarx.toml").write_text(text)
    assert cli("secret", "add", "DB", "--file", "db.txt", "--force", "--dir", str(tmp_path)) == 0
    new = (tmp_path / "Enarx.toml").read_text()
    assert '[secrets.DB]\nfile = "db.txt"\n\n[keep]' in new and new.startswith(PLAIN)


@pytest.mark.parametrize("name", ["1ABC", "DB-PASSWORD", "DB PASSWORD", "", "DÉJÀ"])
def test_add_refuses_an_invalid_name(project: Path, name: str) -> None:
    assert cli("secret", "add", name, "--env", "X", "--dir", str(project)) == 2
    assert (project / "Enarx.toml").read_text() == RICH


@pytest.mark.parametrize("options", [[], ["--env", "A", "--file", "a"], ["--file", "a", "--mount", "run/x"],
                                     ["--file", "a\nb"]])
def test_add_needs_one_well_formed_source(project: Path, options: list[str]) -> None:
    assert cli("secret", "add", "NEW", *options, "--dir", str(project)) == 2
    assert (project / "Enarx.toml").read_text() == RICH


def test_a_value_given_as_env_is_refused_and_not_repeated(project: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    value = "correct horse battery staple!"
    assert cli("secret", "add", "NEW", "--env", value, "--dir", str(project)) == 2
    out = capsys.readouterr()
    assert "environment variable" in out.err
    assert "correct horse" not in out.err + out.out
    assert (project / "Enarx.toml").read_text() == RICH


def test_there_is_no_value_option(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("secret", "add", "NEW", "--value", "hunter2", "--dir", str(project)) == 2
    assert "No such option" in capsys.readouterr().err
    assert cli("secret", "--help") == 0
    assert "deploy time" in capsys.readouterr().out


def test_an_edit_that_would_break_the_file_writes_nothing(project: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # GREETING is in [env]: a secret of that name would overwrite it (a semantic rule of the loader)
    assert cli("secret", "add", "GREETING", "--env", "GREETING", "--dir", str(project)) == 65
    err = capsys.readouterr().err
    assert "would make" in err and "nothing was written" in err and "would overwrite env.GREETING" in err
    # two secrets at one mount path
    assert cli("secret", "add", "OTHER", "--env", "O", "--mount", "/run/secrets/token", "--dir", str(project)) == 65
    assert "used by two secrets" in capsys.readouterr().err
    assert (project / "Enarx.toml").read_text() == RICH


# --- secret remove / list -----------------------------------------------------------------------


def test_remove_changes_only_that_line(project: Path) -> None:
    assert cli("secret", "remove", "API_TOKEN", "--dir", str(project)) == 0
    assert changes(RICH, (project / "Enarx.toml").read_text()) == [
        '-API_TOKEN = {file="~/.config/demo/token", mount = "/run/secrets/token"}']
    assert [s.name for s in manifest.load(project).secrets] == ["DB_PASSWORD"]


def test_remove_a_section(tmp_path: Path) -> None:
    (tmp_path / "Enarx.toml").write_text(PLAIN + '\n[secrets.DB]\nenv = "DB"\n\n[keep]\nmemory_mb = 64\n')
    assert cli("secret", "remove", "DB", "--dir", str(tmp_path)) == 0
    assert (tmp_path / "Enarx.toml").read_text() == PLAIN + "\n[keep]\nmemory_mb = 64\n"


def test_remove_an_unknown_name_is_not_found(project: Path) -> None:
    assert cli("secret", "remove", "NOPE", "--dir", str(project)) == 66
    assert (project / "Enarx.toml").read_text() == RICH


def test_list_text_and_json(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("secret", "list", "--dir", str(project)) == 0
    assert capsys.readouterr().out.splitlines() == [
        "API_TOKEN    file ~/.config/demo/token  mount /run/secrets/token",
        "DB_PASSWORD  env DB_PASSWORD",
    ]
    assert cli("secret", "list", "--json", "--dir", str(project)) == 0
    assert json.loads(capsys.readouterr().out) == {"secrets": [
        {"name": "API_TOKEN", "source": "file", "ref": "~/.config/demo/token", "mount": "/run/secrets/token"},
        {"name": "DB_PASSWORD", "source": "env", "ref": "DB_PASSWORD", "mount": None},
    ]}


def test_list_with_none_declared(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Enarx.toml").write_text(PLAIN)
    assert cli("secret", "list", "--json", "--dir", str(tmp_path)) == 0
    assert json.loads(capsys.readouterr().out) == {"secrets": []}


# --- version bump -------------------------------------------------------------------------------


def test_bump_changes_only_the_version_and_keeps_its_quoting(project: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("version", "bump", "minor", "--dir", str(project)) == 0
    assert capsys.readouterr().out == f"{project / 'Enarx.toml'}: 1.4.2 → 1.5.0\n"
    assert changes(RICH, (project / "Enarx.toml").read_text()) == [
        "-version = '1.4.2'           # literal string on purpose",
        "+version = '1.5.0'           # literal string on purpose",
    ]


def test_bump_json_and_pre_releases(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("version", "bump", "major", "--pre", "rc", "--json", "--dir", str(project)) == 0
    assert json.loads(capsys.readouterr().out) == {"path": str(project / "Enarx.toml"), "old": "1.4.2",
                                                   "new": "2.0.0-rc.1"}
    assert cli("version", "bump", "major", "--pre", "rc", "--json", "--dir", str(project)) == 0
    assert json.loads(capsys.readouterr().out)["new"] == "2.0.0-rc.2"
    assert cli("version", "bump", "major", "--dir", str(project / "Enarx.toml")) == 0
    assert manifest.load(project).package.version == "2.0.0"  # type: ignore[union-attr]


def test_bump_refuses_going_back(project: Path) -> None:
    assert cli("version", "bump", "1.4.1", "--dir", str(project)) == 2
    assert cli("version", "bump", "1.4.2+build.9", "--dir", str(project)) == 2  # same precedence
    assert cli("version", "bump", "v2", "--dir", str(project)) == 2
    assert (project / "Enarx.toml").read_text() == RICH


def test_bump_without_a_package_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Enarx.toml").write_text('args = ["x"]\n')
    assert cli("version", "bump", "patch", "--dir", str(tmp_path)) == 65
    assert "no [package] version" in capsys.readouterr().err


@pytest.mark.parametrize(("current", "target", "pre", "expected"), [
    ("1.2.3", "major", None, "2.0.0"),
    ("1.2.3", "minor", None, "1.3.0"),
    ("1.2.3", "patch", None, "1.2.4"),
    ("1.2.3+build.7", "patch", None, "1.2.4"),
    ("1.0.0-rc.1", "major", None, "1.0.0"),  # bumping a pre-release releases it
    ("1.2.0-rc.1", "minor", None, "1.2.0"),
    ("1.2.3-rc.1", "patch", None, "1.2.3"),
    ("1.2.3-rc.1", "minor", None, "1.3.0"),
    ("1.2.3", "patch", "rc", "1.2.4-rc.1"),
    ("1.2.4-rc.1", "patch", "rc", "1.2.4-rc.2"),
    ("1.2.4-rc.9", "patch", "rc", "1.2.4-rc.10"),
    ("1.2.4-beta.3", "patch", "rc", "1.2.4-rc.1"),
    ("1.2.4-rc.1", "minor", "rc", "1.3.0-rc.1"),
    ("0.9.0", "1.0.0", None, "1.0.0"),
    ("1.0.0-alpha", "1.0.0-alpha.1", None, "1.0.0-alpha.1"),
])
def test_next_version(current: str, target: str, pre: str | None, expected: str) -> None:
    assert semver.next_version(current, target, pre) == expected


@pytest.mark.parametrize(("current", "target", "pre"), [
    ("1.2.3", "1.2.3", None), ("1.2.3", "1.2.2", None), ("1.0.0", "1.0.0+meta", None),
    ("1.2.3-rc.1", "patch", "beta"),  # beta.1 < rc.1: would go back
    ("1.0.0", "01.0.0", None), ("1.0.0", "2.0", None), ("1.2.3", "patch", "01"), ("1.2.3", "patch", "rc..1"),
    ("1.2.3", "2.0.0", "rc"), ("1.2.3", "x" * 10_000, None),
])
def test_next_version_refusals(current: str, target: str, pre: str | None) -> None:
    with pytest.raises(UsageError):
        semver.next_version(current, target, pre)


def test_precedence_follows_semver_11() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
               "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0"]
    parsed = [semver.parse(v) for v in reversed(ordered)]
    assert [str(v) for v in sorted(parsed, key=lambda v: v.precedence())] == ordered  # type: ignore[union-attr]


# --- refusals common to every edit --------------------------------------------------------------

EDITS = [["secret", "add", "NEW", "--env", "NEW"], ["secret", "remove", "DB"], ["version", "bump", "patch"]]


@pytest.mark.parametrize("command", EDITS)
def test_a_file_invalid_before_the_edit_is_refused_with_its_errors(
        tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    text = PLAIN + '\n[secrets]\nDB = { env = "DB" }\n\n[keep]\nmemory_mb = 0\n'
    (tmp_path / "Enarx.toml").write_text(text)
    assert cli(*command, "--dir", str(tmp_path)) == 65
    assert "keep.memory_mb: 0 is out of range" in capsys.readouterr().err
    assert (tmp_path / "Enarx.toml").read_text() == text


@pytest.mark.parametrize("command", [*EDITS, ["secret", "list"]])
def test_a_missing_file_is_not_found(tmp_path: Path, command: list[str]) -> None:
    assert cli(*command, "--dir", str(tmp_path)) == 66
    assert not list(tmp_path.iterdir())


def test_json_error_for_an_invalid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Enarx.toml").write_text("[keep]\nmemory_mb = 0\n")
    assert cli("secret", "list", "--json", "--dir", str(tmp_path)) == 65
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["exit_code"] == 65 and error["problems"][0]["key"] == "keep.memory_mb"


def test_a_failure_while_writing_leaves_the_file_and_no_temp(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    def fail(src: object, dst: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", fail)  # after validation, temp written and fsynced
    assert cli("secret", "add", "NEW", "--env", "NEW", "--dir", str(project)) == 65
    assert "cannot write" in capsys.readouterr().err
    assert (project / "Enarx.toml").read_text() == RICH
    assert sorted(p.name for p in project.iterdir()) == ["Enarx.toml"]


def test_a_file_changed_during_the_edit_is_not_overwritten(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = edit._check_meaning

    def meanwhile(*args: object) -> None:
        real(*args)  # type: ignore[arg-type]
        (project / "Enarx.toml").write_text(RICH + "# someone else's edit\n")

    monkeypatch.setattr(edit, "_check_meaning", meanwhile)
    assert cli("version", "bump", "patch", "--dir", str(project)) == 65
    assert (project / "Enarx.toml").read_text() == RICH + "# someone else's edit\n"


def test_the_meaning_guard_refuses_a_stray_change() -> None:
    with pytest.raises(InputError, match="without changing other settings"):
        edit._check_meaning("a = 1\nb = 2\n", "a = 1\nb = 3\n", lambda data: None, Path("Enarx.toml"))


def test_mode_symlink_and_crlf_are_kept(tmp_path: Path) -> None:
    real = tmp_path / "real.toml"
    real.write_bytes(PLAIN.replace("\n", "\r\n").encode())
    real.chmod(0o600)
    (tmp_path / "Enarx.toml").symlink_to(real.name)
    assert cli("secret", "add", "A", "--env", "A", "--dir", str(tmp_path)) == 0
    assert (tmp_path / "Enarx.toml").is_symlink()
    data = real.read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n") and b'A = { env = "A" }\r\n' in data
    assert os.stat(real).st_mode & 0o777 == 0o600


def test_secret_add_and_remove_json(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("secret", "add", "API_KEY", "--file", "~/.api-key", "--mount", "/run/secrets/api",
               "--dir", str(project), "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"path": str(project / "Enarx.toml"), "name": "API_KEY",
                                                   "source": "file", "ref": "~/.api-key",
                                                   "mount": "/run/secrets/api"}
    assert cli("secret", "remove", "API_KEY", "--dir", str(project), "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"path": str(project / "Enarx.toml"), "name": "API_KEY",
                                                   "removed": True}
    assert "API_KEY" not in (project / "Enarx.toml").read_text()


# --- the project directory as a positional DIR ---------------------------------------------------


def test_dir_is_taken_positionally_like_build_and_run(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`enarx-pkg version bump minor hello` as a newcomer types it; --dir still works, and both must agree."""
    before = manifest.load(project).package.version  # type: ignore[union-attr]
    assert cli("version", "bump", "minor", str(project), "--json") == 0
    assert json.loads(capsys.readouterr().out)["old"] == before
    assert cli("secret", "add", "API_KEY", "--env", "API_KEY", str(project)) == 0
    assert cli("secret", "list", str(project), "--json") == 0
    assert "API_KEY" in {s["name"] for s in json.loads(capsys.readouterr().out)["secrets"]}
    assert cli("secret", "remove", "API_KEY", str(project)) == 0
    assert "API_KEY" not in {s.name for s in manifest.load(project).secrets}
    text = (project / "Enarx.toml").read_text()
    capsys.readouterr()
    assert cli("version", "bump", "patch", str(project), "--dir", str(project / "elsewhere")) == 2
    assert "two project directories" in capsys.readouterr().err
    assert (project / "Enarx.toml").read_text() == text
    assert cli("version", "bump", "patch", str(project), "--dir", str(project)) == 0
