"""A test PKI shaped like AMD's (ARK ← ASK ← VCEK, RSA-PSS SHA-384 above a P-384 VCEK), made in the test.

Used with ``anchors.replaced_for_tests(amd=...)`` so a test can sign reports and CRLs that only AMD
could, and check what the verifier does with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from enarx_pkg.attestation import _x509

NB, NA = datetime(2020, 1, 1, tzinfo=UTC), datetime(2040, 1, 1, tzinfo=UTC)
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
OID = "1.3.6.1.4.1.3704.1."
TCB_OIDS = {"bootloader": "3.1", "tee": "3.2", "snp": "3.3", "microcode": "3.8"}


def _der_int(n: int) -> bytes:
    return bytes([0x02, 1, n]) if n < 0x80 else bytes([0x02, 2, 0, n])


def _cert(cn: str, pub: object, issuer: x509.Name | None, key: object, *, ca: bool,
          exts: dict[str, bytes] | None = None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name).public_key(pub)  # type: ignore[arg-type]
         .serial_number(x509.random_serial_number()).not_valid_before(NB).not_valid_after(NA)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                          crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
    for oid, value in (exts or {}).items():
        b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False)
    return b.sign(key, hashes.SHA384(), rsa_padding=PSS)  # type: ignore[arg-type]


@dataclass
class AmdPki:
    ark_key: rsa.RSAPrivateKey
    ark: x509.Certificate
    ask: x509.Certificate
    vcek: x509.Certificate
    vcek_key: ec.EllipticCurvePrivateKey

    @property
    def pins(self) -> dict[str, str]:
        return {"Milan": _x509.spki_sha256(self.ark)}

    def certs(self) -> list[bytes]:
        return [c.public_bytes(serialization.Encoding.DER) for c in (self.vcek, self.ask, self.ark)]

    def crl(self, *, revoked: x509.Certificate | None = None, this: datetime = NB, nxt: datetime = NA) -> bytes:
        b = (x509.CertificateRevocationListBuilder().issuer_name(self.ark.subject)
             .last_update(this).next_update(nxt))
        if revoked is not None:
            b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(revoked.serial_number)
                                          .revocation_date(this).build())
        return b.sign(self.ark_key, hashes.SHA384(), rsa_padding=PSS).public_bytes(serialization.Encoding.DER)


def make_pki(chip_id: bytes, tcb: dict[str, int], *, drop: str = "", ask_name: str = "SEV-Milan",
             ask_is_ca: bool = True) -> AmdPki:
    """ARK-Milan ← SEV-Milan ← SEV-VCEK for ``chip_id`` at ``tcb`` (``drop`` leaves one TCB extension out;
    ``ask_name`` / ``ask_is_ca`` make a wrong intermediate)."""
    ark_key = rsa.generate_private_key(65537, 2048)
    ask_key = rsa.generate_private_key(65537, 2048)
    vcek_key = ec.generate_private_key(ec.SECP384R1())
    ark = _cert("ARK-Milan", ark_key.public_key(), None, ark_key, ca=True)
    ask = _cert(ask_name, ask_key.public_key(), ark.subject, ark_key, ca=ask_is_ca)
    exts = {OID + "4": chip_id} | {OID + o: _der_int(tcb[n]) for n, o in TCB_OIDS.items() if n != drop}
    vcek = _cert("SEV-VCEK", vcek_key.public_key(), ask.subject, ask_key, ca=False, exts=exts)
    return AmdPki(ark_key, ark, ask, vcek, vcek_key)


def resign(report: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """The report with its signature replaced by one from ``key`` (R, S little-endian in 72-byte fields)."""
    r, s = decode_dss_signature(key.sign(report[:0x2A0], ec.ECDSA(hashes.SHA384())))
    sig = r.to_bytes(72, "little") + s.to_bytes(72, "little")
    return report[:0x2A0] + sig + report[0x2A0 + 144 :]
