"""Sealing between a deployer and an attested keep (DESIGN §7).

Two layers:

* the **envelope**: HPKE (RFC 9180 base mode, X25519 / HKDF-SHA256 / AES-256-GCM) from the deployer to
  the keep's fresh public key, ``info`` = protocol version ‖ keep id, carrying canonical JSON with the
  pinned package reference, pull credential, layer keys, secrets, argument overrides and a fresh
  32-byte session key;
* the **channel**: stdin/stdout/stderr/exit/error frames under that session key (AES-256-GCM), one nonce
  counter per direction, so a dropped, replayed or reordered frame fails the expected-sequence check.

The host relays both as opaque bytes. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from enarx_pkg._internal import b64, canonical, digest
from enarx_pkg.errors import InputError, VerificationError

if TYPE_CHECKING:
    from enarx_pkg.trust import AttestedKeep

SEAL_INFO = b"enarx-pkg/seal/v1"
BINDING_PREFIX = b"enarx-pkg/keep/v1"
NONCE_BYTES = 32
KEY_BYTES = 32
MAX_ENVELOPE_BYTES = 1 << 20  # secrets and keys, not payloads: 1 MiB is generous
MAX_FRAME_PAYLOAD = 1 << 20
FRAME_HEADER = struct.Struct(">BQ")  # type, sequence number
FRAME_OVERHEAD = FRAME_HEADER.size + 16  # + GCM tag
MAX_FRAME_BYTES = MAX_FRAME_PAYLOAD + FRAME_OVERHEAD

# frame types
STDIN, STDOUT, STDERR, EXIT, ERROR = 1, 2, 3, 4, 5
FRAME_NAMES = {STDIN: "stdin", STDOUT: "stdout", STDERR: "stderr", EXIT: "exit", ERROR: "error"}
# directions: the nonce's first byte, so the two directions never share a (key, nonce) pair
TO_KEEP, TO_DEPLOYER = 0x01, 0x02


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

    def __repr__(self) -> str:  # never print keys or secrets, even in a traceback
        return f"Envelope({self.registry}/{self.repository}@{self.manifest_digest})"

    def to_bytes(self) -> bytes:
        return canonical.dumps({
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


class Channel:
    """One end of the framed session channel. Sends on its own direction, receives on the other.

    Frame = type(1) ‖ seq(8, big-endian) ‖ AES-256-GCM(payload), nonce = direction ‖ 0x000000 ‖ seq,
    with the header as associated data. The receiver accepts only the next sequence number.
    """

    def __init__(self, session_key: bytes, *, keep_side: bool) -> None:
        self._aead = AESGCM(session_key)
        self._send_dir, self._recv_dir = (TO_DEPLOYER, TO_KEEP) if keep_side else (TO_KEEP, TO_DEPLOYER)
        self._send_seq = 0
        self._recv_seq = 0

    @staticmethod
    def _nonce(direction: int, seq: int) -> bytes:
        return bytes([direction, 0, 0, 0]) + seq.to_bytes(8, "big")

    def seal(self, frame_type: int, payload: bytes) -> bytes:
        """Encrypt one frame; payloads over the limit must be split by the caller (see :meth:`seal_all`)."""
        if frame_type not in FRAME_NAMES or len(payload) > MAX_FRAME_PAYLOAD:
            raise InputError("frame type unknown or payload over the frame size limit")
        header = FRAME_HEADER.pack(frame_type, self._send_seq)
        ct = self._aead.encrypt(self._nonce(self._send_dir, self._send_seq), payload, header)
        self._send_seq += 1
        return header + ct

    def seal_all(self, frame_type: int, payload: bytes) -> list[bytes]:
        """Split a payload into as many frames as the size limit needs (at least one)."""
        chunks = [payload[i:i + MAX_FRAME_PAYLOAD] for i in range(0, len(payload), MAX_FRAME_PAYLOAD)]
        return [self.seal(frame_type, c) for c in chunks or [b""]]

    def open(self, frame: bytes) -> tuple[int, bytes]:
        """Authenticate and decrypt the next frame; anything but the expected next one is refused."""
        if len(frame) < FRAME_OVERHEAD or len(frame) > MAX_FRAME_BYTES:
            raise VerificationError("sealed frame has an impossible size (truncated or padded)")
        frame_type, seq = FRAME_HEADER.unpack_from(frame)
        if seq != self._recv_seq:
            what = "replayed or reordered" if seq < self._recv_seq else "dropped or reordered"
            raise VerificationError(f"sealed frame {seq} arrived where {self._recv_seq} was expected: "
                                    f"frames were {what} in transit")
        try:
            payload = self._aead.decrypt(self._nonce(self._recv_dir, seq), frame[FRAME_HEADER.size:],
                                         frame[:FRAME_HEADER.size])
        except InvalidTag:
            raise VerificationError(f"sealed frame {seq} failed authentication (altered in transit)") from None
        if frame_type not in FRAME_NAMES:
            raise VerificationError(f"sealed frame {seq} has unknown type {frame_type}")
        self._recv_seq += 1
        return frame_type, payload


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"{where}: expected an object")
    return value


# -- records: how sealed frames and control messages travel over pipes and HTTP bodies ---------------
RECORD_HEADER = struct.Struct(">BI")  # kind, payload length
MAX_RECORD_BYTES = MAX_ENVELOPE_BYTES + MAX_FRAME_BYTES
# keep -> agent -> deployer
R_READY, R_CREATED, R_FRAME, R_FAIL = 0x10, 0x11, 0x12, 0x13
# agent -> keep
R_CREATE, R_PROVISION, R_INPUT = 0x20, 0x21, 0x22


def record(kind: int, payload: bytes) -> bytes:
    """Length-prefix one message: kind(1) ‖ length(4, big-endian) ‖ payload."""
    return RECORD_HEADER.pack(kind, len(payload)) + payload


class RecordReader:
    """Splits a byte stream into records, refusing any record over the size limit."""

    def __init__(self, limit: int = MAX_RECORD_BYTES) -> None:
        self._buf = bytearray()
        self._limit = limit

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        out = []
        while len(self._buf) >= RECORD_HEADER.size:
            kind, length = RECORD_HEADER.unpack_from(self._buf)
            if length > self._limit:
                raise VerificationError(f"record of {length} bytes is over the {self._limit}-byte limit")
            end = RECORD_HEADER.size + length
            if len(self._buf) < end:
                break
            out.append((kind, bytes(self._buf[RECORD_HEADER.size:end])))
            del self._buf[:end]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete record (non-zero at end of stream means truncation)."""
        return len(self._buf)
