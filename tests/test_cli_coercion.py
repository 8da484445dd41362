"""Option values converted without pydantic (``_cli/coercion.py``): same values, same refusals as typer's own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
import typer.main

from enarx_pkg._cli import coercion
from enarx_pkg._cli.main import COMMANDS

ROOT = Path(__file__).resolve().parent.parent


def _probe_app(seen: dict[str, Any]) -> typer.Typer:
    app = typer.Typer(add_completion=False)

    @app.command()
    def probe(
        name: Annotated[str, typer.Argument()] = ".",
        where: Annotated[Path | None, typer.Option("--where")] = None,
        count: Annotated[int, typer.Option("--count")] = 3,
        ratio: Annotated[float, typer.Option("--ratio")] = 0.5,
        flag: Annotated[bool, typer.Option("--flag")] = False,
        tag: Annotated[list[str] | None, typer.Option("--tag")] = None,
        key: Annotated[list[Path] | None, typer.Option("--key")] = None,
    ) -> None:
        seen.update(name=name, where=where, count=count, ratio=ratio, flag=flag, tag=tag, key=key)

    return app


def _invoke(args: list[str], fast: bool, capsys: pytest.CaptureFixture[str]) -> tuple[Any, ...]:
    seen: dict[str, Any] = {}
    command = typer.main.get_command(_probe_app(seen))
    if fast:
        ctx = typer.Context(command, info_name="probe")
        coercion.install(command, ctx)
        assert all(type(p._runtime_param).__name__ == "_Plain" for p in command.get_params(ctx))
    try:
        command.main(args=args, prog_name="probe", standalone_mode=False)
        code = 0
    except typer.Exit as exc:
        code = exc.exit_code
    except Exception as exc:  # usage errors: compare their wording
        show = getattr(exc, "format_message", None)
        return ("refused", type(exc).__name__, show() if callable(show) else str(exc))
    return ("ok", code, seen, capsys.readouterr().out)


@pytest.mark.parametrize("args", [
    [], ["x"], ["--where", "some/dir", "y"], ["--where", ""], ["--count", "12"], ["--count", "-4"],
    ["--count", "007"], ["--count", "1_000"], ["--count", " 5 "], ["--ratio", "2"], ["--ratio", "1.25"],
    ["--ratio", "1e3"], ["--flag"], ["--tag", "a", "--tag", "b c"], ["--key", "k1.pem", "--key", "k2.pem"],
    ["--count", "abc"], ["--count", "1.5"], ["--ratio", "fast"], ["--count"], ["--help"],
])
def test_same_values_and_refusals_as_typer(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    ours = _invoke(args, True, capsys)
    typers = _invoke(args, False, capsys)
    assert ours == typers
    assert ours[0] in ("ok", "refused")


def _params(command: Any, ctx: Any) -> list[Any]:
    out = list(command.get_params(ctx))
    for name, sub in getattr(command, "commands", {}).items():
        out += _params(sub, typer.Context(sub, info_name=name, parent=ctx))
    return out


def test_every_enarx_pkg_option_but_one_is_converted_without_pydantic() -> None:
    """If typer's internals move, this fails rather than every start silently growing ~100 ms slower."""
    from enarx_pkg._cli.root import app

    root = typer.main.get_command(app)
    ctx = typer.Context(root, info_name="enarx-pkg", help_option_names=["-h", "--help"])
    coercion.install(root, ctx)  # as LazyGroup.parse_args does
    params = _params(root, ctx)
    for name in COMMANDS:
        command = root.get_command(ctx, name)
        params += _params(command, typer.Context(command, info_name=name, parent=ctx))
    plain = [p for p in params if type(p._runtime_param).__name__ == "_Plain"]
    other = sorted({p.name for p in params if p not in plain})
    assert len(plain) > 200
    assert other == ["lang"]  # init --lang, an Enum: typer's own conversion


def test_a_command_with_options_imports_no_pydantic() -> None:
    code = ("import sys\nfrom enarx_pkg._cli.main import main\n"
            "rc = main(['validate', sys.argv[1], '--json'])\n"
            "print('RC=%d PYDANTIC=%s' % (rc, 'pydantic' in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "examples" / "wat")], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "RC=0 PYDANTIC=False", out.stderr
