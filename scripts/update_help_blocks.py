"""Rewrite every `--help` block quoted in README.md and docs/*.md with the real output (80 columns).

    .venv/bin/python scripts/update_help_blocks.py [--check]

A help block is a fenced block whose first line is `$ enarx-pkg ... --help` or `Usage: enarx-pkg ...`.
`tests/test_help_blocks.py` runs this with --check, so quoted help never drifts from the real one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
USAGE = re.compile(r"^\s*Usage: enarx-pkg ((?:[a-z][a-z-]*\s)*)")
COMMAND = re.compile(r"^\$ enarx-pkg ((?:[a-z][a-z-]*\s)*)--help\s*$")


def real_help(words: list[str]) -> str:
    env = dict(os.environ, COLUMNS="80", NO_COLOR="1", TERM="dumb")
    out = subprocess.run([sys.executable, "-m", "enarx_pkg", *words, "--help"], capture_output=True, text=True,
                         env=env, timeout=120, check=True)
    return "\n".join(line.rstrip() for line in out.stdout.strip().splitlines()) + "\n"


def rewrite(text: str) -> str:
    """Replace the body of every help block; fences are paired line by line (any info string)."""
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        out.append(lines[i])
        if not lines[i].startswith("```"):
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
        body = lines[i + 1:end]
        out.extend(_help_block(body) if lines[i] in ("```", "```text") else body)
        if end < len(lines):
            out.append(lines[end])
        i = end + 1
    return "\n".join(out)


def _help_block(body: list[str]) -> list[str]:
    first = next((line for line in body if line.strip()), "")
    cmd = COMMAND.match(first)
    if cmd:
        return [first, *real_help(cmd.group(1).split()).rstrip("\n").split("\n")]
    usage = USAGE.match(first)
    if usage:
        return real_help(usage.group(1).split()).rstrip("\n").split("\n")
    return body


def main(argv: list[str]) -> int:
    stale = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        old = path.read_text()
        new = rewrite(old)
        if new != old:
            stale.append(path.relative_to(REPO))
            if "--check" not in argv:
                path.write_text(new)
    if stale:
        print(("stale help blocks in: " if "--check" in argv else "updated: ") + ", ".join(map(str, stale)))
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
