"""``enarx-pkg attest tls`` against a real Python ssl server serving a keep's self-contained certificate.

One test per attack; each asserts the exit code, the named check, and that the client sent the server
nothing (a refused peer never sees an application byte).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from enarx_pkg.tls import keep
from enarx_pkg.tls.extension import KeepEvidence
from tests.tls.conftest import OTHER_PACKAGE, PACKAGE, SimKeep, cli, write_pair


def _serve(tmp_path, serve_tls, key, cert):
    return serve_tls(*write_pair(tmp_path / "srv", key, [cert]))


def _attest(server, policy, *extra):
    return cli("attest", "tls", f"127.0.0.1:{server.port}", "--policy", str(policy), *extra)


def _refused(out, server, code, check):
    assert out.returncode == code, out.stdout + out.stderr
    assert check in out.stderr, out.stderr
    assert "accepted" not in out.stdout
    assert "Traceback" not in out.stderr and "PRIVATE KEY" not in out.stderr + out.stdout
    assert bytes(server.received) == b""


def _transplant(key, names, evidence: KeepEvidence) -> x509.Certificate:
    """A certificate for ``key`` carrying someone else's evidence."""
    return keep.self_contained_certificate(key, names, evidence)


def test_accepts_an_attested_keep_and_prints_the_appraisal(tmp_path, serve_tls, sim_keep):
    key, cert = sim_keep.certificate(["127.0.0.1", "keep.test"])
    server = _serve(tmp_path, serve_tls, key, cert)
    out = _attest(server, sim_keep.policy(tmp_path / "p.toml"), "--package", PACKAGE)
    assert out.returncode == 0, out.stderr
    assert "PASS  sim.key" in out.stdout and "PASS  report_data" in out.stdout
    assert f"package: {PACKAGE}" in out.stdout and out.stdout.rstrip().endswith("accepted")
    assert "SIM EVIDENCE" in out.stderr


def test_json_names_package_tee_and_checks(tmp_path, serve_tls, sim_keep):
    key, cert = sim_keep.certificate(["keep.test"])
    server = _serve(tmp_path, serve_tls, key, cert)
    out = _attest(server, sim_keep.policy(tmp_path / "p.toml"), "--name", "keep.test", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["ok"] is True and doc["package"] == PACKAGE and doc["tee"] == "sim"
    assert doc["names"] == ["keep.test"] and doc["claims"]["measurement"] == sim_keep.measurement.hex()


def test_refuses_evidence_from_another_keep(tmp_path, serve_tls, sim_keep):
    other_key = keep.new_key()  # another keep, same trusted platform: its evidence is genuine, for its own key
    theirs = keep.keep_evidence(other_key, PACKAGE, sim_keep.source)
    key = keep.new_key()
    server = _serve(tmp_path, serve_tls, key, _transplant(key, ["127.0.0.1"], theirs))
    _refused(_attest(server, sim_keep.policy(tmp_path / "p.toml")), server, 78, "tls.binding")


def test_refuses_a_key_not_bound_by_report_data(tmp_path, serve_tls, sim_keep):
    key = keep.new_key()
    unbound = KeepEvidence("sim", os.urandom(32), PACKAGE, sim_keep.source(os.urandom(64))[1])
    server = _serve(tmp_path, serve_tls, key, _transplant(key, ["127.0.0.1"], unbound))
    _refused(_attest(server, sim_keep.policy(tmp_path / "p.toml")), server, 78, "tls.binding")


def test_refuses_a_package_digest_other_than_asked(tmp_path, serve_tls, sim_keep):
    key, cert = sim_keep.certificate(["127.0.0.1"])
    server = _serve(tmp_path, serve_tls, key, cert)
    out = _attest(server, sim_keep.policy(tmp_path / "p.toml"), "--package", OTHER_PACKAGE)
    _refused(out, server, 77, "tls.package")
    assert PACKAGE in out.stderr


def test_refuses_a_package_claim_the_evidence_does_not_bind(tmp_path, serve_tls, sim_keep):
    key = keep.new_key()
    real = keep.keep_evidence(key, PACKAGE, sim_keep.source)
    lie = KeepEvidence("sim", real.nonce, OTHER_PACKAGE, real.evidence)  # says OTHER, evidence binds PACKAGE
    server = _serve(tmp_path, serve_tls, key, _transplant(key, ["127.0.0.1"], lie))
    _refused(_attest(server, sim_keep.policy(tmp_path / "p.toml"), "--package", OTHER_PACKAGE), server, 78,
             "tls.binding")


def test_refuses_an_expired_certificate(tmp_path, serve_tls, sim_keep):
    past = datetime.now(UTC) - timedelta(days=30)
    key, cert = sim_keep.certificate(["127.0.0.1"], lifetime=timedelta(days=1), now=past)
    server = _serve(tmp_path, serve_tls, key, cert)
    out = _attest(server, sim_keep.policy(tmp_path / "p.toml"))
    _refused(out, server, 77, "tls.validity")
    assert "expired" in out.stderr


def test_refuses_a_wrong_name(tmp_path, serve_tls, sim_keep):
    key, cert = sim_keep.certificate(["keep.test"])
    server = _serve(tmp_path, serve_tls, key, cert)
    out = _attest(server, sim_keep.policy(tmp_path / "p.toml"), "--name", "bank.test")
    _refused(out, server, 77, "tls.name")
    assert "keep.test" in out.stderr


def test_refuses_a_policy_mismatch(tmp_path, serve_tls, sim_keep):
    key, cert = sim_keep.certificate(["127.0.0.1"])
    server = _serve(tmp_path, serve_tls, key, cert)
    policy = sim_keep.policy(tmp_path / "p.toml", measurements=["00" * 48])  # another runtime was pinned
    out = _attest(server, policy)
    _refused(out, server, 78, "sim.measurements")


def test_refuses_a_keep_on_an_unpinned_platform(tmp_path, serve_tls, sim_keep):
    stranger = SimKeep()  # a keep on another host's (unpinned) sim platform
    key, cert = stranger.certificate(["127.0.0.1"])
    server = _serve(tmp_path, serve_tls, key, cert)
    _refused(_attest(server, sim_keep.policy(tmp_path / "p.toml")), server, 78, "sim.key")


def test_refuses_a_debug_keep(tmp_path, serve_tls):
    debug = SimKeep(debug=True)
    key, cert = debug.certificate(["127.0.0.1"])
    server = _serve(tmp_path, serve_tls, key, cert)
    _refused(_attest(server, debug.policy(tmp_path / "p.toml")), server, 78, "debug")


def test_refuses_a_certificate_without_evidence(tmp_path, serve_tls, sim_keep):
    key = keep.new_key()
    name = x509.Name([])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("keep.test")]), critical=False)
            .sign(key, hashes.SHA256()))
    server = _serve(tmp_path, serve_tls, key, cert)
    _refused(_attest(server, sim_keep.policy(tmp_path / "p.toml"), "--name", "keep.test"), server, 78,
             "tls.evidence_extension")


def test_unreachable_endpoint_is_a_transport_failure(tmp_path, sim_keep):
    from tests.conftest import free_port

    out = cli("attest", "tls", f"127.0.0.1:{free_port()}", "--policy", str(sim_keep.policy(tmp_path / "p.toml")))
    assert out.returncode == 69 and "cannot connect" in out.stderr
