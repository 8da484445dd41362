"""Small helpers shared by the CLI commands: output modes and JSON rendering."""

from __future__ import annotations

import json
import sys
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
