"""Deploy test set-up: the probe workload built, signed and published (plain and encrypted) once.

The registry is CNCF distribution (the ``docker_registry`` fixture) until our own registry's
session fixture is available; deploy works against any OCI registry either way.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from enarx_pkg import keys
from enarx_pkg.build import build
from enarx_pkg.encrypt import encrypt_layout
from enarx_pkg.package import Layout
from enarx_pkg.publish import Target, publish
from enarx_pkg.sign import sign_layout
from tests.fixtures.hosts import HostAgent

WORKLOAD = Path(__file__).parent / "workload"
MARKER = b"PROBE-MARKER-7f3a9c1e"
SECRET = "s3cret-value-94d1b7e2"


@dataclass(frozen=True)
class Published:
    plain: str  # registry/probe:0.1.0 (signed by signer)
    encrypted: str  # registry/probe-enc:0.1.0, encrypted for recipient_key, then signed
    signer_pub: Path
    other_pub: Path  # a key that signed nothing here
    recipient_key: Path  # RSA private key PEM the encrypted package was encrypted for
    registry_url: str
    registry_host: str
    registry_root: Path
    plain_digest: str
    encrypted_digest: str
    signer_key: Path  # the signer's private key (unencrypted PEM), for tests that publish more packages


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory, docker_registry: object) -> Published:
    from enarx_pkg.oci.reference import parse_registry

    root = tmp_path_factory.mktemp("deploy-pkg")
    project = root / "project"
    shutil.copytree(WORKLOAD, project, ignore=shutil.ignore_patterns("target"))
    built = build(project, root / "oci")
    signer = keys.generate(root / "signer", password_env=None)
    other = keys.generate(root / "other", password_env=None)
    key = keys.load_private(signer.private_path, password_env=None)
    rsa_key = rsa.generate_private_key(65537, 2048)
    recipient = root / "recipient.pem"
    recipient.write_bytes(rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    recipient.chmod(0o600)
    pub = rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    plain_layout = Layout.open(built.layout)
    sign_layout(plain_layout, built.tag, key=key)
    enc_layout = encrypt_layout(plain_layout, [pub], ref=built.tag, dest=root / "enc")
    sign_layout(enc_layout, built.tag, key=key)
    reg = parse_registry(docker_registry.host)  # type: ignore[attr-defined]
    p = publish(plain_layout, Target(reg, "probe", built.tag), source_ref=built.tag)
    e = publish(enc_layout, Target(reg, "probe-enc", built.tag), source_ref=built.tag)
    return Published(f"{reg.host}/probe:{built.tag}", f"{reg.host}/probe-enc:{built.tag}", signer.public_path,
                     other.public_path, recipient, docker_registry.url, reg.host,  # type: ignore[attr-defined]
                     docker_registry.root, p.reference.digest or "", e.reference.digest or "",  # type: ignore[attr-defined]
                     signer.private_path)


@pytest.fixture()
def policy_for(tmp_path: Path) -> Iterator[object]:
    """Write a policy file for a host (with overrides) and return its path."""
    def make(host: HostAgent, **sim: object) -> Path:
        path = tmp_path / f"policy-{len(list(tmp_path.glob('policy-*')))}.toml"
        path.write_text(host.policy(**sim))
        return path
    yield make
