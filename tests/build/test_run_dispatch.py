"""``enarx-pkg run`` without options skips typer: same output and exit code as through typer; options go to typer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from enarx_pkg._cli import run as run_cmd
from enarx_pkg._cli.main import main
from tests.build.helpers import WASI_START, wat_project


@pytest.fixture(scope="module")
def exit7(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from enarx_pkg.build import build

    project = wat_project(tmp_path_factory.mktemp("exit7"),
                          f'{WASI_START} (func (export "_start") (call $exit (i32.const 7)))')
    return build(project).layout


def _both(argv: list[str], capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
          ) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    fast = (main(argv), *capfd.readouterr())
    with monkeypatch.context() as m:
        m.setattr(run_cmd, "no_options", lambda words: False)  # force the typer path
        slow = (main(argv), *capfd.readouterr())
    return fast, slow


@pytest.mark.parametrize("argv", [
    ["run", "{L}"], ["run", "{L}", "--", "a", "b c"], ["run", "--", "{L}"], ["run", "--", "{L}", "--", "x"],
    ["run", "{L}", "--no-cache"], ["run", "{L}", "extra", "--x"], ["run", "{L}", "--json"], ["run", "-"],
    ["run", "/nonexistent/layout"], ["run", "{P}"], ["run", "{E}"], ["run", "{E}", "--", "-h"], ["run"],
    ["run", "--"], ["run", "{L}", "--"], ["run", "--", "--", "x"],
])
def test_fast_path_matches_typer(argv: list[str], wat_layout: Path, exit7: Path, tmp_path: Path,
                                 capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # bare `run` looks in the working directory: nothing there
    subst = {"{L}": str(wat_layout), "{P}": str(wat_layout.parent.parent), "{E}": str(exit7)}
    argv = [subst.get(w, w) for w in argv]
    assert run_cmd.no_options(argv[1:])
    fast, slow = _both(argv, capfd, monkeypatch)
    assert fast == slow
    assert fast[0] in (0, 2, 7, 65, 66)


@pytest.mark.parametrize("words", [["-h"], ["--help"], ["--no-cache", "--help"], ["--frob", "x"], ["-xh"],
                                   ["--no-cache", "x"], ["--secret", "A=env:B", "x"], ["--secret=A=env:B"]])
def test_options_go_through_typer(words: list[str]) -> None:
    assert not run_cmd.no_options(words)


@pytest.mark.parametrize("argv, status, out", [
    (["run", "--no-cache", "{E}"], 7, ""), (["run", "--no-cache", "--", "{L}", "x"], 0, "arg: x\n"),
    (["run", "--frob", "{L}"], 2, ""), (["run", "--secret", "X=bad", "{L}"], 2, ""),
])
def test_options(argv: list[str], status: int, out: str, wat_layout: Path, exit7: Path,
                 capfd: pytest.CaptureFixture[str]) -> None:
    argv = [{"{L}": str(wat_layout), "{E}": str(exit7)}.get(w, w) for w in argv]
    assert main(argv) == status
    stdout, stderr = capfd.readouterr()
    assert out in stdout
    assert "Traceback" not in stderr


def test_run_help_still_works() -> None:
    out = subprocess.run([sys.executable, "-m", "enarx_pkg", "run", "-h"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "Usage:" in out.stdout
    assert "--no-cache" in out.stdout and "--secret NAME=SOURCE" in out.stdout


def test_plain_run_imports_neither_typer_nor_jsonschema(wat_layout: Path) -> None:
    code = ("import sys\nfrom enarx_pkg._cli.main import main\nrc = main(['run', sys.argv[1]])\n"
            "names = ('typer', 'pydantic', 'jsonschema', 'rich', 'socket', 'tempfile')\n"
            "heavy = [m for m in names if m in sys.modules]\n"
            "print('RC=%d HEAVY=%s' % (rc, ','.join(heavy)))\n")
    out = subprocess.run([sys.executable, "-c", code, str(wat_layout)], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "RC=0 HEAVY="


@pytest.mark.parametrize("own_process", [True, False])
def test_run_leaves_its_start_up_objects_out_of_the_collector(wat_layout: Path, own_process: bool) -> None:
    """As the console script runs it, what was imported before the workload ran is frozen (gc.freeze)
    and the collector is on again; a caller passing its own argv (a test) keeps its collector as it was."""
    call = "main()" if own_process else "main(sys.argv[1:])"
    code = (f"import gc, sys\nfrom enarx_pkg._cli.main import main\nsys.argv[1:1] = ['run']\nrc = {call}\n"
            "print('RC=%d FROZEN=%s ENABLED=%s' % (rc, gc.get_freeze_count() > 10000, gc.isenabled()))\n")
    out = subprocess.run([sys.executable, "-c", code, str(wat_layout)], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip().splitlines()[-1] == f"RC=0 FROZEN={own_process} ENABLED=True"
