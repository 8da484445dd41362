"""``enarx-pkg run`` without typer: the root CLI dispatches here directly for plain invocations.

Running a small workload takes ~70 ms in bare wasmtime-py; typer (and the pydantic it brings for
option coercion) would add ~150 ms to every run. So the words after ``run`` are parsed here, and
``main`` sends ``run`` straight to :func:`run` unless the words ask for something typer must do
(``--help``, unknown options before the target); ``_cli.build.run_app`` calls the same function.
"""

from __future__ import annotations

import sys

NO_TEE = "running locally without a TEE: no attestation, no confidentiality"


def plain(words: list[str]) -> bool:
    """True when typer would hand ``words`` to :func:`run` unchanged except for a leading ``--``.

    click stops option parsing at the first positional word or ``--`` (``allow_interspersed_args``
    is off) and keeps unknown options (``--no-cache``); anything else before that point (``-h``,
    ``--help``, other options) goes through typer so help and usage errors come out as before.
    """
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word == "--" or word == "-" or not word.startswith("-"):
            return True
        if word == "--secret":
            skip = True
        elif word != "--no-cache" and not word.startswith("--secret="):
            return False
    return True


def click_args(words: list[str]) -> list[str]:
    """What click leaves in ``ctx.args`` for ``plain`` words: the first ``--`` before any target goes."""
    skip = False
    for i, word in enumerate(words):
        if skip:
            skip = False
            continue
        if word == "--":
            return words[:i] + words[i + 1:]
        if word == "--secret":
            skip = True
        elif word != "--no-cache" and not word.startswith("--secret="):
            break
    return list(words)


def run(words: list[str]) -> int:
    """Parse ``[PACKAGE] [--no-cache] [--secret NAME=env:VAR|file:PATH]... [-- ARGS...]``, say there
    is no TEE, run, return its status."""
    from enarx_pkg import runtime

    target, argv, cache, secrets = options(list(words))
    print(NO_TEE, file=sys.stderr)
    sys.stderr.flush()
    return runtime.run_path(target, argv, cache=cache, secrets=secrets)


def options(words: list[str]) -> tuple[str, tuple[str, ...] | None, bool, tuple[str, ...]]:
    """(target, workload args or None for the Enarx.toml ones, use the compiled cache, --secret values)."""
    from enarx_pkg.errors import UsageError

    cache, target, rest, secrets = True, ".", None, []
    while words:
        word = words.pop(0)
        if word == "--":
            rest = tuple(words)
            break
        if word == "--no-cache":
            cache = False
        elif word == "--secret" or word.startswith("--secret="):
            if word == "--secret" and not words:
                raise UsageError("run: --secret needs NAME=env:VARIABLE or NAME=file:PATH")
            secrets.append(words.pop(0) if word == "--secret" else word.partition("=")[2])
        elif word.startswith("-"):
            raise UsageError(f"run: unknown option {word!r} (workload arguments go after --)")
        elif target == "." and rest is None:
            target = word
        else:
            rest = (word, *words)
            break
    return target, rest, cache, tuple(secrets)
