"""Startup time of `enarx-pkg --help` against its floor, `python -c "import typer"`.

Runs both commands alternately (so machine load hits both alike) and prints the medians and the
ratio. Target: ratio <= 1.3. Usage: .venv/bin/python bench/cli_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
COMMANDS = {
    "enarx-pkg --help": [str(BIN / "enarx-pkg"), "--help"],
    'python -c "import typer"': [str(BIN / "python"), "-c", "import typer"],
}


def _once(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for argv in COMMANDS.values():
        _once(argv)  # warm the page cache and .pyc files; not counted
    for _ in range(runs):
        for name, argv in COMMANDS.items():
            times[name].append(_once(argv))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:28} median {value * 1000:7.1f} ms over {runs} runs")
    ours, floor = medians.values()
    print(f"ratio {ours / floor:.2f} (target <= 1.3)")


if __name__ == "__main__":
    main()
