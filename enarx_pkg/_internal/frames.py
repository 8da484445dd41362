"""The session channel and its records (DESIGN §7): how sealed frames travel between deployer and keep.

* **frames**: type ‖ seq(8) ‖ AES-256-GCM(payload) under the envelope's session key, nonce =
  direction ‖ 0x000000 ‖ seq, header as associated data; one counter per direction, and the receiver
  accepts only the next sequence number, so a dropped, replayed or reordered frame is refused;
* **records**: kind(1) ‖ length(4) ‖ payload, how frames and control messages cross pipes and HTTP
  bodies; a reader refuses any record over its limit from the header alone.

Nothing here does I/O. The envelope that carries the session key is ``seal``.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from enarx_pkg.errors import InputError, VerificationError

MAX_ENVELOPE_BYTES = 1 << 20  # a sealed envelope, the largest record: secrets and keys, not payloads
MAX_FRAME_PAYLOAD = 1 << 20
FRAME_HEADER = struct.Struct(">BQ")  # type, sequence number
FRAME_OVERHEAD = FRAME_HEADER.size + 16  # + GCM tag
MAX_FRAME_BYTES = MAX_FRAME_PAYLOAD + FRAME_OVERHEAD

# frame types
STDIN, STDOUT, STDERR, EXIT, ERROR = 1, 2, 3, 4, 5
# attested TLS with the deployer as Steward (deploy --tls-ca): the keep's CSR (DER) to the deployer, the
# issued chain (PEM) back, and the keep's word that it serves it ({"sha256", "not_after"})
TLS_CSR, TLS_CERT, TLS_READY = 6, 7, 8
FRAME_NAMES = {STDIN: "stdin", STDOUT: "stdout", STDERR: "stderr", EXIT: "exit", ERROR: "error",
               TLS_CSR: "tls-csr", TLS_CERT: "tls-cert", TLS_READY: "tls-ready"}
# directions: the nonce's first byte, so the two directions never share a (key, nonce) pair
TO_KEEP, TO_DEPLOYER = 0x01, 0x02


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

    @property
    def expected(self) -> int:
        """The sequence number the next received frame must carry."""
        return self._recv_seq

    def skip_to(self, seq: int) -> None:
        """Accept ``seq`` next: frames before it are known lost (a detached keep's bounded log, which
        the reader reports as dropped). Never backwards, so nothing can be replayed."""
        self._recv_seq = max(self._recv_seq, seq)

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


# -- records ---------------------------------------------------------------------------------------
RECORD_HEADER = struct.Struct(">BI")  # kind, payload length
MAX_RECORD_BYTES = MAX_ENVELOPE_BYTES + MAX_FRAME_BYTES
# keep -> agent -> deployer
R_READY, R_CREATED, R_FRAME, R_FAIL = 0x10, 0x11, 0x12, 0x13
R_LISTENING = 0x14  # plain JSON list: every declared listen file and the host address it is bound on
# agent -> keep
R_CREATE, R_PROVISION, R_INPUT = 0x20, 0x21, 0x22
R_PUBLISH = 0x23  # plain JSON, before R_PROVISION: the deployer's explicit port mapping ("HOSTPORT:LISTEN" items)


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
