"""``enarx-pkg init``: a commented Enarx.toml (tomlkit, so comments survive edits) and a hello world.

The Enarx.toml is built as a tomlkit document rather than from a text template so that later edits
(adding a secret, bumping the version) go through the same library and keep every comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from enarx_pkg.errors import UsageError

Lang = Literal["wat", "c", "cpp", "rust", "go", "python"]
LANGS: tuple[Lang, ...] = ("wat", "c", "cpp", "rust", "go", "python")
_NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")  # as schemas/enarx-toml.schema.json


@dataclass(frozen=True)
class Created:
    """What ``init`` did: the files it wrote and the existing sources it left alone."""

    directory: Path
    name: str
    lang: Lang
    written: tuple[Path, ...]
    kept: tuple[Path, ...]
    notes: tuple[str, ...] = ()  # what the user must still install for ``build`` to work

    def to_json(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "name": self.name, "lang": self.lang,
                "written": [str(p) for p in self.written], "kept": [str(p) for p in self.kept],
                "notes": list(self.notes)}


@dataclass(frozen=True)
class RustToolchain:
    """The cargo and WASI target the rust template builds with, and what is missing, if anything."""

    cargo: str
    target: str
    missing: str | None = None

    @property
    def env(self) -> dict[str, str]:
        """A cargo off PATH must also use its own rustc, not the one PATH would give it."""
        return {} if self.cargo == "cargo" else {"RUSTC": str(Path(self.cargo).with_name("rustc"))}


DEBIAN_CARGO = "/usr/bin/cargo"
GITIGNORE = "# build outputs: enarx-pkg build writes target/oci; toolchains write target/ or build/\ntarget/\nbuild/\n"


def default_name(directory: Path) -> str:
    """A valid package name derived from the directory name ("My App" -> "my-app")."""
    slug = re.sub(r"[^a-z0-9]+", "-", directory.resolve().name.lower()).strip("-")
    return slug if slug and _NAME.match(slug) else "app"


def init_project(directory: Path, *, name: str | None = None, lang: Lang = "wat", force: bool = False) -> Created:
    """Write ``directory/Enarx.toml`` and the hello-world sources for ``lang``."""
    from enarx_pkg._internal.atomic import write_text

    name = name if name is not None else default_name(directory)
    if not _NAME.match(name) or len(name) > 128:
        raise UsageError(f"--name {name!r} is not a valid package name",
                         hint=f"use lowercase letters, digits and '.', '_', '-' between them, e.g. "
                              f"{default_name(Path(name or 'app'))!r}")
    if lang not in LANGS:
        raise UsageError(f"--lang {lang!r} is not supported", hint="one of " + ", ".join(LANGS))
    manifest = directory / "Enarx.toml"
    if manifest.exists() and not force:
        raise UsageError(f"{manifest} already exists; not overwriting it", hint="use --force to replace it")
    directory.mkdir(parents=True, exist_ok=True)
    written, kept = [], []
    rust = rust_toolchain() if lang == "rust" else None
    if not (directory / ".gitignore").exists():  # never replace the user's own, even with --force
        # componentize-py imports app.py to build it, which leaves Python's bytecode cache beside it
        write_text(directory / ".gitignore", GITIGNORE + ("__pycache__/\n" if lang == "python" else ""))
        written.append(directory / ".gitignore")
    for relative, text in _sources(lang, name):
        target = directory / relative
        if target.exists() and not force:
            kept.append(target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text(target, text)
        written.append(target)
    write_text(manifest, enarx_toml(name, lang, rust))
    notes = (rust.missing,) if rust and rust.missing else ()
    return Created(directory, name, lang, (manifest, *written), tuple(kept), notes)


def rust_toolchain() -> RustToolchain:
    """The first cargo (on PATH, then Debian's) whose rustc has a WASI preview 1 standard library.

    rustc >= 1.78 calls the target ``wasm32-wasip1`` (``wasm32-wasi`` went in 1.84); Debian's
    1.6x knows only ``wasm32-wasi``. Without an installed one, the PATH compiler's name is used
    and ``missing`` says what to install.
    """
    import shutil

    found = []
    for cargo in dict.fromkeys(c for c in (shutil.which("cargo"), DEBIAN_CARGO) if c and Path(c).is_file()):
        probe = _probe_rustc(Path(cargo).with_name("rustc"))
        if probe is not None:
            found.append((cargo, *probe))
    on_path = shutil.which("cargo")
    for cargo, target, installed in found:
        if installed:
            return RustToolchain("cargo" if cargo == on_path else cargo, target)
    if not found:
        return RustToolchain("cargo", "wasm32-wasip1", "no Rust toolchain found: install rustup (then "
                             "`rustup target add wasm32-wasip1`) or Debian's cargo and libstd-rust-dev-wasm32")
    cargo, target, _ = found[0]
    how = f"rustup target add {target}" if "/.cargo/" in cargo else "apt-get install libstd-rust-dev-wasm32"
    return RustToolchain("cargo" if cargo == on_path else cargo, target,
                         f"{cargo} has no {target} standard library: run `{how}` before `enarx-pkg build`")


def _probe_rustc(rustc: Path) -> tuple[str, bool] | None:
    """(the WASI p1 target this rustc knows, whether its standard library is installed), or None."""
    import subprocess

    try:
        targets = subprocess.run([str(rustc), "--print", "target-list"], capture_output=True, timeout=30,
                                 check=True, text=True).stdout.split()
        sysroot = subprocess.run([str(rustc), "--print", "sysroot"], capture_output=True, timeout=30,
                                 check=True, text=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    for target in ("wasm32-wasip1", "wasm32-wasi"):
        if target in targets:
            return target, (Path(sysroot) / "lib" / "rustlib" / target).is_dir()
    return None


def _sources(lang: Lang, name: str) -> list[tuple[Path, str]]:
    root = resources.files("enarx_pkg.templates").joinpath(lang)
    greeting_len = len(f"Hello, {name}!\n".encode()).to_bytes(4, "little")
    values = {"__NAME__": name, "__CRATE__": name.replace(".", "-"),
              "__GREETING_LEN__": "".join(f"\\{b:02x}" for b in greeting_len)}
    found: list[tuple[Path, str]] = []
    stack: list[tuple[Any, Path]] = [(root, Path())]
    while stack:
        node, relative = stack.pop()
        for child in node.iterdir():
            if child.is_dir():
                stack.append((child, relative / child.name))
            elif child.name.endswith(".tmpl"):
                text = child.read_text(encoding="utf-8")
                for key, value in values.items():
                    text = text.replace(key, value)
                found.append((relative / child.name.removesuffix(".tmpl"), text))
    return sorted(found)


_BUILD: dict[Lang, dict[str, Any]] = {
    "wat": {"recipe": "wat", "sources": ["hello.wat"]},
    "c": {"recipe": "c", "sources": ["main.c"]},
    "cpp": {"recipe": "cpp", "sources": ["main.cpp"]},
    "rust": {"command": ["cargo", "build", "--offline", "--release", "--target", "{target}"]},
    "go": {"command": ["go", "build", "-o", "build/{name}.wasm", "."],
           "env": {"GOOS": "wasip1", "GOARCH": "wasm", "GOPROXY": "off", "CGO_ENABLED": "0"}},
    "python": {"command": ["componentize-py", "-d", "wit", "-w", "app", "componentize", "app",
                           "-o", "build/{name}.wasm"]},
}
_HOW = {
    "wat": "built-in recipe: wasmtime's wat2wasm, no toolchain needed",
    "c": "built-in recipe: zig cc --target=wasm32-wasi (PyPI ziglang)",
    "cpp": "built-in recipe: zig c++ --target=wasm32-wasi -fno-exceptions (PyPI ziglang)",
    "rust": "cargo with a WASI preview 1 standard library (rustup's wasm32-wasip1, or Debian's "
            "libstd-rust-dev-wasm32 as wasm32-wasi), offline",
    "go": "Go >= 1.21 targets WASI preview 1 as GOOS=wasip1 GOARCH=wasm",
    "python": "componentize-py builds a WASI 0.2 component with CPython inside (wit/ is its world)",
}


def _output(lang: Lang, name: str, rust: RustToolchain | None) -> str:
    if lang == "rust":
        return f"target/{rust.target if rust else 'wasm32-wasip1'}/release/{name.replace('.', '-')}.wasm"
    return f"build/{name}.wasm"


def enarx_toml(name: str, lang: Lang, rust: RustToolchain | None = None) -> str:
    """The commented Enarx.toml ``init`` writes for ``lang``."""
    import tomlkit

    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"Enarx.toml for {name}: a confidential WebAssembly workload."))
    doc.add(tomlkit.comment("Check it with `enarx-pkg validate`; every key is described in Enarx.toml.example."))
    doc.add(tomlkit.nl())
    doc.add("args", tomlkit.array().multiline(False))
    doc["args"].comment("arguments passed to the workload after argv[0]")
    doc.add(tomlkit.nl())
    doc.add("package", _package(name, lang))
    doc.add("build", _build(name, lang, rust))
    doc.add("env", _env())
    doc.add(tomlkit.comment("File descriptors handed to the workload, in order; FD_COUNT and FD_NAMES"))
    doc.add(tomlkit.comment("tell it which is which. Add kind = \"listen\"/\"connect\" for sockets."))
    files = tomlkit.aot()
    for kind in ("stdin", "stdout", "stderr"):
        files.append(tomlkit.table().add("kind", kind))
    doc.add("files", files)
    doc.add("keep", _keep())
    return tomlkit.dumps(doc)


def _package(name: str, lang: Lang) -> Any:
    import tomlkit

    table = tomlkit.table()
    table.add("name", name)
    table["name"].comment("lowercase; used as the OCI repository name by default")
    table.add("version", "0.1.0")
    table["version"].comment("semantic versioning 2.0")
    table.add("description", f"Hello world in {lang}")
    table.add("license", "Apache-2.0")
    table.add(tomlkit.nl())
    return table


def _build(name: str, lang: Lang, rust: RustToolchain | None) -> Any:
    import tomlkit

    table = tomlkit.table()
    table.add(tomlkit.comment(f"How `enarx-pkg build` makes the module: {_HOW[lang]}."))
    for key, value in _BUILD[lang].items():
        if isinstance(value, list):
            value = [v.replace("{name}", name) for v in value]
            if lang == "rust":
                rust = rust or RustToolchain("cargo", "wasm32-wasip1")
                value = [rust.cargo if v == "cargo" else rust.target if v == "{target}" else v for v in value]
        table.add(key, value)
    if rust is not None and rust.env:
        table.add("env", rust.env)
    table.add("output", _output(lang, name, rust))
    table["output"].comment("the .wasm module, relative to this file")
    table.add(tomlkit.nl())
    return table


def _env() -> Any:
    import tomlkit

    table = tomlkit.table()
    table.add(tomlkit.comment("Environment variables for the workload, e.g. GREETING = \"hello\"."))
    table.add(tomlkit.comment("Never put secrets here: declare them under [secrets] instead."))
    table.add(tomlkit.nl())
    return table


def _keep() -> Any:
    import tomlkit

    table = tomlkit.table()
    table.add(tomlkit.comment("Where and how the workload may run."))
    table.add("backends", ["snp", "tdx", "sgx", "cca"])
    table["backends"].comment('add "sim" to deploy to a software keep while developing')
    table.add("memory_mb", 256)
    table.add("time_limit_s", 60)
    return table
