"""``enarx-pkg ca init``: a 0600 key, a CA certificate that may only sign leaves, no silent overwrite."""

from __future__ import annotations

import stat
import subprocess

import pytest
from cryptography import x509

from enarx_pkg.errors import InputError
from enarx_pkg.tls import ca as ca_mod
from tests.tls.conftest import cli


def test_init_writes_a_private_key_and_a_constrained_ca(tmp_path):
    cert, key = tmp_path / "ca.crt", tmp_path / "ca.key"
    out = cli("ca", "init", "--cert", str(cert), "--key", str(key), "--name", "Test deploy CA", "--days", "30")
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    c = x509.load_pem_x509_certificate(cert.read_bytes())
    bc = c.extensions.get_extension_for_class(x509.BasicConstraints)
    ku = c.extensions.get_extension_for_class(x509.KeyUsage)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
    assert c.subject.rfc4514_string() == "CN=Test deploy CA"
    assert (c.not_valid_after_utc - c.not_valid_before_utc).days == 30
    assert "PRIVATE KEY" not in out.stdout + out.stderr
    ok = subprocess.run(["openssl", "verify", "-CAfile", str(cert), str(cert)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    ca_mod.load_ca(cert, key)  # the pair loads back


def test_init_refuses_to_overwrite_without_force(tmp_path):
    cert, key = tmp_path / "ca.crt", tmp_path / "ca.key"
    assert cli("ca", "init", "--cert", str(cert), "--key", str(key)).returncode == 0
    before = key.read_bytes(), cert.read_bytes()
    out = cli("ca", "init", "--cert", str(cert), "--key", str(key))
    assert out.returncode == 2 and "already exists" in out.stderr and "--force" in out.stderr
    assert (key.read_bytes(), cert.read_bytes()) == before
    assert cli("ca", "init", "--cert", str(cert), "--key", str(key), "--force").returncode == 0
    assert key.read_bytes() != before[0]


def test_name_constraints(tmp_path):
    out = cli("ca", "init", "--cert", str(tmp_path / "c"), "--key", str(tmp_path / "k"), "--permit", "keeps.test",
              "--json")
    assert out.returncode == 0, out.stderr
    c = x509.load_pem_x509_certificate((tmp_path / "c").read_bytes())
    nc = c.extensions.get_extension_for_class(x509.NameConstraints)
    assert nc.critical and nc.value.permitted_subtrees == [x509.DNSName("keeps.test")]


def test_load_refuses_a_key_readable_by_others(tmp_path):
    cert, key = tmp_path / "ca.crt", tmp_path / "ca.key"
    ca_mod.init_ca(cert, key)
    key.chmod(0o644)
    with pytest.raises(InputError, match="readable by group or others"):
        ca_mod.load_ca(cert, key)


def test_load_refuses_a_key_of_another_ca(tmp_path):
    ca_mod.init_ca(tmp_path / "a.crt", tmp_path / "a.key")
    ca_mod.init_ca(tmp_path / "b.crt", tmp_path / "b.key")
    with pytest.raises(InputError, match="is not the key of"):
        ca_mod.load_ca(tmp_path / "a.crt", tmp_path / "b.key")


def test_a_ca_file_that_cannot_be_read_is_named(tmp_path) -> None:
    from enarx_pkg.errors import InputError, NotFoundError
    from enarx_pkg.tls.ca import load_ca_certificate

    with pytest.raises(NotFoundError, match="no such file"):
        load_ca_certificate(tmp_path / "none.crt")
    with pytest.raises(InputError, match="cannot read"):  # a directory: not 'larger than 65536 bytes'
        load_ca_certificate(tmp_path)
