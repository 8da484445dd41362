"""The README stays honest: its quoted `--help` is the real one, and it names every command and page."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from enarx_pkg._cli.main import COMMANDS
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def test_readme_help_block_matches_the_real_help() -> None:
    block = re.search(r"```text\n\$ enarx-pkg --help\n(.*?)```", README, re.S)
    assert block, "README lost its `enarx-pkg --help` block"
    env = dict(os.environ, COLUMNS="80")
    real = subprocess.run([sys.executable, "-m", "enarx_pkg", "--help"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert real.returncode == 0
    assert block.group(1).strip() == real.stdout.strip()


def test_readme_starts_with_the_two_commands() -> None:
    head = README[: README.index("## Commands")]
    assert "make demo" in head and "make test" in head


def test_every_command_and_docs_page_is_linked() -> None:
    for name in COMMANDS:
        assert f"`{name}" in README, name
    for page in (REPO / "docs").glob("*.md"):
        assert f"(docs/{page.name})" in README, page.name


def test_every_local_link_exists() -> None:
    for target in re.findall(r"\]\(([^)#:]+)\)", README):
        assert (REPO / target).exists(), target
