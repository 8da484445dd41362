"""``enarx-pkg init`` and ``enarx-pkg validate``: thin wrappers over :mod:`enarx_pkg.manifest`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from enarx_pkg._cli.common import info, print_json

init_app = typer.Typer(add_completion=False, rich_markup_mode=None)
validate_app = typer.Typer(add_completion=False, rich_markup_mode=None)


class Lang(StrEnum):
    wat = "wat"
    c = "c"
    cpp = "cpp"
    rust = "rust"
    go = "go"
    python = "python"


@init_app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Project directory (created if missing).")] = Path("."),
    name: Annotated[str | None, typer.Option("--name", help="Package name (default: the directory name).")] = None,
    lang: Annotated[Lang, typer.Option("--lang", help="Language of the hello-world source.")] = Lang.wat,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing Enarx.toml and sources.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
) -> None:
    """Create a commented Enarx.toml, a hello-world source and a .gitignore in DIRECTORY."""
    from enarx_pkg._cli.common import warn
    from enarx_pkg.manifest.scaffold import init_project

    created = init_project(directory, name=name, lang=lang.value, force=force)
    if as_json:
        print_json(created.to_json())
        return
    for note in created.notes:
        warn(note)
    for path in created.written:
        info(f"wrote {path}")
    for path in created.kept:
        info(f"kept existing {path}")
    info(f"next: enarx-pkg validate {directory} && enarx-pkg build {directory}")


@validate_app.command()
def validate(
    path: Annotated[Path, typer.Argument(help="An Enarx.toml, or a directory containing one.")] = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print the normalised model as JSON.")] = False,
) -> None:
    """Check an Enarx.toml and print its normalised form (exit 65 listing every problem)."""
    from enarx_pkg import manifest

    model = manifest.load(path)
    if as_json:
        print_json({"path": str(model.path), "fd_count": model.fd_count, "fd_names": model.fd_names,
                    "manifest": manifest.to_dict(model)})
        return
    info(f"{model.path}: valid ({model.fd_count} files, FD_NAMES={model.fd_names})")
    print(manifest.to_toml(model), end="")
