"""The release-pipeline example stays in step with the real CLI and policy schema."""

from __future__ import annotations

import re
import tomllib

import pytest

from enarx_pkg._cli.main import main
from enarx_pkg.attestation.policy import Policy
from tests.conftest import REPO

CI = REPO / "examples" / "ci"


def test_workflow_parses_and_uses_only_real_deploy_flags(capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # so rich does not abbreviate long option names
    yaml = pytest.importorskip("yaml")
    text = (CI / "release.yml").read_text()
    flow = yaml.safe_load(text)
    assert flow["jobs"]["build-sign-publish"]["permissions"]["id-token"] == "write"
    main(["deploy", "--help"])
    help_text = capsys.readouterr().out
    deploy_step = next(s["run"] for s in flow["jobs"]["deploy"]["steps"] if "enarx-pkg deploy" in s.get("run", ""))
    for flag in set(re.findall(r"--[a-z-]+", deploy_step)):
        assert flag in help_text, f"{flag} is not a deploy option"


def test_policy_example_is_valid_once_the_measurement_is_filled_in() -> None:
    data = tomllib.loads((CI / "policy.toml").read_text())
    data["snp"]["measurements"] = ["00" * 48]
    assert Policy.from_mapping(data, "examples/ci/policy.toml").tees == ("snp",)
