"""The decisions of ``deploy`` besides attestation, as pure functions (no network, no files, no clock).

``deploy.py`` does the fetching and talking; ``trust`` decides which keep may receive secrets; here:
whether the signed package is the version and repository asked for, which secrets the workload
gets, and whether the stream of sealed output frames is complete and in order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from enarx_pkg._internal import seal
from enarx_pkg._internal.text import printable
from enarx_pkg.errors import (
    AttestationError,
    Error,
    ExitCode,
    InputError,
    NotFoundError,
    TransportError,
    UsageError,
    VerificationError,
    WorkloadError,
    WorkloadTimeout,
)

ANN_VERSION = "org.opencontainers.image.version"
ANN_TITLE = "org.opencontainers.image.title"
_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
Sink = Callable[[bytes], None]
STDIN_CHUNK_BYTES = 64 << 10  # one sealed stdin frame carries at most this much


@dataclass(frozen=True)
class SecretSource:
    """Where the deployer reads one secret (``NAME=env:VAR`` or ``NAME=file:PATH``), never its value."""

    name: str
    source: str  # "env" | "file"
    ref: str
    mount: str | None = None


def parse_secret_option(text: str) -> SecretSource:
    """Parse ``--secret NAME=env:VAR|file:PATH`` (the value never appears on the command line)."""
    name, sep, where = text.partition("=")
    source, sep2, ref = where.partition(":")
    if not sep or not sep2 or source not in ("env", "file") or not ref or not _SECRET_NAME.match(name):
        raise UsageError(f"--secret {name or text!r}: expected NAME=env:VARIABLE or NAME=file:PATH",
                         hint="the value itself never goes on the command line")
    return SecretSource(name, source, ref)


def merge_secrets(declared: Sequence[Any], given: Sequence[SecretSource]) -> list[SecretSource]:
    """The package's ``[secrets]``, overridden by name by ``--secret`` options."""
    out = {s.name: SecretSource(s.name, s.source, s.ref, s.mount) for s in declared}
    for s in given:
        mount = out[s.name].mount if s.name in out else None
        out[s.name] = SecretSource(s.name, s.source, s.ref, mount)
    return list(out.values())


@dataclass(frozen=True)
class Release:
    """What is deployed, as the signed manifest names it (printed, and returned by ``--json``)."""

    repository: str
    digest: str
    version: str | None  # the signed org.opencontainers.image.version annotation
    name: str | None  # the signed package name (title annotation)
    asked: str  # the reference as the user gave it


_VERSION_TAG = re.compile(r"^v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:[_+][0-9A-Za-z.-]+)?)$")


def release(asked: Any, pinned: Any, annotations: Mapping[str, str]) -> Release:
    return Release(pinned.repository, pinned.digest, annotations.get(ANN_VERSION) or None,
                   annotations.get(ANN_TITLE) or None, str(asked))


def release_mismatches(rel: Release, tag: str | None, publish_repository: str | None) -> list[str]:
    """How the signed package differs from what was asked (rollback, substitution); empty when it agrees.

    A tag that is a full version (``1.2.3``, ``v1.2.3-rc.1``, ``1.2.3_build``) must equal the signed
    version; other tags (``latest``, ``stable``) and digests name no version. A package whose signed
    Enarx.toml says ``[publish] repository`` must come from that repository.
    """
    problems = []
    m = _VERSION_TAG.match(tag or "")
    if m and rel.version is not None and m.group(1).replace("_", "+") != rel.version:
        problems.append(f"asked for version {tag} but the signed package is version {rel.version}")
    elif m and rel.version is None:
        problems.append(f"asked for version {tag} but the signed package names no version")
    if publish_repository and publish_repository.strip("/") != rel.repository:
        problems.append(f"asked for repository {rel.repository} but the signed package is published as "
                        f"{publish_repository}")
    return problems


def mismatch_refusal(rel: Release, problems: Sequence[str]) -> VerificationError:
    return VerificationError(
        f"{rel.asked} resolved to {rel.repository}@{rel.digest}, which is not what was asked: "
        + "; ".join(problems) + " (a registry serving an older or another signed package: rollback or substitution)",
        hint="pass --allow-version-mismatch to deploy it anyway")


