"""Run every benchmark, one after the other (each prints its medians and ratios vs its peer).

    .venv/bin/python bench/run_all.py [NAME ...]    # default: all of them

Each bench is also runnable alone: `.venv/bin/python bench/NAME.py --help`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["cli_startup", "build", "run", "verify", "attest", "tls", "transfer", "registry", "deploy", "frozen_build"]


def main(argv: list[str]) -> int:
    names = argv or ORDER
    failed = []
    for name in names:
        print(f"\n===== bench/{name}.py =====", flush=True)
        start = time.monotonic()
        rc = subprocess.call([sys.executable, str(HERE / f"{name}.py")])
        print(f"----- bench/{name}.py: exit {rc} in {time.monotonic() - start:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
