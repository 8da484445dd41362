"""``enarx-pkg run``: what both ways in share, and the way in that skips typer.

The options of ``run`` are declared once, on the typer command (``_cli.build.run``). An invocation
that gives none (``run``, ``run PACKAGE``, ``run PACKAGE -- ARGS...``, the common case) holds only
the two positional arguments, which ``main`` binds here as click would and runs without importing
typer: typer costs about 30 ms a start, half of what the wasmtime-py script that ``bench/run.py``
compares against takes in all. Everything else (``--no-cache``, ``--secret``, ``--help``, an unknown
option) goes through typer.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from types import ModuleType

NO_TEE = "running locally without a TEE: no attestation, no confidentiality"


def no_options(words: Sequence[str]) -> bool:
    """True when click would read no option in ``words``: ``run`` parses options only before the
    first positional word (``allow_interspersed_args`` off) and none after a leading ``--``."""
    return not words or words[0] in ("--", "-") or not words[0].startswith("-")


def positionals(words: Sequence[str]) -> tuple[str, list[str]]:
    """(PACKAGE, ARGS) as click binds option-free ``words``: a leading ``--`` ends the (absent) options."""
    rest = list(words[1:] if words[:1] == ["--"] else words)
    return (rest[0] if rest else "."), rest[1:]


def workload_args(args: Sequence[str] | None) -> tuple[str, ...] | None:
    """ARGS as the workload gets them: None (the Enarx.toml ``args``) when none were given; the words
    after a ``--`` otherwise (click keeps that ``--`` once a positional word ended option parsing)."""
    if not args:
        return None
    return tuple(args[1:] if args[0] == "--" else args)


def run(package: str, args: Sequence[str] | None, *, cache: bool = True, secrets: Sequence[str] = (),
        tls12: bool = False) -> int:
    """Run ``package`` with ``args`` (see :func:`workload_args`), saying there is no TEE; return its status."""
    runtime = _runtime()
    return int(runtime.run_path(package, workload_args(args), cache=cache, secrets=tuple(secrets), tls12=tls12,
                                announce=_no_tee))


def _no_tee() -> None:
    """Said once the package is found and checked: a name that is wrong gets its error alone."""
    print(NO_TEE, file=sys.stderr)
    sys.stderr.flush()


def _runtime() -> ModuleType:
    """:mod:`enarx_pkg.runtime` and what a run needs, loaded as :mod:`enarx_pkg._cli.startup` says
    (~20 ms of a ~75 ms ``run`` of hello, bench/run.py)."""
    from enarx_pkg._cli.startup import loading

    with loading():
        import wasmtime  # noqa: F401

        from enarx_pkg import manifest, package, runtime  # noqa: F401

        # what a run imports on its way (package lookup, Enarx.toml check, compiled-module cache)
        from enarx_pkg._internal import cachedir, compiled, wasmbin  # noqa: F401
        from enarx_pkg.manifest import _fastcheck, _normalise, _positions, _schema  # noqa: F401
    return runtime
