"""A frozen host for build commands that snapshot a running program (``[build] deterministic``).

componentize-py runs CPython inside the component once at build time and stores its heap; the
host's clock, entropy and file metadata that run saw end up in the module. ``frozen_host.c``,
preloaded into the command, makes them the same on every run (see its header). It is compiled once
per machine with the zig that builds the C examples and kept in the user cache under the digest of
its source; a cached library is loaded only if it is ours and writable by nobody else.
"""

from __future__ import annotations

import hashlib
import os
import platform
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from enarx_pkg._internal.cachedir import user_cache_dir
from enarx_pkg.errors import BuildError

SOURCE = Path(__file__).with_name("frozen_host.c")
COMPILE_TIMEOUT_S = 600
# The programs whose output is a snapshot of a run; their builds are frozen unless Enarx.toml says no.
SNAPSHOTTERS = frozenset({"componentize-py"})


def unsupported() -> str | None:
    """Why this machine cannot freeze a build command (None: it can)."""
    if sys.platform != "linux":
        return f"needs Linux (this is {sys.platform})"
    if platform.machine() not in ("x86_64", "AMD64"):
        return f"needs x86-64 (this is {platform.machine()})"
    return None


def wanted(setting: bool | None, command: tuple[str, ...] | None) -> bool:
    """Whether to freeze a build: only a command is ever frozen (never a built-in recipe); then what
    Enarx.toml says, else yes for a known snapshotting command."""
    if command is None:
        return False
    if setting is not None:
        return setting
    return Path(command[0]).name in SNAPSHOTTERS and unsupported() is None


def environment(root: Path, env: Mapping[str, str]) -> dict[str, str]:
    """The variables that freeze a command run in project ``root`` (compiling the library if needed).

    A library the user preloads already (``env``) stays, after ours.
    """
    reason = unsupported()
    if reason:
        raise BuildError(f"[build] deterministic = true {reason}",
                         hint="set [build] deterministic = false to build without it (the module then "
                              "differs from build to build)")
    lib = str(library())
    if any(c in lib for c in " :\t\n"):
        raise BuildError(f"the frozen-host library's path {lib!r} has a space or ':', which LD_PRELOAD cannot carry",
                         hint="set ENARX_PKG_CACHE_DIR to a path without them")
    preload = " ".join(filter(None, [lib, env.get("LD_PRELOAD")]))
    return {"LD_PRELOAD": preload, "ENARX_FREEZE_ROOT": str(root.resolve())}


def library() -> Path:
    """The compiled library for this source, from the cache or freshly built into it."""
    source = SOURCE.read_bytes()
    cache = user_cache_dir("frozen-host")
    target = cache / f"frozen-host-{hashlib.sha256(source).hexdigest()[:16]}.so"
    if _trusted(target):
        return target
    partial = cache / f".{target.name}.{os.getpid()}.partial"
    argv = [sys.executable, "-m", "ziglang", "cc", "-target", "x86_64-linux-gnu.2.17", "-shared", "-fPIC",
            "-O2", "-o", str(partial), str(SOURCE)]
    env = {**os.environ, "ZIG_GLOBAL_CACHE_DIR": os.environ.get("ZIG_GLOBAL_CACHE_DIR") or str(user_cache_dir("zig"))}
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, timeout=COMPILE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"cannot compile the frozen-host library: {exc}") from None
    if proc.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        tail = proc.stderr.decode("utf-8", "replace")[-2000:].rstrip()
        raise BuildError(f"cannot compile the frozen-host library ({SOURCE.name}):\n{tail}")
    partial.chmod(0o700)
    os.replace(partial, target)
    return target


class Watch:
    """What a build command's run says about the frozen host (a no-op for a command that is not frozen).

    The library writes "frozen" to the pipe whose write end is :attr:`env`'s ``ENARX_FREEZE_REPORT_FD``
    once its filter is in place; :meth:`check` refuses a command that never did (a static binary
    ignores LD_PRELOAD) and names the SIGSYS of a program the command started.
    """

    def __init__(self, frozen: bool) -> None:
        self._read, self._write = os.pipe() if frozen else (-1, -1)
        self.env = {"ENARX_FREEZE_REPORT_FD": str(self._write)} if frozen else {}
        self.fds = (self._write,) if frozen else ()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *_exc: object) -> None:
        for fd in (self._read, self._write):
            if fd >= 0:
                os.close(fd)
        self._read = self._write = -1

    def check(self, returncode: int, shown: str) -> None:
        """After the command ended: raise :class:`BuildError` if the frozen host did not hold."""
        if self._read < 0:
            return
        os.close(self._write)
        self._write = -1
        with os.fdopen(self._read, "rb") as reports:
            self._read = -1
            frozen = b"frozen\n" in reports.read(4096)
        if returncode in (-signal.SIGSYS, 128 + signal.SIGSYS):
            raise BuildError(f"build command killed by SIGSYS on the frozen host: {shown}\n"
                             "it started another program (a wrapper script, a shell), which a frozen command "
                             "cannot do", hint="give the real program (e.g. the venv's componentize-py) in "
                             "[build] command, or set [build] deterministic = false")
        if returncode == 0 and not frozen:
            raise BuildError("the build command ran without the frozen host: it never loaded the library "
                             "(a statically linked program ignores LD_PRELOAD)",
                             hint="run it from a dynamically linked program, or set [build] deterministic = false")


def _trusted(path: Path) -> bool:
    try:
        st, parent = path.stat(), path.parent.stat()
    except OSError:
        return False
    return all(s.st_uid == os.getuid() and not s.st_mode & 0o022 for s in (st, parent))
