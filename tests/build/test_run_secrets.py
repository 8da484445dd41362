"""`run` honours the package's [secrets] and `--secret` as `deploy` does, reading values on this machine."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from enarx_pkg._cli.main import main

PROBE = Path(__file__).resolve().parents[1] / "deploy" / "workload"


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The deploy tests' probe (prints its env), declaring PROBE_SECRET = { env = "PROBE_SECRET_SOURCE" }."""
    root = tmp_path_factory.mktemp("probe") / "probe"
    shutil.copytree(PROBE, root, ignore=shutil.ignore_patterns("target"))
    assert main(["build", str(root)]) == 0
    return root


def test_declared_env_secret_reaches_the_workload(probe: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", "from-the-environment-42")
    capfd.readouterr()
    assert main(["run", str(probe), "--", "a"]) == 1
    out, err = capfd.readouterr()
    assert "PROBE_SECRET=from-the-environment-42" in out and "from-the-environment-42" not in err


def test_secret_option_overrides_by_name(probe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("PROBE_SECRET_SOURCE", raising=False)
    (tmp_path / "s.txt").write_text("from-a-file-17")
    capfd.readouterr()
    assert main(["run", "--secret", f"PROBE_SECRET=file:{tmp_path / 's.txt'}", str(probe)]) == 1
    out, _ = capfd.readouterr()
    assert "PROBE_SECRET=from-a-file-17" in out


def test_missing_secret_source_names_it_not_a_value(probe: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("PROBE_SECRET_SOURCE", raising=False)
    capfd.readouterr()
    assert main(["run", str(probe)]) == 65
    _, err = capfd.readouterr()
    assert "secret PROBE_SECRET: environment variable PROBE_SECRET_SOURCE is not set" in err


def test_bad_secret_option_is_a_usage_error(probe: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--secret", "PROBE_SECRET=hunter2", str(probe)]) == 2
    assert "NAME=env:VARIABLE or NAME=file:PATH" in capfd.readouterr().err


def test_run_help_lists_its_options(capfd: pytest.CaptureFixture[str]) -> None:
    main(["run", "--help"])
    out = " ".join(capfd.readouterr().out.split())  # help text is wrapped to the terminal
    assert "--no-cache" in out and "--secret NAME=SOURCE" in out and "env:VARIABLE or file:PATH" in out
    assert "After --: replace the Enarx.toml args" in out
