"""``build``, ``inspect`` and ``run``: parse options, call one library function, render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

build_app = typer.Typer(add_completion=False)
inspect_app = typer.Typer(add_completion=False)
run_app = typer.Typer(add_completion=False)

NO_TEE = "running locally without a TEE: no attestation, no confidentiality"


@build_app.command()
def build(
    directory: Annotated[Path, typer.Argument(help="Project directory holding Enarx.toml.")] = Path("."),
    output: Annotated[Path | None, typer.Option("--output", "-o", help="OCI layout to write "
                                                "(default DIR/target/oci).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Build the workload and package it as a reproducible OCI image layout."""
    from enarx_pkg import build as builder
    from enarx_pkg._cli.common import info, is_terminal, print_json

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
    layout: Annotated[Path, typer.Argument(help="OCI image layout directory (e.g. DIR/target/oci).")],
    ref: Annotated[str | None, typer.Option("--ref", help="Tag or digest, if the layout has several.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Show a package's manifest, config, layers, Enarx.toml and signatures."""
    from enarx_pkg import inspect as inspector
    from enarx_pkg._cli.common import print_json
    from enarx_pkg.package import Layout

    result = inspector.inspect_layout(Layout.open(layout), ref)
    if as_json:
        print_json(result.to_json())
    else:
        print(inspector.render(result))


@run_app.command(context_settings={"allow_interspersed_args": False})
def run(
    target: Annotated[Path, typer.Argument(help="Project directory (built) or OCI image layout.")] = Path("."),
    args: Annotated[list[str] | None, typer.Argument(help="Arguments for the workload (after --); "
                                                     "default: Enarx.toml args.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Compile afresh; skip the module cache.")] = False,
) -> None:
    """Run the workload locally in wasmtime (no TEE) and exit with its status."""
    import sys

    from enarx_pkg import runtime

    print(NO_TEE, file=sys.stderr)
    sys.stderr.flush()
    argv = list(args or [])
    if argv[:1] == ["--"]:  # click keeps the separator once positional parsing has begun
        argv = argv[1:]
    status = runtime.run_path(target, tuple(argv) if args else None, cache=not no_cache)
    raise typer.Exit(status)
