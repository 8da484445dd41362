"""Small helpers shared by the CLI commands: output modes and JSON rendering."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def is_terminal() -> bool:
    """Progress bars and colour only when a person is watching (not in CI, not piped)."""
    import os

    return sys.stderr.isatty() and not os.environ.get("CI")


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def info(message: str) -> None:
    """A status line for people, on stderr so stdout stays clean for data (terminal escapes neutralised)."""
    from enarx_pkg._internal.text import printable

    print(printable(message, keep_newlines=True), file=sys.stderr)


def warn(message: str) -> None:
    info(f"WARNING: {message}")


def read_option_file(path: Path, option: str, limit: int = 1 << 20) -> bytes:
    """The bytes of a file an option names: a missing one exits 66 and an unreadable or oversized one 65,
    naming the option (never an internal error, never the file's content)."""
    from enarx_pkg._internal import bounded

    return bounded.file(path, option, limit)


def print_keep(headline: str, endpoints: Any, tls: Any, issuer: str = "") -> None:
    """A detached keep's line (``deploy --detach``, ``keep restart``): its endpoints and TLS certificate."""
    from enarx_pkg._internal.text import printable

    print(headline)
    for e in endpoints:
        print(f"  {printable(e['name'])}: port {e['port']} -> {e['address']}")
    if tls:
        until = printable(tls["not_after"])
        print(f"  tls: certificate sha256:{printable(tls['sha256'])}, valid until {until}{issuer}")

