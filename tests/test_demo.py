"""`make demo` as the README shows it: the main job end to end, and the same steps as the README's real output."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def test_make_demo_runs_the_steps_the_readme_shows() -> None:
    if not (REPO / ".venv" / "bin" / "enarx-pkg").exists():
        pytest.skip("make demo runs the CLI of the repository's .venv (make venv)")
    demo = subprocess.run(["bash", "scripts/demo.sh"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    out = demo.stdout + demo.stderr
    assert "Hello from WAT in an Enarx keep!" in out and "== workload exit status: 0" in out
    assert '"GET /' not in out  # the host agent's banner only, not its access log
    block = README[README.index("### What `make demo` does"):]
    block = block[block.index("```text\n"):block.index("\n```", block.index("```text\n") + 1)]
    steps = re.compile(r"^== \d\. [a-z ]+", re.M)
    assert steps.findall(block) == steps.findall(out)
