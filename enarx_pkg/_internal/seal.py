"""Sealing between a deployer and an attested keep (DESIGN §7).

Two layers:

* the **envelope**: HPKE (RFC 9180 base mode, X25519 / HKDF-SHA256 / AES-256-GCM) from the deployer to
  the keep's fresh public key, ``info`` = protocol version ‖ keep id, carrying canonical JSON with the
  pinned package reference, pull credential, layer keys, secrets, argument overrides and a fresh
  32-byte session key;
* the **channel** (``frames``, beside this module): stdin/stdout/stderr/exit/error frames under that
  session key (AES-256-GCM), one nonce counter per direction, so a dropped, replayed or reordered
  frame fails the expected-sequence check; and the length-prefixed records that carry them.

The host relays both as opaque bytes. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from enarx_pkg._internal import b64, canonical, digest

# the framing's names, re-exported for the modules that use both
from enarx_pkg._internal.frames import (
    ERROR as ERROR,
)
from enarx_pkg._internal.frames import (
    EXIT as EXIT,
)
from enarx_pkg._internal.frames import (
    FRAME_HEADER as FRAME_HEADER,
)
from enarx_pkg._internal.frames import (
    FRAME_NAMES as FRAME_NAMES,
)
from enarx_pkg._internal.frames import (
    FRAME_OVERHEAD as FRAME_OVERHEAD,
)
from enarx_pkg._internal.frames import (
    MAX_ENVELOPE_BYTES as MAX_ENVELOPE_BYTES,
)
from enarx_pkg._internal.frames import (
    MAX_FRAME_BYTES as MAX_FRAME_BYTES,
)
from enarx_pkg._internal.frames import (
    MAX_FRAME_PAYLOAD as MAX_FRAME_PAYLOAD,
)
from enarx_pkg._internal.frames import (
    MAX_RECORD_BYTES as MAX_RECORD_BYTES,
)
from enarx_pkg._internal.frames import (
    R_CREATE as R_CREATE,
)
from enarx_pkg._internal.frames import (
    R_CREATED as R_CREATED,
)
from enarx_pkg._internal.frames import (
    R_FAIL as R_FAIL,
)
from enarx_pkg._internal.frames import (
    R_FRAME as R_FRAME,
)
from enarx_pkg._internal.frames import (
    R_INPUT as R_INPUT,
)
from enarx_pkg._internal.frames import (
    R_LISTENING as R_LISTENING,
)
from enarx_pkg._internal.frames import (
    R_PROVISION as R_PROVISION,
)
from enarx_pkg._internal.frames import (
    R_PUBLISH as R_PUBLISH,
)
from enarx_pkg._internal.frames import (
    R_READY as R_READY,
)
from enarx_pkg._internal.frames import (
    RECORD_HEADER as RECORD_HEADER,
)
from enarx_pkg._internal.frames import (
    STDERR as STDERR,
)
from enarx_pkg._internal.frames import (
    STDIN as STDIN,
)
from enarx_pkg._internal.frames import (
    STDOUT as STDOUT,
)
from enarx_pkg._internal.frames import (
    TLS_CERT as TLS_CERT,
)
from enarx_pkg._internal.frames import (
    TLS_CSR as TLS_CSR,
)
from enarx_pkg._internal.frames import (
    TLS_READY as TLS_READY,
)
from enarx_pkg._internal.frames import (
    TO_DEPLOYER as TO_DEPLOYER,
)
from enarx_pkg._internal.frames import (
    TO_KEEP as TO_KEEP,
)
from enarx_pkg._internal.frames import (
    Channel as Channel,
)
from enarx_pkg._internal.frames import (
    RecordReader as RecordReader,
)
from enarx_pkg._internal.frames import (
    record as record,
)
from enarx_pkg.errors import InputError, VerificationError

if TYPE_CHECKING:
    from enarx_pkg.trust import AttestedKeep

SEAL_INFO = b"enarx-pkg/seal/v1"
BINDING_PREFIX = b"enarx-pkg/keep/v1"
NONCE_BYTES = 32
KEY_BYTES = 32
MAX_TLS_NAMES = 32


def report_data(nonce: bytes, keep_public_key: bytes) -> bytes:
    """The 64 bytes a keep's evidence must carry: SHA-512(prefix ‖ nonce ‖ keep public key)."""
    if len(nonce) != NONCE_BYTES or len(keep_public_key) != KEY_BYTES:
        raise InputError("binding needs a 32-byte nonce and a 32-byte X25519 public key")
    return hashlib.sha512(BINDING_PREFIX + nonce + keep_public_key).digest()


