"""A test PKI shaped like Intel's (SGX Root CA ← PCK Platform CA ← PCK / TCB Signing), made in the test.

Used with ``anchors.replaced_for_tests`` to pin its root in place of Intel's, so a test can forge what
only Intel could sign and check that the verifier still refuses what the roles forbid.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from enarx_pkg.attestation import _x509, dcap

NB, NA = datetime(2020, 1, 1, tzinfo=UTC), datetime(2040, 1, 1, tzinfo=UTC)
SGX_EXT = x509.ObjectIdentifier("1.2.840.113741.1.13.1")


@dataclass
class Node:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _name(cn: str, org: str = "Intel Corporation") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])


def issue(cn: str, issuer: Node | None, *, ca: bool, path_length: int | None = None,
          sgx_ext: bytes | None = None, org: str = "Intel Corporation") -> Node:
    """A certificate with Intel's extension profile (CA: keyCertSign+cRLSign; leaf: digitalSignature)."""
    key = ec.generate_private_key(ec.SECP256R1())
    signer = issuer.key if issuer else key
    pub = key.public_key()
    b = (x509.CertificateBuilder().subject_name(_name(cn, org))
         .issuer_name(issuer.cert.subject if issuer else _name(cn)).public_key(pub)
         .serial_number(x509.random_serial_number()).not_valid_before(NB).not_valid_after(NA)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=not ca, key_encipherment=False,
                                      data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                                      crl_sign=ca, encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False))
    if sgx_ext is not None:
        b = b.add_extension(x509.UnrecognizedExtension(SGX_EXT, sgx_ext), critical=False)
    return Node(b.sign(signer, hashes.SHA256()), key)


@dataclass
class Pki:
    root: Node
    platform_ca: Node
    pck: Node
    tcb_signing: Node

    @property
    def root_pin(self) -> str:
        return _x509.spki_sha256(self.root.cert)


def make_pki(real_quote: bytes) -> Pki:
    """Intel-shaped PKI whose PCK carries the real quote's SGX extension (FMSPC, PCESVN, CPUSVN)."""
    real_leaf = dcap.order_chain(_x509.load_certs([dcap.parse_quote(real_quote).pck_chain.rstrip(b"\0")]))[0]
    ext = real_leaf.extensions.get_extension_for_oid(SGX_EXT).value
    assert isinstance(ext, x509.UnrecognizedExtension)
    root = issue("Intel SGX Root CA", None, ca=True, path_length=1)
    platform = issue("Intel SGX PCK Platform CA", root, ca=True, path_length=0)
    return Pki(root, platform, issue("Intel SGX PCK Certificate", platform, ca=False, sgx_ext=ext.value),
               issue("Intel SGX TCB Signing", root, ca=False))


def raw_sig(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def requote(quote: bytes, chain_pem: bytes, pck_key: ec.EllipticCurvePrivateKey) -> bytes:
    """The same v4 quote (its signature still valid) with another PCK chain that signed its QE report."""
    q = dcap.parse_quote(quote)
    inner = (q.qe_report + raw_sig(pck_key, q.qe_report) + struct.pack("<H", len(q.qe_auth)) + q.qe_auth
             + struct.pack("<HI", 5, len(chain_pem)) + chain_pem)
    sig_data = q.signature + q.att_key + struct.pack("<HI", 6, len(inner)) + inner
    return q.signed + struct.pack("<I", len(sig_data)) + sig_data


def signed_json(key_name: str, value: dict[str, object], signer: ec.EllipticCurvePrivateKey) -> bytes:
    """``{"<key_name>": value, "signature": hex}`` as Intel PCS serves it, signed over the value's bytes."""
    body = json.dumps(value, separators=(",", ":"))
    sig = raw_sig(signer, body.encode())
    return f'{{"{key_name}":{body},"signature":"{sig.hex()}"}}'.encode()
