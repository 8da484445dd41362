"""``enarx-pkg secret add|remove|list`` and ``enarx-pkg version bump``: over :mod:`enarx_pkg.manifest.edit`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from enarx_pkg._cli.common import info, print_json

secret_app = typer.Typer(add_completion=False, rich_markup_mode=None, no_args_is_help=True)
version_app = typer.Typer(add_completion=False, rich_markup_mode=None, no_args_is_help=True)

Dir = Annotated[Path, typer.Option("--dir", metavar="DIR",
                                   help="Project directory holding Enarx.toml (or the file itself).")]
PosDir = Annotated[Path | None, typer.Argument(metavar="DIR", show_default=False,
                                               help="The project directory, as with build and run (or --dir).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _project(positional: Path | None, option: Path) -> Path:
    """DIR given either way, like every other command's positional DIR; both at once must agree."""
    from enarx_pkg.errors import UsageError

    if positional is None:
        return option
    if option != Path(".") and option != positional:
        raise UsageError(f"two project directories: {positional} and --dir {option}", hint="give one of them")
    return positional


@secret_app.callback()
def secret_group() -> None:
    """Declare the secrets a workload needs in Enarx.toml [secrets].

    Only WHERE each secret comes from is written (an environment variable or a file on the deployer's
    machine); there is no way to give a value. `enarx-pkg deploy` reads the values at deploy time and
    seals them to the attested keep.
    """


@secret_app.command("add")
def add(
    name: Annotated[str, typer.Argument(metavar="NAME",
                                                  help="Secret name (letters, digits, '_'), e.g. DB_PASSWORD.")],
    env: Annotated[str | None, typer.Option(
        "--env", metavar="VAR", help="The deployer reads the value from this environment variable.")] = None,
    file: Annotated[str | None, typer.Option(
        "--file", metavar="PATH", help="The deployer reads the value from this file (on the deployer).")] = None,
    mount: Annotated[str | None, typer.Option("--mount", metavar="GUEST_PATH",
                                              help="Give it to the workload as a file at this absolute path "
                                                   "instead of an environment variable.")] = None,
    project: PosDir = None,
    directory: Dir = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Replace a secret of that name.")] = False,
    as_json: AsJson = False,
) -> None:
    """Declare secret NAME, read by the deployer at deploy time from --env VAR or --file PATH (never a value)."""
    from enarx_pkg.manifest import edit

    edited = edit.add_secret(_project(project, directory), name, env=env, file=file, mount=mount, force=force)
    if as_json:
        print_json({"path": str(edited.path), "name": name, "source": "env" if env is not None else "file",
                    "ref": env if env is not None else file, "mount": mount})
        return
    source = f"env {env}" if env is not None else f"file {file}"
    info(f"{edited.path}: secret {name} <- {source}" + (f", mounted at {mount}" if mount else ""))


@secret_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Secret name.")],
    project: PosDir = None,
    directory: Dir = Path("."),
    as_json: AsJson = False,
) -> None:
    """Remove secret NAME from [secrets]."""
    from enarx_pkg.manifest import edit

    edited = edit.remove_secret(_project(project, directory), name)
    if as_json:
        print_json({"path": str(edited.path), "name": name, "removed": True})
        return
    info(f"{edited.path}: removed secret {name}")


@secret_app.command("list")
def list_(project: PosDir = None, directory: Dir = Path("."), as_json: AsJson = False) -> None:
    """List declared secrets: each name and where the deployer reads it (no values exist here)."""
    from enarx_pkg.manifest import edit

    secrets = edit.list_secrets(_project(project, directory))
    if as_json:
        print_json({"secrets": [{"name": s.name, "source": s.source, "ref": s.ref, "mount": s.mount}
                                for s in secrets]})
        return
    if not secrets:
        info("no secrets declared")
    width = max((len(s.name) for s in secrets), default=0)
    for s in secrets:
        print(f"{s.name:<{width}}  {s.source} {s.ref}" + (f"  mount {s.mount}" if s.mount else ""))


@version_app.callback()
def version_group() -> None:
    """Change [package] version in Enarx.toml (semantic versioning 2.0)."""


@version_app.command("bump")
def bump(
    target: Annotated[str, typer.Argument(metavar="major|minor|patch|VERSION",
                                          help="Which part to bump, or the exact new version.")],
    project: PosDir = None,
    directory: Dir = Path("."),
    pre: Annotated[str | None, typer.Option("--pre", metavar="LABEL",
                                            help="Make it a pre-release: LABEL.N (rc.1, then rc.2, ...).")] = None,
    as_json: AsJson = False,
) -> None:
    """Bump [package] version and print old -> new; a version only moves forward."""
    from enarx_pkg.manifest import edit

    old, new, edited = edit.bump_version(_project(project, directory), target, pre=pre)
    if as_json:
        print_json({"path": str(edited.path), "old": old, "new": new})
        return
    print(f"{edited.path}: {old} → {new}")
