"""`deploy --json`: every failure is the documented `{"error": {"kind", "message", "exit_code"}}` on stdout.

Before any host (usage, a missing file, a refused signature) the document is that object alone; once
hosts were tried, the report carries one per failed host row and the first one at the top, with its host.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from enarx_pkg._cli.main import main
from tests.conftest import free_port
from tests.deploy.conftest import SECRET, Published


def _json(capfd: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], str]:
    out, err = capfd.readouterr()
    return json.loads(out), err


def _base(pub: Published, host, policy: Path) -> list[str]:  # type: ignore[no-untyped-def]
    return ["deploy", pub.plain, "--host-token-file", str(host.token_file), "--policy", str(policy),
            "--key", str(pub.signer_pub), "--insecure-sim", "--json"]


def _shape(error: dict[str, Any], kind: str, code: int) -> None:
    assert {"kind", "message", "exit_code"} <= set(error) and (error["kind"], error["exit_code"]) == (kind, code)


def test_usage_error(published, sim_host, policy_for, capfd) -> None:
    code = main(_base(published, sim_host, policy_for(sim_host)))  # no --host
    doc, err = _json(capfd)
    assert code == 2 and doc == {"error": {"kind": "UsageError", "message": "Missing option '--host'.",
                                           "exit_code": 2}}
    assert "Missing option '--host'" in err


def test_missing_key_file(published, sim_host, policy_for, tmp_path, capfd) -> None:
    args = _base(published, sim_host, policy_for(sim_host))
    args[args.index("--key") + 1] = str(tmp_path / "nope.pub")
    code = main([*args, "--host", sim_host.url])
    doc, _ = _json(capfd)
    assert code == 66
    _shape(doc["error"], "NotFoundError", 66)
    assert doc["error"]["message"] == f"--key {tmp_path / 'nope.pub'}: no such file"


def test_signature_refused_before_any_host(published, sim_host, policy_for, capfd) -> None:
    args = _base(published, sim_host, policy_for(sim_host))
    args[args.index("--key") + 1] = str(published.other_pub)
    code = main([*args, "--host", sim_host.url])
    doc, _ = _json(capfd)
    assert code == 77 and set(doc) == {"error"}
    _shape(doc["error"], "VerificationError", 77)


def test_one_host_unreachable_one_refused_by_policy(published, sim_host, policy_for, monkeypatch, capfd) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    down = f"http://127.0.0.1:{free_port()}"
    strict = policy_for(sim_host, measurements=["00" * 48])
    code = main([*_base(published, sim_host, strict), "--host", down, "--host", sim_host.url])
    doc, err = _json(capfd)
    assert code == 69  # the first failure's code
    unreachable, refused = doc["hosts"]
    _shape(unreachable["error"], "TransportError", 69)
    assert "connection refused" in unreachable["error"]["message"] and unreachable["exit_code"] == 69
    _shape(refused["error"], "AttestationError", 78)
    assert "refused by the policy" in refused["error"]["message"] and refused["status"] is None
    assert doc["error"] == unreachable["error"] | {"host": down}
    assert f"{down}: error: " in err and f"{sim_host.url}: error: " in err  # said on stderr too
    assert SECRET not in err + json.dumps(doc)


def test_success_has_a_null_error(published, sim_host, policy_for, monkeypatch, capfd) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    code = main([*_base(published, sim_host, policy_for(sim_host)), "--host", sim_host.url])
    doc, _ = _json(capfd)
    assert code == 1 and doc["error"] is None and doc["hosts"][0]["error"] is None  # the probe's argc - 1
