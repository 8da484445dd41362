"""Every `--help` quoted in README.md and docs/ is the real output (scripts/update_help_blocks.py rewrites them)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_quoted_help_is_the_real_help() -> None:
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "update_help_blocks.py"), "--check"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr + "\nrun: .venv/bin/python scripts/update_help_blocks.py"


def test_every_sub_command_help_is_plain_text() -> None:
    # one look across the CLI: no rich boxes in one command and plain text in the next
    for words in (["deploy"], ["publish"], ["attest", "verify"], ["registry", "serve"], ["secret", "add"]):
        out = subprocess.run([sys.executable, "-m", "enarx_pkg", *words, "--help"], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, words
        assert out.stdout.startswith(f"Usage: enarx-pkg {' '.join(words)}"), words
        assert "╭" not in out.stdout, words
        options = [line for line in out.stdout.splitlines() if line.lstrip().startswith("--")]
        assert not any("<list[" in line for line in options), words  # repeatable options name their value
