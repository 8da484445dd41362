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

    if not layout.exists() and "/" in str(layout) and ref is None:  # a registry reference (transfer helper)
        from enarx_pkg.pull import inspect_remote

        result = inspect_remote(str(layout))
    else:
        result = inspector.inspect_layout(Layout.open(layout), ref)
    if as_json:
        print_json(result.to_json())
    else:
        print(inspector.render(result))


@run_app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                   "allow_interspersed_args": False})
def run(ctx: typer.Context) -> None:
    """Run the workload locally in wasmtime (no TEE) and exit with its status.

    Usage: enarx-pkg run [DIR|LAYOUT] [--no-cache] [-- ARGS...]

    DIR is a built project (its target/oci is used; refused if its sources changed since the
    build), LAYOUT an OCI image layout. ARGS replace the Enarx.toml args. --no-cache compiles
    afresh instead of using the compiled-module cache.
    """
    # Options are parsed here rather than declared: typer's per-parameter coercion imports
    # pydantic (~100 ms), a third of what running a small workload costs.
    import sys

    from enarx_pkg import runtime

    target, argv, cache = _run_options(list(ctx.args))
    print(NO_TEE, file=sys.stderr)
    sys.stderr.flush()
    raise typer.Exit(runtime.run_path(Path(target), argv, cache=cache))


def _run_options(words: list[str]) -> tuple[str, tuple[str, ...] | None, bool]:
    from enarx_pkg.errors import UsageError

    cache, target, rest = True, ".", None
    while words:
        word = words.pop(0)
        if word == "--":
            rest = tuple(words)
            break
        if word == "--no-cache":
            cache = False
        elif word.startswith("-"):
            raise UsageError(f"run: unknown option {word!r} (workload arguments go after --)")
        elif target == "." and rest is None:
            target = word
        else:
            rest = (word, *words)
            break
    return target, rest, cache
