"""The root command: help lists every command, version, usage errors and the one error handler."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from enarx_pkg import __version__
from enarx_pkg._cli import main as cli_main
from enarx_pkg._cli.main import main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "enarx_pkg", *args], capture_output=True, text=True, timeout=60)


def test_help_lists_every_command() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    for name in cli_main.COMMANDS:
        assert f"  {name} " in out.stdout


def test_version() -> None:
    out = run_cli("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"enarx-pkg {__version__}"


def test_unknown_command_is_a_usage_error() -> None:
    out = run_cli("frobnicate")
    assert out.returncode == 2
    assert "No such command" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("args", [["inspect", "--json", "--no-such-flag"], ["registry", "yank", "--json"]])
def test_usage_error_with_json_is_the_documented_error_object(args: list[str]) -> None:
    import json

    out = run_cli(*args)
    error = json.loads(out.stdout)["error"]
    assert out.returncode == 2 and (error["kind"], error["exit_code"]) == ("UsageError", 2)
    assert error["message"] and error["message"] in out.stderr  # said to people too, with the usage line
    assert "Usage:" in out.stderr and "Traceback" not in out.stderr


def test_help_does_not_import_command_modules() -> None:
    code = (
        "import sys\nfrom enarx_pkg._cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "names = ('wasmtime', 'cryptography', 'httpx', 'sigstore', 'rich', 'jsonschema')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "HEAVY="


@pytest.mark.parametrize("name", sorted(cli_main.COMMANDS))
def test_every_command_has_help(name: str) -> None:
    out = run_cli(name, "--help")
    assert out.returncode == 0, out.stderr
    assert "Usage:" in out.stdout


def test_shell_completion_completes_commands_and_options() -> None:
    import os

    env = {**os.environ, "_ENARX_PKG_COMPLETE": "complete_bash", "COMP_WORDS": "enarx-pkg bu", "COMP_CWORD": "1"}
    out = subprocess.run([sys.executable, "-m", "enarx_pkg"], env=env, capture_output=True, text=True, timeout=60,
                         check=True).stdout
    assert out.split() == ["build"]
    env.update({"COMP_WORDS": "enarx-pkg build --j", "COMP_CWORD": "2"})
    out = subprocess.run([sys.executable, "-m", "enarx_pkg"], env=env, capture_output=True, text=True, timeout=60,
                         check=True).stdout
    assert out.split() == ["--json"]
    # typer detects the shell from the process tree unless told not to (then it takes the shell named);
    # under `make test` the nearest shell is sh, which typer does not support
    script = subprocess.run([sys.executable, "-m", "enarx_pkg", "--show-completion", "bash"], capture_output=True,
                            text=True, timeout=60, check=False,
                            env={**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert script.returncode == 0 and "_ENARX_PKG_COMPLETE" in script.stdout


def test_a_command_runs_with_the_collector_on_and_its_start_up_frozen() -> None:
    """enarx_pkg/_cli/startup.py: imports load with the collector paused, commands run with it on."""
    from pathlib import Path

    project = Path(__file__).resolve().parent.parent / "examples" / "wat"
    code = ("import gc, sys\nfrom enarx_pkg._cli.main import main\n"
            "sys.argv = ['enarx-pkg', 'validate', sys.argv[1], '--json']\nrc = main()\n"
            "print('RC=%d FROZEN=%s ENABLED=%s' % (rc, gc.get_freeze_count() > 10000, gc.isenabled()))\n")
    out = subprocess.run([sys.executable, "-c", code, str(project)], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "RC=0 FROZEN=True ENABLED=True", out.stderr


@pytest.mark.parametrize("args", [["keys", "generate", "--out", "/proc/enarx-pkg-test"],
                                  ["init", "{file}"]])
def test_a_file_operation_the_machine_refuses_is_named_not_an_internal_error(tmp_path, capsys, args) -> None:
    """/proc takes no new files even for root; a regular file is no project directory: exit 74 with the path."""
    (tmp_path / "plain").write_text("x")
    argv = [a.format(file=tmp_path / "plain") for a in args] + ["--json"]
    assert main(argv) == 74
    out, err = capsys.readouterr()
    assert "internal error" not in err and "error: cannot read or write " in err
    assert json.loads(out)["error"]["exit_code"] == 74
