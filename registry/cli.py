"""``enarx-registry``: the same commands as ``enarx-pkg registry`` (a shortcut for server hosts)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from enarx_pkg._cli.main import main as enarx_main

    return enarx_main(["registry", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
