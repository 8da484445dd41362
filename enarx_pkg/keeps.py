"""Detached keeps: what ``deploy --detach`` leaves running, and ``keep list|status|logs|stop``.

A detached keep is reached with three things only its deployer holds, kept in a 0600 state file
(``<state dir>/keeps/<keep id>.json``, or the file given with ``--state``), never in argv or logs:
the keep id, the keep's capability (the agent's bearer secret for that keep alone) and the session
key its output is sealed under. The agent keeps the sealed frames; it cannot read them, and without
the capability it does not hand them out.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from enarx_pkg._internal import atomic, b64, seal
from enarx_pkg._internal.text import printable
from enarx_pkg.errors import InputError, NotFoundError, UsageError, VerificationError
from enarx_pkg.host.client import HostClient, Limits

Sink = Callable[[bytes], None]
STATE_BYTES = 64 << 10
_KEEP_ID = re.compile(r"[A-Za-z0-9_-]{8,128}")
_ADDRESS = re.compile(r"127\.0\.0\.1:\d{1,5}|\[::1\]:\d{1,5}")
MAX_ENDPOINTS = 64


@dataclass(frozen=True)
class Recipe:
    """How the keep was deployed, so that ``keep restart`` can deploy it again: references, never values.

    The package is pinned by digest; the policy, host token, decryption key and ``--secret`` sources
    are absolute paths (or env variable names) read again at restart, so a changed policy applies and
    no secret value is stored; the signer's public key (not a secret) is kept to verify the same signer.
    Dangerous switches (``--insecure-sim``, ``--allow-*``) are not recorded: restart asks for them again."""

    reference: str = ""  # registry/repository@sha256:... (filled in by deploy once resolved)
    policy: str = ""
    signer_key: str = ""  # PEM public key (--key), or:
    identity: str = ""  # keyless: --certificate-identity / --certificate-oidc-issuer / --trust-config
    issuer: str = ""
    trust_config: str = ""
    host_token_file: str = ""
    decryption_key: str = ""
    secrets: tuple[str, ...] = ()  # NAME=env:VAR | NAME=file:/abs/path
    keep_registry: str = ""
    args: tuple[str, ...] | None = None
    publish: tuple[str, ...] = ()  # HOSTPORT:LISTEN
    tls_ca: str = ""  # deploy --tls-ca / --tls-ca-key: paths, read again (and the key's 0600 checked) at restart
    tls_ca_key: str = ""
    tls_names: tuple[str, ...] = ()  # --tls-name
    tls_lifetime_s: str = ""  # --tls-lifetime, in seconds
    tls12: str = ""  # "1": --tls12

    @classmethod
    def from_json(cls, obj: Any) -> Recipe:
        if not isinstance(obj, dict) or set(obj) - {f for f in cls.__dataclass_fields__}:
            raise TypeError("recipe")
        args = obj.get("args")
        return cls(**{k: str(v) for k, v in obj.items() if k not in ("secrets", "args", "publish", "tls_names")},
                   tls_names=tuple(str(x) for x in obj.get("tls_names") or ()),
                   secrets=tuple(str(x) for x in obj.get("secrets") or ()),
                   args=None if args is None else tuple(str(x) for x in args),
                   publish=tuple(str(x) for x in obj.get("publish") or ()))


def pin(recipe: Recipe | None, ref: Any) -> Recipe | None:
    """The deploy's recipe with the reference pinned to the digest deployed (what `keep restart` deploys)."""
    return None if recipe is None else replace(recipe, reference=f"{ref.registry.host}/{ref.repository}@{ref.digest}")


