"""The sim keep's measurement: SHA-384 over the keep runtime's own code and the wasmtime version.

Like an SNP launch measurement it changes whenever the code that handles the deployer's secrets
changes, so a policy can pin it. Files are hashed in a stable order with their relative names.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent
# everything the keep runs between receiving the envelope and running the workload
MEASURED = ("keep", "runtime.py", "encrypt.py", "pull.py", "oci", "package.py", "manifest",
            "_internal/seal.py", "_internal/digest.py", "_internal/canonical.py",
            "network.py", "_internal/socktable.py", "_internal/wasip1_net.py")


def _files() -> list[Path]:
    out: list[Path] = []
    for name in MEASURED:
        path = PACKAGE / name
        if path.is_dir():
            out += sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
        elif path.is_file():
            out.append(path)
    return sorted(set(out), key=lambda p: p.relative_to(PACKAGE).as_posix())


@cache
def measurement() -> bytes:
    """48 bytes: SHA-384(for each file: name ‖ NUL ‖ SHA-384(contents)) ‖ wasmtime version."""
    from importlib.metadata import version

    h = hashlib.sha384(b"enarx-pkg/sim-measurement/v1\0")
    for path in _files():
        h.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0")
        h.update(hashlib.sha384(path.read_bytes()).digest())
    h.update(b"wasmtime\0" + version("wasmtime").encode())
    return h.digest()
