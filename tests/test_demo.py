"""`make demo` as the docs show it: the main job end to end, with the steps of the real runs they quote."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import REPO

# the README and docs/deploy.md each quote a real run of it
QUOTED = {"README.md": "### What `make demo` does", "docs/deploy.md": "`make demo` (`scripts/demo.sh`)"}


def test_make_demo_runs_the_steps_the_readme_shows() -> None:
    if not (REPO / ".venv" / "bin" / "enarx-pkg").exists():
        pytest.skip("make demo runs the CLI of the repository's .venv (make venv)")
    demo = subprocess.run(["bash", "scripts/demo.sh"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=600)  # one stream, as on a terminal: the order the docs show
    out = demo.stdout
    assert demo.returncode == 0, out
    assert "Hello from WAT in an Enarx keep!" in out and "== workload exit status: 0" in out
    assert '"GET /' not in out  # the host agent's banner only, not its access log
    steps = re.compile(r"^== \d\. .+$|^Published .+$|^\S+: deploying .+$", re.M)
    shape = [re.sub(r"[0-9a-f]{64}|127\.0\.0\.1:\d+", "X", line) for line in steps.findall(out)]
    for page, heading in QUOTED.items():
        text = (REPO / page).read_text()
        block = text[text.index(heading):]
        block = block[block.index("```"):block.index("\n```", block.index("```") + 3)]
        quoted = [re.sub(r"[0-9a-f]{64}|127\.0\.0\.1:\d+", "X", line) for line in steps.findall(block)]
        assert quoted == shape, page  # the same steps and the same summary lines, up to ports and digests