def _suite() -> Any:
    from cryptography.hazmat.primitives import hpke

    return hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def _info(keep_id: str) -> bytes:
    return SEAL_INFO + b"/" + keep_id.encode("utf-8")


@dataclass(frozen=True)
class LayerKey:
    """Decryption material for one encrypted layer, keyed by its ciphertext digest."""

    symkey: bytes = field(repr=False)  # never in a repr, a log line or a traceback
    nonce: bytes
    plaintext_digest: str

    def to_json(self) -> dict[str, str]:
        return {"symkey": b64.encode(self.symkey), "nonce": b64.encode(self.nonce), "digest": self.plaintext_digest}

    @classmethod
    def from_json(cls, obj: Any, where: str) -> LayerKey:
        if not isinstance(obj, dict):
            raise InputError(f"{where}: expected an object")
        key, nonce = b64.decode(obj.get("symkey"), f"{where}.symkey"), b64.decode(obj.get("nonce"), f"{where}.nonce")
        dg = obj.get("digest")
        if len(key) != 32 or len(nonce) != 16 or not isinstance(dg, str) or not digest.is_valid(dg):
            raise InputError(f"{where}: expected a 32-byte key, a 16-byte nonce and a sha256 digest")
        return cls(key, nonce, dg)


@dataclass(frozen=True)
class SecretValue:
    """A secret's value and how the workload receives it (env var, or a file at ``mount``)."""

    value: bytes = field(repr=False)
    mount: str | None = None


@dataclass(frozen=True)
class TlsRequest:
    """The deployer's say on the keep's TLS certificate: the names it certifies, and whether the keep
    sends it a CSR over the sealed channel (``deploy --tls-ca``) instead of certifying itself."""

    names: tuple[str, ...] = ()  # empty: the keep's default names (localhost and its listen addresses)
    csr: bool = False
    tls12: bool = False  # the keep's TLS also accepts (and, for connect files, offers) TLS 1.2 (``--tls12``)

    def to_json(self) -> dict[str, Any]:
        return {"names": list(self.names), "csr": self.csr} | ({"tls12": True} if self.tls12 else {})

    @classmethod
    def parse(cls, value: Any, where: str) -> TlsRequest | None:
        if value is None:
            return None
        names = value.get("names") if isinstance(value, dict) else None
        if not (isinstance(names, list) and len(names) <= MAX_TLS_NAMES
                and all(isinstance(n, str) and 0 < len(n) <= 253 for n in names)):
            raise InputError(f"{where}: expected {{names: [at most {MAX_TLS_NAMES} names], csr: bool}}")
        return cls(tuple(names), value.get("csr") is True, value.get("tls12") is True)