@dataclass(frozen=True)
class KeepRecord:
    """What a deployer keeps about one detached keep (the state file's content)."""

    host: str
    keep_id: str
    capability: str = field(repr=False)
    session_key: bytes = field(repr=False)
    endpoints: tuple[dict[str, Any], ...] = ()
    ref: str = ""
    recipe: Recipe | None = None  # what `keep restart` needs (None: a state file from before restart existed)
    attestation: dict[str, str] = field(default_factory=dict)  # tee, measurement, nonce, evidence_sha256

    def to_json(self) -> str:
        obj = asdict(self) | {"session_key": b64.encode(self.session_key), "endpoints": list(self.endpoints)}
        return json.dumps(obj, indent=2, sort_keys=True) + "\n"

    @classmethod
    def parse(cls, text: str, where: Path) -> KeepRecord:
        try:
            obj = json.loads(text)
            recipe = obj.get("recipe")
            record = cls(str(obj["host"]), str(obj["keep_id"]), str(obj["capability"]),
                         b64.decode(obj["session_key"], str(where)), tuple(obj.get("endpoints") or ()),
                         str(obj.get("ref") or ""), None if recipe is None else Recipe.from_json(recipe),
                         {str(k): str(v) for k, v in (obj.get("attestation") or {}).items()})
        except (ValueError, KeyError, TypeError, AttributeError):
            raise InputError(f"{where}: not a keep state file") from None
        if not _KEEP_ID.fullmatch(record.keep_id) or len(record.session_key) != 32:
            raise InputError(f"{where}: not a keep state file (bad keep id or session key)")
        return record


@dataclass
class Logs:
    """A detached keep's output so far, opened with the session key."""

    status: int | None = None  # the workload's exit status once it has exited
    error: str = ""  # the keep's sealed error report, if it failed
    dropped: int = 0  # frames the agent did not keep (its log limit)
    csr: bytes | None = None  # the keep's TLS certificate request (deploy --tls-ca), DER
    tls: dict[str, Any] | None = None  # the keep serves the deployer's certificate: {"sha256", "not_after"}


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "enarx-pkg" / "keeps"


def save(record: KeepRecord, path: Path | None = None) -> Path:
    """Write the state file, 0600 (its directory 0700), atomically: it holds the keep's secrets."""
    path = path or state_dir() / f"{record.keep_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic.write_text(path, record.to_json(), mode=0o600)
    return path


def load(keep_id: str | None, host: str | None, state: Path | None = None) -> KeepRecord:
    """The keep's state file (``state``, or the one for ``keep_id`` in the state dir), checked against ``host``
    when one is given (without it, the host the state file records is the one contacted)."""
    if state is None:
        if not keep_id or not _KEEP_ID.fullmatch(keep_id):
            raise UsageError("name the keep: KEEP_ID (as `deploy --detach` printed it) or --state FILE")
        state = state_dir() / f"{keep_id}.json"
    try:
        with open(state, "rb") as f:
            _private(state, os.fstat(f.fileno()))
            text = f.read(STATE_BYTES).decode("utf-8", "replace")
    except OSError as exc:
        raise NotFoundError(f"no state for keep {keep_id or state}: {state}: {exc.strerror}",
                            hint="keep commands need the state `deploy --detach` saved") from None
    record = KeepRecord.parse(text, state)
    if keep_id and record.keep_id != keep_id:
        raise InputError(f"{state} is the state of keep {record.keep_id}, not {keep_id}")
    if host is not None and record.host.rstrip("/") != host.rstrip("/"):
        raise UsageError(f"keep {record.keep_id} runs on {record.host}, not {host}")
    return record


def _private(path: Path, st: os.stat_result) -> None:
    """A state file is used only if it is its user's alone, like an ssh key: whoever else could write it
    could swap the recipe's signer key or secret sources (``keep restart`` would then send the user's
    secrets to their package), and whoever could read it holds the keep's capability and session key."""
    if st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o077:
        raise InputError(f"{path}: the keep's state file is not private to its owner (mode "
                         f"{stat.S_IMODE(st.st_mode):04o}); it is not used",
                         hint=f"check who changed it; if it is yours and unchanged: chmod 600 {path}")


def records(host: str | None) -> list[KeepRecord]:
    """Every keep in the state dir (deployed to ``host``, if given); files that are not keep states are skipped."""
    found = []
    for path in sorted(state_dir().glob("*.json")):
        try:
            found.append(load(path.stem, host, path))
        except (InputError, UsageError, NotFoundError):
            continue
    return found


