"""``build``, ``inspect`` and ``run``: parse options, call one library function, render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

build_app = typer.Typer(add_completion=False, rich_markup_mode=None)
inspect_app = typer.Typer(add_completion=False, rich_markup_mode=None)
run_app = typer.Typer(add_completion=False, rich_markup_mode=None)


@build_app.command()
def build(
    directory: Annotated[Path, typer.Argument(help="Project directory holding Enarx.toml.")] = Path("."),
    output: Annotated[Path | None, typer.Option("--output", "-o", help="OCI layout to write "
                                                "(default DIR/target/oci).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Build the workload and package it as a reproducible OCI image layout."""
    from enarx_pkg._cli.common import info, is_terminal, print_json
    from enarx_pkg._cli.startup import loading

    with loading():  # and what building imports on its way (validation, the Enarx.toml layer)
        import tomlkit  # noqa: F401
        import wasmtime  # noqa: F401

        from enarx_pkg import build as builder

    if is_terminal():
        from rich.console import Console

        with Console(stderr=True).status("building") as status:
            result = builder.build(directory, output, progress=lambda m: status.update(m))
    else:
        result = builder.build(directory, output, progress=lambda m: info(f"build: {m}"))
    if as_json:
        print_json({"digest": result.digest, "layout": str(result.layout), "tag": result.tag})
        return
    info(f"built {result.module.name} ({result.module_size} bytes, {result.os})")
    print(f"{result.digest}  oci:{result.layout}:{result.tag}")


@inspect_app.command()
def inspect(
    package: Annotated[str, typer.Argument(help="Project DIR, DIR:TAG, oci:LAYOUT[:TAG], or a registry "
                                           "reference.")] = ".",
    ref: Annotated[str | None, typer.Option("--ref", help="Tag or digest, if the layout has several.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Show a package's manifest, config, layers, Enarx.toml and signatures."""
    from enarx_pkg import inspect as inspector
    from enarx_pkg._cli.common import print_json

    result = inspector.inspect_target(package, ref)
    if as_json:
        print_json(result.to_json())
    else:
        print(inspector.render(result))


@run_app.command(context_settings={"allow_interspersed_args": False})
def run(
    package: Annotated[str, typer.Argument(
        help="A built project DIR (the build of its current version; refused if its sources changed "
             "since), DIR:TAG, oci:LAYOUT[:TAG] or a registry reference.", show_default=True)] = ".",
    args: Annotated[list[str] | None, typer.Argument(
        help="After --: replace the Enarx.toml args.", show_default=False)] = None,
    no_cache: Annotated[bool, typer.Option(
        "--no-cache", help="Compile afresh instead of using the compiled-module cache.")] = False,
    secret: Annotated[list[str] | None, typer.Option(
        "--secret", metavar="NAME=SOURCE", show_default=False,
        help="Give the workload secret NAME from env:VARIABLE or file:PATH on this machine (repeatable; "
             "overrides the package's [secrets] by name).")] = None,
    tls12: Annotated[bool, typer.Option(
        "--tls12", help="prot = \"tls\" files accept TLS 1.2 too (default: TLS 1.3 only).")] = False,
) -> None:
    """Run the workload locally in wasmtime (no TEE) and exit with its status.

    Options go before PACKAGE; the workload's own arguments after --.
    """
    # `run` without options never gets here: _cli.main runs it without importing typer (_cli/run.py)
    from enarx_pkg._cli import run as run_cmd

    raise typer.Exit(run_cmd.run(package, args, cache=not no_cache, secrets=secret or (), tls12=tls12))