@dataclass(frozen=True)
class Envelope:
    """What the deployer seals to the keep. Exists only in the deployer and inside the keep."""

    registry: str  # base URL the keep pulls from
    repository: str
    manifest_digest: str
    session_key: bytes
    credential: tuple[str, str] | None = None  # (username, password/token) for the keep's pull
    layer_keys: Mapping[str, LayerKey] = field(default_factory=dict)
    secrets: Mapping[str, SecretValue] = field(default_factory=dict)
    args: tuple[str, ...] | None = None  # None: the package's own args
    stdin: bool = False  # whether stdin frames follow
    tls: TlsRequest | None = None  # how the keep's prot = "tls" certificate is made (None: the package decides)

    def __repr__(self) -> str:  # never print keys or secrets, even in a traceback
        return f"Envelope({self.registry}/{self.repository}@{self.manifest_digest})"

    def to_bytes(self) -> bytes:
        tls = {} if self.tls is None else {"tls": self.tls.to_json()}
        return canonical.dumps(tls | {
            "v": 1, "registry": self.registry, "repository": self.repository,
            "manifest": self.manifest_digest, "session_key": b64.encode(self.session_key),
            "credential": list(self.credential) if self.credential else None,
            "layer_keys": {d: k.to_json() for d, k in self.layer_keys.items()},
            "secrets": {n: {"value": b64.encode(s.value), "mount": s.mount} for n, s in self.secrets.items()},
            "args": list(self.args) if self.args is not None else None, "stdin": self.stdin,
        })

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        try:
            obj = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InputError("sealed envelope: contents are not JSON") from None
        if not isinstance(obj, dict) or obj.get("v") != 1:
            raise InputError("sealed envelope: unsupported version")
        return cls._parse(obj)

    @classmethod
    def _parse(cls, obj: dict[str, Any]) -> Envelope:
        where = "sealed envelope"
        mdg, key = obj.get("manifest"), b64.decode(obj.get("session_key"), f"{where}.session_key")
        if not isinstance(mdg, str) or not digest.is_valid(mdg) or len(key) != KEY_BYTES:
            raise InputError(f"{where}: needs a sha256 manifest digest and a 32-byte session key")
        for name in ("registry", "repository"):
            if not isinstance(obj.get(name), str):
                raise InputError(f"{where}.{name}: expected a string")
        args = obj.get("args")
        if args is not None and not (isinstance(args, list) and all(isinstance(a, str) for a in args)):
            raise InputError(f"{where}.args: expected a list of strings")
        return cls(
            registry=obj["registry"], repository=obj["repository"], manifest_digest=mdg, session_key=key,
            credential=_credential(obj.get("credential")),
            layer_keys={d: LayerKey.from_json(k, f"{where}.layer_keys")
                        for d, k in _mapping(obj.get("layer_keys"), f"{where}.layer_keys").items()},
            secrets=_parse_secrets(_mapping(obj.get("secrets"), f"{where}.secrets")),
            args=tuple(args) if args is not None else None, stdin=bool(obj.get("stdin")),
            tls=TlsRequest.parse(obj.get("tls"), f"{where}.tls"),
        )


def _credential(value: Any) -> tuple[str, str] | None:
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise InputError("sealed envelope.credential: expected [username, password]")
    return value[0], value[1]


def _parse_secrets(raw: Mapping[str, Any]) -> dict[str, SecretValue]:
    out = {}
    for name, s in raw.items():
        if not isinstance(s, dict):
            raise InputError("sealed envelope: a secret is not an object")
        mount = s.get("mount")
        out[name] = SecretValue(b64.decode(s.get("value"), "sealed envelope.secrets"),
                                mount if isinstance(mount, str) else None)
    return out


def seal_envelope(envelope: Envelope, keep: AttestedKeep) -> bytes:
    """Encrypt the envelope to an attested keep's key; only that keep, under its id, can open it.

    It takes an :class:`~enarx_pkg.trust.AttestedKeep`, which only ``trust.attest`` makes: there is
    no way to seal to a key whose evidence was not verified.
    """
    from enarx_pkg.trust import AttestedKeep

    if not isinstance(keep, AttestedKeep):
        raise TypeError("seal_envelope seals only to an AttestedKeep (from enarx_pkg.trust.attest)")
    plaintext = envelope.to_bytes()
    if len(plaintext) > MAX_ENVELOPE_BYTES:
        raise InputError(f"sealed envelope would be {len(plaintext)} bytes, over the "
                         f"{MAX_ENVELOPE_BYTES}-byte limit (secrets too large?)")
    pub = X25519PublicKey.from_public_bytes(keep.public_key)
    return bytes(_suite().encrypt(plaintext, pub, info=_info(keep.keep_id)))


def open_envelope(sealed: bytes, private_key: X25519PrivateKey, keep_id: str) -> Envelope:
    """Decrypt and parse an envelope; any alteration or truncation raises :class:`VerificationError`."""
    if len(sealed) > MAX_ENVELOPE_BYTES + 64:
        raise VerificationError("sealed envelope is over the size limit")
    try:
        plaintext = _suite().decrypt(sealed, private_key, info=_info(keep_id))
    except (InvalidTag, ValueError):
        raise VerificationError("sealed envelope failed authentication (altered, truncated, or sealed "
                                "to another keep)") from None
    return Envelope.from_bytes(bytes(plaintext))


def new_session_key() -> bytes:
    return os.urandom(KEY_BYTES)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"{where}: expected an object")
    return value
