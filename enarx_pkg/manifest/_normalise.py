"""From schema-valid TOML data to the frozen model: Enarx's defaults, both dialects, semantic checks.

Runs only on data the schema accepted, so types are known; what is checked here is what a schema
cannot say (dialect mixing, unique FD names, paths inside the project, exclusive signing options).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from enarx_pkg.manifest._positions import Path as KeyPath
from enarx_pkg.manifest._positions import Positions
from enarx_pkg.manifest._schema import key_path, render
from enarx_pkg.manifest.model import (
    DEFAULT_FILES,
    Build,
    Dir,
    EnarxToml,
    File,
    Keep,
    Package,
    Publish,
    Secret,
    Signing,
    default_connect_name,
)
from enarx_pkg.manifest.problems import Problem

DEFAULT_PORT = 443  # Enarx's default for listen and connect
DEFAULT_ADDR = "::"  # Enarx's default listen address
DEFAULT_PROT = "tls"
LEGACY_KEYS = ("stdin", "stdout", "stderr", "network", "networking")
_KIND_KEYS = {
    "listen": {"kind", "name", "addr", "port", "prot"},
    "connect": {"kind", "name", "host", "port", "prot", "ca"},
}


@dataclass
class Context:
    """Collects problems, each located in the source, instead of stopping at the first."""

    file: str
    positions: Positions
    problems: list[Problem] = field(default_factory=list)

    def add(self, path: KeyPath, message: str, *, expected: str | None = None, key: bool = False,
            suggestion: str | None = None, found: str | None = None) -> None:
        pos = self.positions.of_key(path) if key else self.positions.of_value(path)
        line, col = pos or (None, None)
        self.problems.append(Problem(self.file, line, col, key_path(path), message, found=found,
                                     expected=expected, suggestion=suggestion))


def build_model(doc: dict[str, Any], ctx: Context, path: Path | None) -> EnarxToml:
    """The normalised model of ``doc``; problems found on the way are added to ``ctx``."""
    secrets = _secrets(doc.get("secrets", {}), doc.get("env", {}), ctx)
    files = _files(doc, ctx)
    return EnarxToml(
        path=path,
        args=tuple(doc.get("args", ())),
        env=MappingProxyType(dict(sorted(doc.get("env", {}).items()))),
        files=files,
        steward=doc.get("steward"),
        package=_package(doc["package"]) if "package" in doc else None,
        build=_build(doc["build"], ctx) if "build" in doc else None,
        keep=_keep(doc.get("keep", {}), ctx, service=any(f.kind == "listen" for f in files)),
        attestation=MappingProxyType(_sorted(doc.get("attestation", {}))),
        signing=_signing(doc.get("signing", {}), ctx),
        publish=_publish(doc.get("publish", {})),
        secrets=secrets,
    )


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


# -- files: both dialects -------------------------------------------------------------------------

Entry = tuple[KeyPath, File, bool]  # where it came from, the file, whether its name was given


def _files(doc: dict[str, Any], ctx: Context) -> tuple[File, ...]:
    legacy = [k for k in LEGACY_KEYS if k in doc]
    if "files" in doc and legacy:
        ctx.add((legacy[0],), f"[{legacy[0]}] (older Enarx dialect) mixed with [[files]]", key=True,
                expected="either [[files]] or [stdin]/[stdout]/[stderr]/[network.*], not both")
        return ()
    if "network" in doc and "networking" in doc:
        ctx.add(("networking",), "[networking] repeats [network]", key=True, expected="only [network]")
        return ()
    if "files" in doc:
        entries = [_file(("files", i), raw, ctx) for i, raw in enumerate(doc["files"])]
    elif legacy:
        entries = _legacy(doc, ctx)
    else:
        entries = [((), File(kind, kind), False) for kind in DEFAULT_FILES]
    _check_names(entries, ctx)
    return tuple(file for _, file, _ in entries)


def _file(path: KeyPath, raw: dict[str, Any], ctx: Context) -> Entry:
    kind = raw["kind"]
    allowed = _KIND_KEYS.get(kind, {"kind", "name"})
    for extra in sorted(set(raw) - allowed):
        ctx.add((*path, extra), f"'{extra}' does not apply to a {kind} file", key=True,
                expected="only " + ", ".join(sorted(allowed)))
    name = raw.get("name")
    if kind == "listen":
        file = File(kind, str(name), addr=raw.get("addr", DEFAULT_ADDR), port=raw.get("port", DEFAULT_PORT),
                    prot=raw.get("prot", DEFAULT_PROT))
    elif kind == "connect":
        file = File(kind, name or default_connect_name(raw["host"]), host=raw["host"],
                    port=raw.get("port", DEFAULT_PORT), prot=raw.get("prot", DEFAULT_PROT), ca=raw.get("ca"))
        _check_ca((*path, "ca"), file, ctx)
    else:
        file = File(kind, name or kind)
    return path, file, name is not None


def _legacy(doc: dict[str, Any], ctx: Context) -> list[Entry]:
    entries: list[Entry] = []
    for fd in ("stdin", "stdout", "stderr"):
        host = doc.get(fd, {}).get("kind", "host") == "host"
        entries.append(((fd,), File(fd, fd) if host else File("null", "null"), False))
    base = "networking" if "networking" in doc else "network"
    network = doc.get(base, {})
    incoming, outgoing = network.get("incoming", {}), network.get("outgoing", {})
    for key, spec in incoming.items():
        if key != "default":
            entries.append(_incoming((base, "incoming", key), key, spec, _prot(incoming), ctx))
    for key, spec in outgoing.items():
        if key != "default":
            entries.append(_outgoing((base, "outgoing", key), key, spec, _prot(outgoing), ctx))
    return entries


def _check_ca(path: KeyPath, file: File, ctx: Context) -> None:
    """``ca`` on a connect file: PEM certificates, and only where TLS is used."""
    if file.ca is None:
        return
    if file.prot != "tls":
        ctx.add(path, "'ca' applies only to a prot = \"tls\" connect file", key=True, expected='prot = "tls"')
        return
    from cryptography import x509

    try:
        x509.load_pem_x509_certificates(file.ca.encode("utf-8"))
    except ValueError:
        ctx.add(path, "'ca' is not PEM certificates", expected="-----BEGIN CERTIFICATE----- ... (inline PEM)")


def _prot(table: dict[str, Any]) -> str:
    """The ``default`` entry of an incoming/outgoing table sets the prot of the others."""
    return str(table.get("default", {}).get("prot", DEFAULT_PROT))


def _incoming(path: KeyPath, key: str, spec: dict[str, Any], prot: str, ctx: Context) -> Entry:
    port = spec.get("port", DEFAULT_PORT)
    if key.isascii() and key.isdigit():  # Enarx's own form: the key is the port number
        port = _port_of(path, key, ctx)
        if "port" in spec and spec["port"] != port:
            ctx.add((*path, "port"), f"port {spec['port']} contradicts the table key {key}",
                    expected=f"port = {key} or no port key")
    file = File("listen", spec.get("name", key), addr=spec.get("addr", DEFAULT_ADDR), port=port,
                prot=spec.get("prot", prot))
    return path, file, True


def _outgoing(path: KeyPath, key: str, spec: dict[str, Any], prot: str, ctx: Context) -> Entry:
    if "host" in spec:  # the key is a name and the table says where to connect
        host, port, name = spec["host"], spec.get("port", DEFAULT_PORT), spec.get("name", key)
    else:  # Enarx's own form: the key is host[:port]
        host, port_text = _split_host(key)
        port = _port_of(path, port_text, ctx) if port_text else spec.get("port", DEFAULT_PORT)
        name = spec.get("name", default_connect_name(host))
    file = File("connect", name, host=host, port=port, prot=spec.get("prot", prot))
    return path, file, "host" in spec or "name" in spec


def _split_host(spec: str) -> tuple[str, str | None]:
    if spec.startswith("["):  # [v6] or [v6]:port
        host, _, rest = spec[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else None
    if spec.count(":") == 1:
        host, _, port = spec.partition(":")
        return host, port
    return spec, None


def _port_of(path: KeyPath, text: str, ctx: Context) -> int:
    port = int(text) if text.isascii() and text.isdigit() else -1
    if not 1 <= port <= 65535:
        ctx.add(path, f"port {render(text, ())} in the table key is out of range", key=True,
                found=render(text, ()), expected="1..65535")
    return port


def _check_names(entries: list[Entry], ctx: Context) -> None:
    first: dict[str, tuple[KeyPath, bool]] = {}
    for path, file, explicit in entries:
        if ":" in file.name and not explicit:
            ctx.add(path, f"the default name {render(file.name, ())} (the host) contains ':'",
                    expected='name = "..." without \':\' (FD_NAMES is \':\'-separated)')
        elif ":" in file.name:
            ctx.add((*path, "name"), f"{render(file.name, ())} contains ':'",
                    expected="a name without ':' (FD_NAMES is ':'-separated)")
        earlier = first.setdefault(file.name, (path, explicit))
        if earlier[0] != path and (explicit or earlier[1]):  # two unnamed connects to one host are Enarx's own
            ctx.add((*path, "name") if explicit else path,
                    f"duplicate file name {render(file.name, ())} (also {key_path(earlier[0]) or 'a default'})",
                    expected="a name no other file has (FD_NAMES must be unambiguous)")


# -- native sections ------------------------------------------------------------------------------


def _package(raw: dict[str, Any]) -> Package:
    return Package(name=raw["name"], version=raw["version"], description=raw.get("description", ""),
                   license=raw.get("license", ""), authors=tuple(raw.get("authors", ())),
                   source=raw.get("source", ""))


def _build(raw: dict[str, Any], ctx: Context) -> Build:
    command, shell, recipe = raw.get("command"), raw.get("shell", False), raw.get("recipe")
    sources = tuple(raw.get("sources", ()))
    if isinstance(command, str) and not shell:
        ctx.add(("build", "command"), "a command string needs shell = true",
                expected='an argv list such as ["make", "app.wasm"], or shell = true to run it with /bin/sh -c')
    if shell and not isinstance(command, str):
        ctx.add(("build", "shell"), "shell = true needs the command as one string",
                expected='command = "make && cp out.wasm app.wasm"')
    if command is None and recipe is None:
        ctx.add(("build",), "nothing says how to build", key=True,
                expected='command = [...] or recipe = "wat", "c", "cpp" or "prebuilt"')
    if command is not None and recipe is not None:
        ctx.add(("build", "recipe"), "both command and recipe given", expected="one of them")
    if raw.get("deterministic") and (shell or command is None):
        ctx.add(("build", "deterministic"), "deterministic = true needs an argv command run without a shell",
                expected="command = [...] with shell = false (a frozen command cannot start other programs)")
    if recipe in ("wat", "c", "cpp") and not sources:
        ctx.add(("build",), f'recipe "{recipe}" needs sources', key=True, expected='sources = ["main.c"]')
    for at, value in [(("build", "output"), raw["output"]), (("build", "workdir"), raw.get("workdir", "."))]:
        _inside(at, value, ctx)
    for i, source in enumerate(sources):
        _inside(("build", "sources", i), source, ctx)
    argv = (command,) if isinstance(command, str) else tuple(command) if command is not None else None
    return Build(output=raw["output"], command=argv, shell=shell, workdir=raw.get("workdir", "."),
                 env=MappingProxyType(dict(sorted(raw.get("env", {}).items()))), recipe=recipe,
                 sources=sources, debug=bool(raw.get("debug", False)), deterministic=raw.get("deterministic"))


def _inside(path: KeyPath, value: str, ctx: Context) -> None:
    """Build paths stay inside the project directory: relative, never climbing out with '..'."""
    depth = 0
    for part in value.replace("\\", "/").split("/"):
        depth += -1 if part == ".." else 0 if part in ("", ".") else 1
        if depth < 0:
            break
    if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value) or depth < 0:
        ctx.add(path, f"{render(value, ())} escapes the project directory", found=render(value, ()),
                expected="a relative path inside the project directory")


def _keep(raw: dict[str, Any], ctx: Context, service: bool) -> Keep:
    """``[keep]``; a service (a workload with a ``listen`` file) has no time limit unless it sets one."""
    defaults = Keep()
    limit = raw.get("time_limit_s", None if service else defaults.time_limit_s)
    if limit is not None and not math.isfinite(limit):
        ctx.add(("keep", "time_limit_s"), f"{limit} is not a finite number", expected="seconds > 0")
    dirs = tuple(Dir(d["host"], d["guest"], d.get("writable", False)) for d in raw.get("dirs", ()))
    guests = Counter(d.guest.rstrip("/") or "/" for d in dirs)
    for i, d in enumerate(dirs):
        if guests[d.guest.rstrip("/") or "/"] > 1:
            ctx.add(("keep", "dirs", i, "guest"), f"{render(d.guest, ())} is preopened twice",
                    expected="each guest path once")
    return Keep(backends=tuple(raw.get("backends", defaults.backends)),
                memory_mb=raw.get("memory_mb", defaults.memory_mb),
                time_limit_s=None if limit is None else float(limit), fuel=raw.get("fuel"), dirs=dirs)


def _signing(raw: dict[str, Any], ctx: Context) -> Signing:
    signing = Signing(**raw)
    keyless = [k for k in ("identity", "identity_regexp", "issuer", "issuer_regexp") if k in raw]
    if signing.key and keyless:
        ctx.add(("signing", keyless[0]), f"'{keyless[0]}' given with 'key'",
                expected="either key = \"cosign.pub\" or a keyless identity + issuer, not both")
    for exact in ("identity", "issuer"):
        if exact in raw and f"{exact}_regexp" in raw:
            ctx.add(("signing", f"{exact}_regexp"), f"both {exact} and {exact}_regexp given",
                    expected="one of them")
    has_identity, has_issuer = ("identity" in raw or "identity_regexp" in raw), (
        "issuer" in raw or "issuer_regexp" in raw)
    if has_identity != has_issuer:
        missing = "issuer" if has_identity else "identity"
        ctx.add(("signing",), f"keyless verification needs {missing} too", key=True,
                expected=f"{missing} = \"...\" or {missing}_regexp = \"...\"")
    for name in ("identity_regexp", "issuer_regexp"):
        try:
            re.compile(raw.get(name, ""))
        except re.error as exc:
            ctx.add(("signing", name), f"is not a valid regular expression ({exc})")
    return signing


def _publish(raw: dict[str, Any]) -> Publish:
    return Publish(registry=raw.get("registry"), repository=raw.get("repository"),
                   encrypt=raw.get("encrypt", False), recipients=tuple(raw.get("recipients", ())))


def _secrets(raw: dict[str, Any], env: dict[str, Any], ctx: Context) -> tuple[Secret, ...]:
    secrets: list[Secret] = []
    for name in sorted(raw):
        spec = raw[name]
        source = "env" if "env" in spec else "file"
        secrets.append(Secret(name, cast(Any, source), spec[source], spec.get("mount")))
        if "mount" not in spec and name in env:
            ctx.add(("secrets", name), f"secret '{name}' would overwrite env.{name}",
                    key=True, expected="a name not in [env], or mount = \"/run/secrets/...\"")
    mounts = Counter(s.mount for s in secrets if s.mount)
    for s in secrets:
        if s.mount and mounts[s.mount] > 1:
            ctx.add(("secrets", s.name, "mount"), f"{render(s.mount, ())} is used by two secrets",
                    expected="one mount path per secret")
    return tuple(secrets)
