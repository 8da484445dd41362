"""A detached keep's state file is used only while it is its owner's alone.

The state file carries the keep's capability and session key, and the recipe ``keep restart`` deploys
again: the signer's public key, the policy path and the secret sources. Someone else who could write
it could swap the signer key (restart would then seal the user's secrets to their package); someone
else who could read it could read and stop the keep. Each test is one such file, handed to the real
CLI pointed at a recording host agent: the command is refused with exit 65, the agent hears nothing,
and the refusal shows neither the capability nor the session key.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enarx_pkg import keeps
from enarx_pkg._cli.main import main
from enarx_pkg._internal import b64
from tests.security.hostile import endless

CAPABILITY = "capability-9f2e71c04ab35d68e1f0"
SESSION_KEY = bytes(range(32))


def attacker_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def state_file(tmp_path: Path, host: str, mode: int) -> Path:
    """A state file as `deploy --detach` saves it (0600), then its recipe rewritten and its mode set."""
    recipe = keeps.Recipe(reference="127.0.0.1:1/probe@sha256:" + "a" * 64, policy=str(tmp_path / "policy.toml"),
                          signer_key=attacker_key(), host_token_file=str(tmp_path / "token"),
                          secrets=("API_KEY=file:" + str(tmp_path / "api-key"),))
    record = keeps.KeepRecord(host, "keep-0123456789ab", CAPABILITY, SESSION_KEY, recipe=recipe)
    path = keeps.save(record, tmp_path / "state.json")
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize("mode", [0o620, 0o602])
def test_restart_from_a_state_file_others_can_write_is_refused(tmp_path: Path, capfd, mode: int) -> None:
    """Another user rewrote the recipe's signer key: restart must not deploy (and seal secrets) from it."""
    (tmp_path / "api-key").write_text("the-users-api-key")
    with endless({}) as (agent, heard):
        path = state_file(tmp_path, f"http://{agent}", mode)
        code = main(["keep", "restart", "--host", f"http://{agent}", "--state", str(path), "--insecure-sim"])
    out, err = capfd.readouterr()
    assert code == 65 and "not private to its owner" in err and f"chmod 600 {path}" in err
    assert heard == []  # the agent was never contacted
    for leaked in (CAPABILITY, b64.encode(SESSION_KEY), "the-users-api-key"):
        assert leaked not in out + err


@pytest.mark.parametrize("command", ["logs", "stop", "status"])
def test_a_state_file_others_can_read_is_not_used(tmp_path: Path, capfd, command: str) -> None:
    with endless({}) as (agent, heard):
        path = state_file(tmp_path, f"http://{agent}", 0o644)
        code = main(["keep", command, "--host", f"http://{agent}", "--state", str(path)])
    out, err = capfd.readouterr()
    assert code == 65 and "not private to its owner (mode 0644)" in err
    assert heard == [] and path.exists()
    assert CAPABILITY not in out + err and b64.encode(SESSION_KEY) not in out + err


def test_the_private_state_file_is_used(tmp_path: Path, capfd) -> None:
    """The control: the same file at 0600 reaches the agent (whose answer here is garbage)."""
    with endless({}) as (agent, heard):
        path = state_file(tmp_path, f"http://{agent}", 0o600)
        code = main(["keep", "status", "--host", f"http://{agent}", "--state", str(path)])
    assert code != 0 and len(heard) == 1
    assert CAPABILITY not in "".join(capfd.readouterr())
