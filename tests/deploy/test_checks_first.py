"""deploy checks everything it can before it contacts a host, and never says "sealing" before a refusal.

Each refusal here: the exit code and message a user sees, and a recording proxy in front of the real
sim host agent that saw no request at all. Also: a one-shot secret source is read once, so every host
gets the same value.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from enarx_pkg._cli.main import main
from enarx_pkg.errors import ExitCode
from tests.deploy.conftest import MARKER, SECRET, Published
from tests.deploy.proxy import Proxy, running


def _deploy(pub: Published, host, policy: Path, proxy: Proxy, *extra: str, ref: str | None = None) -> int:  # type: ignore[no-untyped-def]
    return main(["deploy", ref or pub.plain, "--host", proxy.url, "--host-token-file", str(host.token_file),
                 "--policy", str(policy), "--key", str(pub.signer_pub), "--insecure-sim", *extra])


def _refused(capfdbinary: pytest.CaptureFixture[bytes], proxy: Proxy) -> str:
    out, err = capfdbinary.readouterr()
    assert MARKER not in out and SECRET.encode() not in out + err
    assert b"creating keep" not in err and b"sealing" not in err
    assert proxy.log == []  # the host agent saw no request
    return err.decode()


def test_encrypted_package_without_decryption_key(published, sim_host, policy_for, monkeypatch, capfdbinary) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    with running(Proxy(sim_host.url)) as proxy:
        code = _deploy(published, sim_host, policy_for(sim_host), proxy, ref=published.encrypted)
    err = _refused(capfdbinary, proxy)
    assert code == ExitCode.USAGE and "the package is encrypted: pass --decryption-key KEY" in err


def test_decryption_key_the_package_was_not_encrypted_for(published, sim_host, policy_for, monkeypatch, tmp_path,
                                                          capfdbinary) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    other = tmp_path / "other.pem"
    other.write_bytes(rsa.generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with running(Proxy(sim_host.url)) as proxy:
        code = _deploy(published, sim_host, policy_for(sim_host), proxy, "--decryption-key", str(other),
                       ref=published.encrypted)
    err = _refused(capfdbinary, proxy)
    assert code == ExitCode.VERIFICATION_REFUSED and "no wrapped key opens with this decryption key" in err


def test_decryption_key_file_missing(published, sim_host, policy_for, tmp_path, capfdbinary) -> None:
    with running(Proxy(sim_host.url)) as proxy:
        code = _deploy(published, sim_host, policy_for(sim_host), proxy, "--decryption-key",
                       str(tmp_path / "absent.pem"), ref=published.encrypted)
    err = _refused(capfdbinary, proxy)
    assert code == ExitCode.NOT_FOUND and f"--decryption-key {tmp_path / 'absent.pem'}: no such file" in err


def test_declared_secret_whose_variable_is_unset(published, sim_host, policy_for, monkeypatch, capfdbinary) -> None:
    monkeypatch.delenv("PROBE_SECRET_SOURCE", raising=False)
    with running(Proxy(sim_host.url)) as proxy:
        code = _deploy(published, sim_host, policy_for(sim_host), proxy)
    err = _refused(capfdbinary, proxy)
    assert code == ExitCode.INVALID_INPUT
    assert "secret PROBE_SECRET: environment variable PROBE_SECRET_SOURCE is not set" in err


def test_secret_file_that_cannot_be_read(published, sim_host, policy_for, monkeypatch, tmp_path,
                                         capfdbinary) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    missing = tmp_path / "vault" / "token"
    with running(Proxy(sim_host.url)) as proxy:
        code = _deploy(published, sim_host, policy_for(sim_host), proxy, "--secret", f"PROBE_SECRET=file:{missing}")
    err = _refused(capfdbinary, proxy)
    assert code == ExitCode.INVALID_INPUT and f"secret PROBE_SECRET: cannot read {missing}" in err


def test_encrypted_package_secret_checked_before_any_host(published, sim_host, policy_for, monkeypatch,
                                                          capfdbinary) -> None:
    """The encrypted package's [secrets] are only known once its Enarx.toml is decrypted: still no host."""
    monkeypatch.delenv("PROBE_SECRET_SOURCE", raising=False)
    with running(Proxy(sim_host.url)) as proxy:
        code = _deploy(published, sim_host, policy_for(sim_host), proxy, "--decryption-key",
                       str(published.recipient_key), ref=published.encrypted)
    err = _refused(capfdbinary, proxy)
    assert code == ExitCode.INVALID_INPUT and "environment variable PROBE_SECRET_SOURCE is not set" in err


def test_malformed_keep_registry(published, sim_host, policy_for, monkeypatch, capfdbinary) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    with running(Proxy(sim_host.url)) as proxy:
        code = _deploy(published, sim_host, policy_for(sim_host), proxy, "--keep-registry", "ftp://mirror.internal")
    err = _refused(capfdbinary, proxy)
    assert code == ExitCode.USAGE and "invalid registry 'ftp://mirror.internal'" in err


def test_one_shot_secret_source_is_read_once_for_every_host(published, sim_host, policy_for, capfdbinary) -> None:
    """`file:/dev/fd/N` of a pipe can be read once; both keeps still get the value."""
    read_end, write_end = os.pipe()
    os.write(write_end, b"from-a-pipe")
    os.close(write_end)
    try:
        code = main(["deploy", published.plain, "--host", sim_host.url, "--host", sim_host.url,
                     "--host-token-file", str(sim_host.token_file), "--policy", str(policy_for(sim_host)),
                     "--key", str(published.signer_pub), "--insecure-sim", "--json",
                     "--secret", f"PROBE_SECRET=file:/dev/fd/{read_end}"])
    finally:
        os.close(read_end)
    report = json.loads(capfdbinary.readouterr().out)
    assert code == 1 and report["error"] is None  # the probe exits with argc - 1
    assert [("env=PROBE_SECRET=from-a-pipe" in h["stdout"]) for h in report["hosts"]] == [True, True]


def test_no_policy_points_at_host_keyscan(published, sim_host, capfdbinary) -> None:
    with running(Proxy(sim_host.url)) as proxy:
        code = main(["deploy", published.plain, "--host", proxy.url, "--host-token-file", str(sim_host.token_file),
                     "--key", str(published.signer_pub), "--insecure-sim"])
    err = _refused(capfdbinary, proxy)
    assert code == ExitCode.USAGE and "deploy needs an attestation policy: --policy FILE" in err
    assert "hint: `enarx-pkg host keyscan URL --host-token-file FILE > policy.toml` writes one" in err


def test_no_host_token_says_which_option_carries_it(published, sim_host, policy_for, monkeypatch,
                                                    capfdbinary) -> None:
    """The agent's 401 names the option: a newcomer who left out --host-token-file learns where the token is."""
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)
    with running(Proxy(sim_host.url)) as proxy:
        code = main(["deploy", published.plain, "--host", proxy.url, "--policy", str(policy_for(sim_host)),
                     "--key", str(published.signer_pub), "--insecure-sim"])
    out, err = capfdbinary.readouterr()
    assert code == ExitCode.TRANSPORT and b"host agent refused: missing or wrong bearer token" in err
    assert b"hint: pass the agent's token with --host-token-file FILE" in err
    assert b"sealing" not in err and SECRET.encode() not in out + err
    assert [(e.method, e.path, e.status) for e in proxy.log] == [("POST", "/v1/keeps", 401)]  # nothing after