def status(record: KeepRecord, limits: Limits | None = None) -> dict[str, Any]:
    with HostClient(record.host, None, limits) as client:
        return client.status(record.keep_id, record.capability)


def stop(record: KeepRecord, state: Path | None = None, limits: Limits | None = None) -> None:
    """Destroy the keep (its logs go with it) and forget its state."""
    with HostClient(record.host, None, limits) as client:
        client.stop(record.keep_id, record.capability)
    (state or state_dir() / f"{record.keep_id}.json").unlink(missing_ok=True)


def logs(record: KeepRecord, stdout: Sink, stderr: Sink, limits: Limits | None = None) -> Logs:
    """Fetch and open the keep's sealed frames; any frame that fails to open is refused."""
    with HostClient(record.host, None, limits) as client:
        body = client.logs(record.keep_id, record.capability)
    result = Logs()
    read_frames(body, seal.Channel(record.session_key, keep_side=False), record.host, stdout, stderr, result)
    return result


def read_frames(body: bytes, channel: seal.Channel, host: str, stdout: Sink, stderr: Sink,
                result: Logs) -> list[dict[str, Any]] | None:
    """Open the records of a detached keep in order; the endpoints, if its listening record is there.

    A gap in the sequence is accepted only before a last exit/error frame (the agent's log limit
    keeps those) and is counted in ``result.dropped``; anything else that fails to open is refused."""
    endpoints = None
    for kind, payload in seal.RecordReader(seal.MAX_FRAME_BYTES).feed(body):
        if kind == seal.R_LISTENING:
            endpoints = parse_endpoints(payload, host)
        elif kind == seal.R_FAIL:
            text = printable(payload[:300].decode("utf-8", "replace"))
            result.error = f"unauthenticated report from the host: {text}"
        elif kind == seal.R_FRAME:
            _frame(channel, payload, stdout, stderr, result)
        else:
            raise VerificationError(f"{host} relayed a record of unknown kind {kind:#x}")
    return endpoints


def _frame(channel: seal.Channel, payload: bytes, stdout: Sink, stderr: Sink, result: Logs) -> None:
    seq = int.from_bytes(payload[1:9], "big") if len(payload) >= seal.FRAME_OVERHEAD else -1
    if seq > channel.expected and payload[:1] in (bytes([seal.EXIT]), bytes([seal.ERROR])):
        result.dropped += seq - channel.expected
        channel.skip_to(seq)
    frame_type, data = channel.open(payload)
    if frame_type == seal.STDOUT:
        stdout(data)
    elif frame_type == seal.STDERR:
        stderr(data)
    elif frame_type == seal.EXIT:
        result.status = int(json.loads(data)["status"])
    elif frame_type == seal.ERROR:
        obj = json.loads(data)
        result.error = printable(f"{obj.get('kind', 'Error')}: {obj.get('message', '')}"[:500])
    elif frame_type == seal.TLS_CSR:
        result.csr = data
    elif frame_type == seal.TLS_READY:
        obj = json.loads(data)
        result.tls = {"sha256": str(obj["sha256"])[:64], "not_after": str(obj["not_after"])[:64]}
    else:
        raise VerificationError(f"the keep sent a {seal.FRAME_NAMES[frame_type]} frame")


def parse_endpoints(payload: bytes, host: str) -> list[dict[str, Any]]:
    """The host's report of where each listen file is bound: loopback addresses only, names and ports checked."""
    try:
        items = json.loads(payload)["endpoints"]
        out: list[dict[str, Any]] = [{"name": str(e["name"]), "port": int(e["port"]),
                                      "address": str(e["address"])} for e in items]
    except (ValueError, KeyError, TypeError):
        raise VerificationError(f"{host}: the keep's listening report is malformed") from None
    bad = [e for e in out if not _ADDRESS.fullmatch(e["address"]) or len(e["name"]) > 128]
    if bad or len(out) > MAX_ENDPOINTS:
        raise VerificationError(f"{host}: the keep's listening report names a non-loopback or malformed address")
    return out
