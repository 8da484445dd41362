"""``publish`` and ``pull`` without typer: their bodies, and a parser for their plain command lines.

Building typer's command and its pydantic option adapters costs ~0.15 s a start, a tenth of a
256 MiB push. So :func:`enarx_pkg._cli.main.main` hands a command line this parser fully
understands straight to :func:`publish` / :func:`pull`; anything else (``--help``, an unknown or
malformed option, a value that looks like an option, a missing one) goes through typer, so help and
usage errors come out as before. The typer commands in :mod:`enarx_pkg._cli.transfer` call the same
two functions, and a test checks both routes hand them the same arguments.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from enarx_pkg._cli.common import info, is_terminal, print_json, warn

# option -> (keyword, kind): "str" takes a value, "list" a repeatable value, True/False a flag's value
_Spec = dict[str, tuple[str, Any]]
_PLAIN_HTTP: _Spec = {"--plain-http": ("plain_http", True), "--https": ("plain_http", False),
                      "--json": ("as_json", True)}
PUBLISH: _Spec = {
    "--registry": ("registry", "str"), "--repository": ("repository", "str"), "--tag": ("tag", "str"),
    "--mount-from": ("mount_from", "str"), "--encrypt": ("encrypt", True),
    "--recipient": ("recipient", "list"), "--sign-key": ("sign_key", "str"), **_PLAIN_HTTP,
}
PULL: _Spec = {"--output": ("output", "str"), "-o": ("output", "str"), **_PLAIN_HTTP}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "publish": {"registry": None, "repository": None, "tag": None, "mount_from": None, "encrypt": False,
                "recipient": [], "sign_key": None, "plain_http": None, "as_json": False},
    "pull": {"output": None, "plain_http": None, "as_json": False},
}
_PATHS = {"source", "sign_key", "output"}


def parse(command: str, words: list[str]) -> dict[str, Any] | None:
    """The keyword arguments typer would pass for ``words``, or ``None`` to let typer handle them."""
    spec = PUBLISH if command == "publish" else PULL
    opts, positional = dict(_DEFAULTS[command]), []
    words = list(words)
    while words:
        word = words.pop(0)
        if word == "--":
            positional += words
            break
        if not word.startswith("-") or word == "-":
            positional.append(word)
            continue
        name, eq, value = word.partition("=")
        if name not in spec or not _take(spec[name], opts, value if eq else None, words):
            return None
    return _finish(command, opts, positional)


def _take(spec: tuple[str, Any], opts: dict[str, Any], inline: str | None, words: list[str]) -> bool:
    key, kind = spec
    if isinstance(kind, bool):
        opts[key] = kind
        return inline is None
    if inline is None:
        if not words:
            return False
        inline = words.pop(0)
    if not inline or inline.startswith("-"):
        return False  # typer decides what an empty or option-like value means
    if kind == "list":
        opts[key] = [*opts[key], Path(inline)]
    else:
        opts[key] = Path(inline) if key in _PATHS else inline
    return True


def _finish(command: str, opts: dict[str, Any], positional: list[str]) -> dict[str, Any] | None:
    if command == "publish" and len(positional) <= 1:
        opts["source"] = Path(positional[0] if positional else ".")
    elif command == "pull" and len(positional) == 1 and positional[0]:
        opts["ref"] = positional[0]
    else:
        return None
    return opts


def run(command: str, opts: dict[str, Any]) -> int:
    """Run a parsed ``publish``/``pull``; errors propagate to ``main`` as they do from typer."""
    (publish if command == "publish" else pull)(**opts)
    return 0


def publish(source: Path, registry: str | None, repository: str | None, tag: str | None,
            mount_from: str | None, encrypt: bool, recipient: list[Path], sign_key: Path | None,
            plain_http: bool | None, as_json: bool) -> None:
    """Body of ``enarx-pkg publish``."""
    from enarx_pkg import publish as pub
    from enarx_pkg.errors import UsageError
    from enarx_pkg.package import locate_local

    if encrypt != bool(recipient):
        raise UsageError("--encrypt needs at least one --recipient (and --recipient needs --encrypt)")
    if sign_key and not encrypt:
        raise UsageError("--sign-key goes with --encrypt; sign a plaintext package with `enarx-pkg sign`")
    key = None
    if sign_key:
        from enarx_pkg import keys

        key = keys.load_private(sign_key)
    elif encrypt:
        warn("the encrypted manifest is a new package and is not signed: `deploy` will refuse it "
             "(pass --sign-key, or run `enarx-pkg encrypt`, `sign`, then `publish`)")
    found = locate_local(str(source), command="publish")
    toml = found.project / "Enarx.toml" if found.project else None
    target = pub.target_from(registry, repository, tag, toml, plain_http=plain_http)
    with _progress(as_json) as progress:
        result = pub.publish(found.layout, target, progress=progress, mount_from=mount_from,
                             source_ref=found.digest, recipients=tuple(recipient), sign_key=key)
    if as_json:
        print_json(result.to_json())
    else:
        info(f"Published {result.reference.with_tag(None)} (tag {result.tag or '-'}; "
             f"{result.pushed} blobs pushed, {result.skipped} skipped, {result.mounted} mounted; "
             f"{len(result.referrers)} signature(s))")
        print(result.reference.with_tag(None))


def pull(ref: str, output: Path | None, plain_http: bool | None, as_json: bool) -> None:
    """Body of ``enarx-pkg pull``."""
    from enarx_pkg import pull as pl
    from enarx_pkg.oci import reference

    parsed = reference.parse(ref, plain_http=plain_http)
    dest = output or Path(parsed.repository.rsplit("/", 1)[-1])
    with _progress(as_json) as progress:
        result = pl.pull(parsed, dest, progress=progress)
    if as_json:
        print_json({"reference": str(result.reference), "digest": result.manifest_digest, "layout": str(dest),
                    "blobs": result.blobs, "bytes": result.bytes, "referrers": list(result.referrers)})
    else:
        info(f"Pulled {result.reference} into {dest} ({result.blobs} blobs, {result.bytes} bytes, "
             f"{len(result.referrers)} signature(s))")


@contextlib.contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[str, int], Callable[[int], None]] | None]:
    """Rich progress bars when a person watches the terminal; nothing in CI, pipes or --json."""
    if quiet or not is_terminal():
        yield None
        return
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    with Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(),
                  transient=True) as bars:
        def factory(label: str, total: int) -> Callable[[int], None]:
            task = bars.add_task(label, total=total)

            def update(done: int, _task: Any = task) -> None:
                bars.update(_task, completed=done)
            return update
        yield factory
