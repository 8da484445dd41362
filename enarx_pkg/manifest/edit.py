"""Edit an Enarx.toml in place: declare or remove a secret, bump the package version (DESIGN §3).

Every edit goes through :func:`_edit`: read the file once, refuse it if it is invalid already,
change it with tomlkit (so comments, blank lines, key order and quoting elsewhere stay byte for
byte), check that the new text means exactly the old settings plus the one change, validate it with
the real loader, and only then replace the file atomically. A refused edit writes nothing.

Secrets are declared by where the deployer reads them (an environment variable or a file on the
deployer's machine), never by value: ``deploy`` reads them at deploy time and seals them to the
attested keep.
"""

from __future__ import annotations

import copy
import os
import re
import stat
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enarx_pkg import manifest
from enarx_pkg.errors import InputError, NotFoundError, UsageError
from enarx_pkg.manifest.model import EnarxToml, Secret
from enarx_pkg.manifest.problems import ManifestError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # secret names and environment variables (schema)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_REF = 4096  # PATH_MAX; an environment variable name is far shorter


class EditRefused(ManifestError):
    """The edit would leave the Enarx.toml invalid; the problems name lines of the edited text."""

    def __init__(self, what: str, path: Path, error: ManifestError) -> None:
        super().__init__(error.problems)
        self.headline = f"{what} would make {path} invalid; nothing was written"
        self.message = f"{self.headline}: {self.message}"

    def diagnostics(self) -> str:
        return f"error: {self.headline}\n" + super().diagnostics()


@dataclass(frozen=True)
class Edited:
    """An edit that was written: the file and the model before and after it."""

    path: Path
    before: EnarxToml
    after: EnarxToml


# --- secrets -----------------------------------------------------------------------------------


def add_secret(path: Path, name: str, *, env: str | None = None, file: str | None = None,
               mount: str | None = None, force: bool = False) -> Edited:
    """Declare secret ``name`` read from environment variable ``env`` or deployer file ``file``."""
    spec = _secret_spec(name, env, file, mount)

    def change(doc: Any) -> None:
        from tomlkit.items import Table

        table = doc.get("secrets")
        if table is None:
            table = _new_secrets_table(doc)
        elif name in table and not force:
            raise UsageError(f"{_where(path)}: secret {name} is already declared",
                             hint="use --force to replace it, or `enarx-pkg secret remove` first")
        old = table.get(name)
        if isinstance(old, Table):  # a [secrets.NAME] section: rewrite its keys, keep the section
            for key in list(old):
                del old[key]
            old.update(spec)
        else:
            table[name] = _inline(spec)

    def expect(data: dict[str, Any]) -> None:
        data.setdefault("secrets", {})[name] = spec

    return _edit(path, f"adding secret {name}", change, expect)


def remove_secret(path: Path, name: str) -> Edited:
    """Remove secret ``name`` from ``[secrets]`` (the table itself stays, with its comments)."""

    def change(doc: Any) -> None:
        table = doc.get("secrets")
        if table is None or name not in table:
            raise NotFoundError(f"{_where(path)}: no secret named {name}",
                                hint="`enarx-pkg secret list` shows the declared ones")
        del table[name]

    def expect(data: dict[str, Any]) -> None:
        del data["secrets"][name]

    return _edit(path, f"removing secret {name}", change, expect)


def list_secrets(path: Path) -> tuple[Secret, ...]:
    """The declared secrets: names and where the deployer reads them (there are no values here)."""
    return manifest.load(path).secrets


def _secret_spec(name: str, env: str | None, file: str | None, mount: str | None) -> dict[str, str]:
    if not _NAME.match(name):
        raise UsageError(f"{name!r} is not a valid secret name",
                         hint="letters, digits and '_', not starting with a digit, e.g. DB_PASSWORD")
    if (env is None) == (file is None):
        raise UsageError("give exactly one of --env VAR or --file PATH",
                         hint="the deployer reads the secret from there at deploy time; values are never stored")
    spec: dict[str, str] = {}
    if env is not None:
        if not _NAME.match(env) or len(env) > MAX_REF:
            # It may be the value itself, typed by mistake: say what is wrong, never repeat it.
            raise UsageError("--env takes the NAME of an environment variable (letters, digits, '_'); "
                             "what was given is not one, and is not repeated here",
                             hint=f"e.g. --env {name}; the deployer reads ${name} when it deploys")
        spec["env"] = env
    if file is not None:
        if not file or len(file) > MAX_REF or _CONTROL.search(file):
            raise UsageError("--file takes a path on the deployer's machine (no control characters)")
        spec["file"] = file
    if mount is not None:
        if not mount.startswith("/") or len(mount) > MAX_REF or _CONTROL.search(mount):
            raise UsageError(f"--mount {mount!r} is not an absolute guest path", hint="e.g. /run/secrets/token")
        spec["mount"] = mount
    return spec


