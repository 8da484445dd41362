"""Root command. Sub-commands are imported only when they run, so ``--help`` starts fast."""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup

from enarx_pkg import __version__

# name -> (module, attribute holding a typer.Typer, one-line help shown by ``enarx-pkg --help``)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": ("enarx_pkg._cli.manifest", "init_app", "Create an Enarx.toml and a hello-world source."),
    "validate": ("enarx_pkg._cli.manifest", "validate_app", "Check an Enarx.toml and print its normalised form."),
    "build": ("enarx_pkg._cli.build", "build_app", "Build the workload into a reproducible OCI layout."),
    "inspect": ("enarx_pkg._cli.build", "inspect_app", "Show a package's manifest, config, layers and Enarx.toml."),
    "run": ("enarx_pkg._cli.build", "run_app", "Run the workload locally in wasmtime (no TEE)."),
    "keys": ("enarx_pkg._cli.signing", "keys_app", "Generate signing keys."),
    "sign": ("enarx_pkg._cli.signing", "sign_app", "Sign a package (sigstore bundle + SLSA provenance)."),
    "verify": ("enarx_pkg._cli.signing", "verify_app", "Verify a package's signatures."),
    "login": ("enarx_pkg._cli.transfer", "login_app", "Store credentials for a registry."),
    "logout": ("enarx_pkg._cli.transfer", "logout_app", "Remove stored credentials for a registry."),
    "publish": ("enarx_pkg._cli.transfer", "publish_app", "Push a package and its signatures to a registry."),
    "pull": ("enarx_pkg._cli.transfer", "pull_app", "Pull a package and its signatures into an OCI layout."),
    "attest": ("enarx_pkg._cli.attest", "attest_app", "Inspect and verify TEE attestation evidence."),
    "platform": ("enarx_pkg._cli.attest", "platform_app", "Report this host's TEE interfaces."),
    "host": ("enarx_pkg._cli.deploy", "host_app", "Run the host agent that creates keeps."),
    "deploy": ("enarx_pkg._cli.deploy", "deploy_app", "Attest a keep, seal secrets to it, run the package."),
    "registry": ("enarx_pkg._cli.registry", "registry_app", "Run and administer the enarx-pkg registry."),
}


class LazyGroup(TyperGroup):
    """Lists commands from ``COMMANDS`` and imports a command's module only when it is invoked."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        module_name, attr, _ = COMMANDS[cmd_name]
        app = getattr(importlib.import_module(module_name), attr)
        command = typer.main.get_command(app)
        command.name = cmd_name
        return command

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = [(name, short) for name, (_, _, short) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    cls=LazyGroup,
    rich_markup_mode=None,
    add_completion=False,
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
    70 build failed, 77 signature or digest refused, 78 attestation refused, 124 workload timed out,
    134 workload trapped; `run` and `deploy` otherwise exit with the workload's own status.
    """


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning every enarx-pkg error into its diagnostic and exit code."""
    from enarx_pkg.errors import Error

    args = sys.argv[1:] if argv is None else argv
    from typer._click.exceptions import ClickException

    root = typer.main.get_command(app)
    try:
        rv = root.main(args=args, prog_name="enarx-pkg", standalone_mode=False)
    except Error as exc:
        to_dict = getattr(exc, "to_dict", None)  # e.g. ManifestError lists its problems
        details = to_dict() if callable(to_dict) else None
        _report(exc.diagnostics(), int(exc.exit_code), type(exc).__name__, exc.message, "--json" in args,
                details)
        return int(exc.exit_code)
    except typer.Exit as exc:
        return exc.exit_code
    except ClickException as exc:
        exc.show()
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in enarx-pkg, not the user's fault: say so, briefly
        if os.environ.get("ENARX_PKG_DEBUG"):
            raise
        _report(f"internal error: {type(exc).__name__}: {exc}\n  hint: set ENARX_PKG_DEBUG=1 for a traceback "
                "and report it", 1, "InternalError", str(exc), "--json" in args)
        return 1
    return rv if isinstance(rv, int) else 0


def _report(text: str, code: int, kind: str, message: str, as_json: bool,
            details: dict[str, Any] | None = None) -> None:
    if as_json:
        payload: dict[str, Any] = {"error": {"kind": kind, "message": message, "exit_code": code}}
        payload["error"].update(details or {})
        print(json.dumps(payload))
    print(text, file=sys.stderr)
