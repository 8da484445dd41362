"""The sim keep's measurement: SHA-384 over every file the keep process has loaded, computed by the keep.

Like an SNP launch measurement it changes whenever anything that handles the deployer's secrets
changes, so a policy can pin it. The keep measures itself once its imports are done (see
:func:`enarx_pkg.keep.process.serve`), and then refuses any further import (:func:`seal_imports`),
so no code joins the process after the measurement was taken. What is hashed:

- the interpreter binary, and every file mapped into the process (``/proc/self/maps``): libpython,
  libc, the native libraries of wasmtime and cryptography, extension modules;
- the source of every Python module in ``sys.modules``: the keep runs with ``-X pycache_prefix``
  set to :data:`NO_PYCACHE`, a path under a non-directory where no ``.pyc`` can exist, so every
  module is compiled from the source that is measured, never from a host-writable ``__pycache__``;
- the ``.pth`` files of the site directories (run at interpreter start), the data files the keep
  reads (:data:`DATA`), OpenSSL's ``openssl.cnf``, and the system trust roots the keep pinned
  (``_internal/roots.py``: it trusts those bytes, not whatever the host's ``/etc/ssl`` says later).

Each file is named by its module, or by its path below the ``sys.path`` entry that holds it, so the
same code installed elsewhere measures the same. The residual risk (a file swapped between loading
and hashing, a mapped library rewritten in place) is written down in docs/deploy.md.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import os
import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from types import ModuleType

from enarx_pkg._internal import roots
from enarx_pkg.errors import Error, ExitCode
from enarx_pkg.keep.launch import NO_PYCACHE as NO_PYCACHE

DOMAIN = b"enarx-pkg/sim-measurement/v2\0"
DATA = (("enarx_pkg.manifest", "enarx-toml.schema.json"),)  # read by the keep after it was measured
MAPS = Path("/proc/self/maps")


def loaded_files() -> dict[str, str]:
    """``label -> path`` of every file this process has loaded so far (see the module docstring)."""
    files = {"interpreter": os.path.realpath(sys.executable)}
    for name, module in sorted(sys.modules.items()):
        path = _module_file(module)
        if path is not None:
            files["module:" + name] = path
    for path in _mapped():
        files.setdefault("mapped:" + _label(path), path)
    for site_dir in _site_dirs():
        for pth in sorted(Path(site_dir).glob("*.pth")):
            files["pth:" + _label(str(pth))] = str(pth)
    for package, resource in DATA:
        holder = sys.modules.get(package)
        if holder is not None and holder.__file__:
            files[f"data:{package}/{resource}"] = str(Path(holder.__file__).parent / resource)
    if "ssl" in sys.modules:  # OpenSSL read its configuration when ssl was imported
        conf = Path(sys.modules["ssl"].get_default_verify_paths().openssl_cafile).parent / "openssl.cnf"
        if conf.is_file():
            files["data:openssl.cnf"] = str(conf)
    return files


def _held() -> dict[str, bytes]:
    """Bytes the keep read once and holds (not a file it may read again): the pinned trust roots."""
    store = roots.pinned()
    return {} if store is None else {"data:trust-store": store}


@cache
def measurement() -> bytes:
    """48 bytes: SHA-384(domain ‖ for each loaded file, by label: label ‖ NUL ‖ SHA-384(its bytes))."""
    h = hashlib.sha384(DOMAIN)
    digests = {label: _hash_file(path) for label, path in loaded_files().items()}
    digests |= {label: hashlib.sha384(data).digest() for label, data in _held().items()}
    for label, digest in sorted(digests.items()):
        h.update(label.encode("utf-8", "surrogateescape") + b"\0" + digest)
    return h.digest()


class NotMeasured(ImportError, Error):
    """A module the keep did not load before it was measured (an ImportError, so optional imports
    degrade as if it were not installed; an :class:`Error`, so a deployer gets it sealed, typed)."""

    exit_code = ExitCode.INTERNAL

    def __init__(self, module: str) -> None:
        Error.__init__(self, f"the keep was measured; it may not load module {module} afterwards")
        self.name = module


class _Sealed(importlib.abc.MetaPathFinder):
    """Refuses every import not satisfied from ``sys.modules``: its file would not be measured."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> None:
        raise NotMeasured(fullname)


def seal_imports() -> None:
    """From now on, only modules already loaded (and so measured) can be imported."""
    if not any(isinstance(f, _Sealed) for f in sys.meta_path):
        sys.meta_path.insert(0, _Sealed())


def _module_file(module: ModuleType) -> str | None:
    path = getattr(module, "__file__", None)
    return path if isinstance(path, str) and os.path.isfile(path) else None


def _mapped() -> list[str]:
    """Regular files mapped into this process; the keep runs on Linux, elsewhere this is empty."""
    try:
        lines = MAPS.read_text("utf-8", "surrogateescape").splitlines()
    except OSError:
        return []
    out = set()
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[4] != "0" and fields[5].startswith("/") and os.path.isfile(fields[5]):
            out.add(fields[5])
    return sorted(out)


def _site_dirs() -> list[str]:
    """The site directories whose ``.pth`` files this interpreter ran at start-up."""
    import site

    dirs = [*site.getsitepackages(), *([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])]
    return [d for d in dict.fromkeys(dirs) if d in sys.path]


def _label(path: str) -> str:
    """``path`` below its (longest) ``sys.path`` entry, or absolute when it is under none."""
    for entry in sorted((e for e in sys.path if e), key=len, reverse=True):
        if path.startswith(entry.rstrip("/") + "/"):
            return path[len(entry.rstrip("/")) + 1:]
    return path


def _hash_file(path: str) -> bytes:
    st = os.stat(path)
    return _hash_version(path, st.st_size, st.st_mtime_ns, st.st_ino)


@cache
def _hash_version(path: str, size: int, mtime_ns: int, inode: int) -> bytes:
    """SHA-384 of one version of a file (the keep reads every file at least once per start)."""
    h = hashlib.sha384()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()