def envelope_for(*, registry: str, repository: str, manifest_digest: str, session_key: bytes,
                 credential: tuple[str, str] | None, layer_keys: Mapping[str, seal.LayerKey],
                 secrets: Mapping[str, seal.SecretValue], args: Sequence[str] | None,
                 stdin: bool, tls: seal.TlsRequest | None = None) -> seal.Envelope:
    return seal.Envelope(registry, repository, manifest_digest, session_key, credential, dict(layer_keys),
                         dict(secrets), tuple(args) if args is not None else None, stdin, tls)


def stdin_stream(channel: seal.Channel, read: Callable[[int], bytes]) -> Iterator[bytes]:
    """stdin as sealed frame records, produced as ``read`` returns data, then the empty end-of-input frame.

    ``read(n)`` returns at most ``n`` bytes and ``b""`` at the end (``read1`` of a buffered stream), so
    each chunk travels as soon as it exists and at most one chunk is in hand at a time.
    """
    while chunk := read(STDIN_CHUNK_BYTES):
        for frame in channel.seal_all(seal.STDIN, chunk):
            yield seal.record(seal.R_INPUT, frame)
    yield seal.record(seal.R_INPUT, channel.seal(seal.STDIN, b""))


_KEEP_ERRORS: dict[str, type[Error]] = {
    "VerificationError": VerificationError, "AttestationError": AttestationError, "InputError": InputError,
    "WorkloadError": WorkloadError, "WorkloadTimeout": WorkloadTimeout, "WorkloadOutOfMemory": WorkloadError,
    "TransportError": TransportError, "NotFoundError": NotFoundError,
}


class OutputDecoder:
    """Consumes the relayed records of one keep; yields output to sinks and ends with the exit status.

    Every frame must authenticate under the session key in sequence; the stream must end with a
    sealed exit (or error) frame, so truncation, drops, replays and reordering are all refused.
    """

    def __init__(self, channel: seal.Channel, host: str, stdout: Sink, stderr: Sink) -> None:
        self.channel, self.host = channel, host
        self.sinks = {seal.STDOUT: stdout, seal.STDERR: stderr}
        # per record: one sealed frame at most (a host could otherwise announce a record of any size)
        self.reader = seal.RecordReader(seal.MAX_FRAME_BYTES)
        self.status: int | None = None
        self.keep_timings: dict[str, float] = {}

    def feed(self, data: bytes) -> bool:
        """Process bytes from the stream; True once the sealed exit status has arrived."""
        for kind, payload in self.reader.feed(data):
            if self.status is not None:
                break
            if kind == seal.R_FAIL:
                text = printable(payload[:300].decode("utf-8", "replace"))
                raise VerificationError(f"the keep on {self.host} failed before running the workload "
                                        f"(unauthenticated report from the host: {text})")
            if kind != seal.R_FRAME:
                raise VerificationError(f"{self.host} relayed a record of unknown kind {kind:#x}")
            self._frame(*self.channel.open(payload))
        return self.status is not None

    def _frame(self, frame_type: int, payload: bytes) -> None:
        if frame_type in self.sinks:
            self.sinks[frame_type](payload)
        elif frame_type == seal.EXIT:
            obj = json.loads(payload)
            self.status = int(obj["status"])
            timings = obj.get("timings") or {}
            self.keep_timings = {str(k): float(v) for k, v in timings.items() if isinstance(v, int | float)}
        elif frame_type == seal.ERROR:
            raise _keep_error(payload, self.host)
        else:
            raise VerificationError(f"the keep on {self.host} sent a {seal.FRAME_NAMES[frame_type]} frame")

    def finish(self) -> int:
        """Call at end of stream: the exit status, or refusal if it never arrived."""
        if self.status is None:
            raise VerificationError(f"the output stream from {self.host} ended before the sealed exit status "
                                    "(frames dropped or the keep was killed)")
        return self.status


def _keep_error(payload: bytes, host: str) -> Error:
    """Re-raise, on the deployer, the typed error the keep reported (sealed, so authentic)."""
    try:
        obj = json.loads(payload)
        kind, message = str(obj["kind"]), str(obj["message"])
    except (ValueError, KeyError, TypeError):
        return VerificationError(f"the keep on {host} sent a malformed error frame")
    cls = _KEEP_ERRORS.get(kind, Error)
    err = cls(f"in the keep on {host}: {message}")
    code = obj.get("exit_code")
    if cls is Error and code in set(ExitCode):
        err.exit_code = ExitCode(code)
    return err