def _new_secrets_table(doc: Any) -> Any:
    import tomlkit

    text = doc.as_string()
    for _ in range(0 if text.endswith("\n\n") or not text else 2 - text.endswith("\n")):
        doc.add(tomlkit.nl())  # one blank line before the new section, as init writes them
    table = tomlkit.table()
    table.add(tomlkit.comment("Secrets: where the deployer reads each one at deploy time (never the value);"))
    table.add(tomlkit.comment("it seals them to the attested keep. NAME = { env = \"VAR\" } or { file = \"path\" }."))
    doc.add("secrets", table)
    return doc["secrets"]


def _inline(spec: dict[str, str]) -> Any:
    """``{ env = "VAR" }`` with the spacing init and the docs use (tomlkit would write ``{env = ...}``)."""
    import tomlkit

    body = ", ".join(f"{key} = {tomlkit.string(value).as_string()}" for key, value in spec.items())
    return tomlkit.parse(f"x = {{ {body} }}\n")["x"]


# --- version -----------------------------------------------------------------------------------


def bump_version(path: Path, target: str, *, pre: str | None = None) -> tuple[str, str, Edited]:
    """Set ``[package] version`` to the next ``target`` (major/minor/patch) or to ``target`` itself."""
    from enarx_pkg.manifest import semver

    found: dict[str, str] = {}

    def change(doc: Any) -> None:
        import tomlkit
        from tomlkit.items import String, StringType

        package = doc.get("package")
        old = package.get("version") if package is not None else None
        if not isinstance(old, String):
            raise InputError(f"{_where(path)}: there is no [package] version to bump",
                             hint='add [package] with name and version = "0.1.0"')
        found["old"], found["new"] = str(old), semver.next_version(str(old), target, pre)
        literal = old.type in (StringType.SLL, StringType.MLL)  # keep 'single' quotes if used
        package["version"] = tomlkit.string(found["new"], literal=literal)

    def expect(data: dict[str, Any]) -> None:
        data["package"]["version"] = found["new"]

    edited = _edit(path, "the new version", change, expect)
    return found["old"], found["new"], edited


# --- the one way a file is edited --------------------------------------------------------------


def _edit(path: Path, what: str, change: Callable[[Any], None], expect: Callable[[dict[str, Any]], None]) -> Edited:
    path = _manifest_path(path)
    data = _read(path)
    before = manifest.loads(data, path)  # an invalid file is refused as it is, with its problems
    text = data.decode("utf-8")
    doc = _parse(text, path)
    change(doc)
    new_text = _line_endings(doc.as_string(), text)
    _check_meaning(text, new_text, expect, path)
    try:
        after = manifest.loads(new_text, path)
    except ManifestError as exc:
        raise EditRefused(what, path, exc) from None
    _write(path, data, new_text.encode("utf-8"))
    return Edited(path, before, after)


def _manifest_path(path: Path) -> Path:
    path = Path(path)
    return path / manifest.FILENAME if path.is_dir() else path


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(manifest.MAX_BYTES + 1)  # the loader refuses anything larger
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such file", hint="run `enarx-pkg init` to create one") from None
    except IsADirectoryError:
        raise NotFoundError(f"{path}: is a directory") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None


def _parse(text: str, path: Path) -> Any:
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise InputError(f"{path}: tomlkit cannot parse this file to edit it ({exc})",
                         hint="edit it by hand; `enarx-pkg validate` accepts it") from None
    if doc.as_string() != text:  # it would reformat the file: refuse rather than rewrite the user's layout
        raise InputError(f"{path}: tomlkit cannot keep this file's layout exactly", hint="edit it by hand")
    return doc


def _line_endings(new: str, old: str) -> str:
    """tomlkit writes new lines with LF; keep a CRLF file CRLF throughout."""
    if "\r\n" in old and old.count("\n") == old.count("\r\n"):
        return new.replace("\r\n", "\n").replace("\n", "\r\n")
    return new


def _check_meaning(old: str, new: str, expect: Callable[[dict[str, Any]], None], path: Path) -> None:
    """The edited text must mean the old settings plus the one change, nothing else (tomlkit guard)."""
    wanted = copy.deepcopy(tomllib.loads(old))
    expect(wanted)
    try:
        got = tomllib.loads(new)
    except tomllib.TOMLDecodeError:
        got = None
    for data in (wanted, got or {}):  # an empty [secrets] and none at all mean the same
        if data.get("secrets") == {}:
            del data["secrets"]
    if got != wanted:
        raise InputError(f"{path}: could not make this edit without changing other settings; nothing was written",
                         hint="edit the file by hand (this layout is beyond what the editor handles)")


def _write(path: Path, original: bytes, new: bytes) -> None:
    from enarx_pkg._internal.atomic import write_bytes

    target = path.resolve()  # a symlinked Enarx.toml: edit the file it points to, keep the link
    try:
        st = os.stat(target)
        with open(target, "rb") as f:
            if f.read(len(original) + 1) != original:
                raise InputError(f"{path}: changed while it was being edited; nothing was written",
                                 hint="run the command again")
        write_bytes(target, new, mode=stat.S_IMODE(st.st_mode))
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror}") from None


def _where(path: Path) -> str:
    return str(_manifest_path(path))
