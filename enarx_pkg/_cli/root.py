"""The root typer app: every command's ``--help``, and every command except a plain ``run``.

Imported by :mod:`enarx_pkg._cli.main` only when needed (typer costs ~50 ms to import).
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup

from enarx_pkg import __version__
from enarx_pkg._cli import coercion, startup
from enarx_pkg._cli.main import COMMANDS


class LazyGroup(TyperGroup):
    """Lists commands from ``COMMANDS`` and imports a command's module only when it is invoked.

    Every command's option values are converted by :mod:`enarx_pkg._cli.coercion` (no pydantic)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        coercion.install(self, ctx)  # the root's own options (--version, --install-completion, ...)
        return super().parse_args(ctx, args)  # type: ignore[no-any-return]

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        module_name, attr, _ = COMMANDS[cmd_name]
        with startup.loading():
            app = getattr(importlib.import_module(module_name), attr)
        command = typer.main.get_command(app)
        command.name = cmd_name
        coercion.install(command, ctx)
        return command

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = [(name, short) for name, (_, _, short) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    cls=LazyGroup,
    rich_markup_mode=None,
    add_completion=True,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"enarx-pkg {__version__}")
        raise typer.Exit()


@app.callback()
def cli(
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    """Build, sign, publish and deploy confidential WebAssembly workloads.

    Exit codes: 0 ok, 2 usage, 65 invalid input, 66 not found, 69 registry/host/network failure,
    70 build failed, 74 a file could not be read or written, 77 signature or digest refused,
    78 attestation refused, 124 workload timed out, 130 interrupted (Ctrl-C), 134 workload trapped;
    `run` and `deploy` otherwise exit with the workload's own status.
    """
