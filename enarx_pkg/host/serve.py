"""``enarx-pkg host serve``: pick a backend, load the token and sim key, run the agent on uvicorn."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from enarx_pkg._internal import atomic, listen
from enarx_pkg.errors import InputError, NotFoundError, UsageError
from enarx_pkg.host.app import HostSettings
from enarx_pkg.host.pool import KeepCommand

HARDWARE = {"snp": ("/dev/sev-guest",), "tdx": ("/dev/tdx_guest",), "sgx": ("/dev/attestation",)}
TOKEN_FILE = "agent-token"  # noqa: S105 (a file name)


@dataclass(frozen=True)
class ServeOptions:
    backend: str = "auto"
    listen: str = "127.0.0.1:8470"
    token_file: Path | None = None
    data_dir: Path = Path(".enarx-host")
    pool_size: int = 2
    max_keeps: int = 16
    provision_deadline_s: float = 30.0
    lifetime_s: float = 3600.0
    sim_extra: tuple[str, ...] = field(default_factory=tuple)  # test knobs, passed to sim keeps
    access_log: str = "combined"  # common | combined | off: one line per request on stdout
    publish_range: str = ""  # LOW-HIGH: loopback ports keeps' listen files bind ("": any free port)


@dataclass(frozen=True)
class Pins:
    """What a deployer must pin in its policy for this host (printed at start-up)."""

    backend: str
    measurement: str
    sim_key_fingerprint: str | None
    url: str
    token_file: Path


def detect_backend(requested: str) -> str:
    """``auto`` picks the TEE this machine offers, or ``sim`` (which no default policy accepts)."""
    if requested != "auto":
        return requested
    for name, paths in HARDWARE.items():
        if any(os.path.exists(p) for p in paths):
            return name
    return "sim"


def load_token(opts: ServeOptions) -> tuple[str, Path]:
    """Read the deployers' bearer token, or create one (0600) in the data directory."""
    path = opts.token_file or opts.data_dir / TOKEN_FILE
    if path.exists():
        token = path.read_text("utf-8").strip()
        if len(token) < 16:
            raise InputError(f"{path}: the agent token must be at least 16 characters")
        return token, path
    if opts.token_file is not None:
        raise _no_token_file(path)
    token = secrets.token_urlsafe(32)
    atomic.write_text(path, token + "\n", mode=0o600)
    return token, path


def _no_token_file(path: Path) -> NotFoundError:
    return NotFoundError(f"--token-file {path} does not exist",
                         hint="write the token deployers will present into it (16 characters or more, mode 0600), "
                              "or leave --token-file out: the agent then creates DATA/agent-token")


def parse_range(text: str) -> tuple[int, int]:
    """``LOW-HIGH`` (1-65535, LOW <= HIGH), or (0, 0) for "any free port" when empty."""
    if not text:
        return 0, 0
    low, _, high = text.partition("-")
    if not (low.isdigit() and high.isdigit() and 0 < int(low) <= int(high) <= 65535):
        raise UsageError(f"--publish-range {text!r}: expected LOW-HIGH, two ports with LOW <= HIGH")
    return int(low), int(high)


def prepare(opts: ServeOptions) -> tuple[HostSettings, Pins, str, int]:
    """Everything but the event loop: settings, pins, bind address."""
    from enarx_pkg.host.pool import probe_measurement

    host, _, port = opts.listen.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--listen {opts.listen!r}: expected HOST:PORT")
    publish_range = parse_range(opts.publish_range)  # every option is checked before anything is written
    if opts.token_file is not None and not opts.token_file.is_file():
        raise _no_token_file(opts.token_file)
    listen.check_free(host, int(port), "the host agent")  # before a token or sim key is written
    backend = detect_backend(opts.backend)
    opts.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    token, token_path = load_token(opts)
    fingerprint = None
    if backend == "sim":
        from enarx_pkg.attestation.sim import SimPlatform

        fingerprint = SimPlatform.load_or_create(opts.data_dir).fingerprint
    extra = opts.sim_extra if backend == "sim" else ()
    command = KeepCommand(backend, str(opts.data_dir.resolve()), extra, publish_range)
    settings = HostSettings(command, token, fingerprint, opts.pool_size, opts.max_keeps,
                            opts.provision_deadline_s, opts.lifetime_s)
    pins = Pins(backend, probe_measurement(command), fingerprint, f"http://{opts.listen}", token_path)
    return settings, pins, host, int(port)


def serve(opts: ServeOptions, announce: Callable[[Pins], None]) -> None:
    """Run the agent until interrupted."""
    import uvicorn

    from enarx_pkg.accesslog import with_access_log
    from enarx_pkg.host.app import Authenticated, create_app

    settings, pins, host, port = prepare(opts)
    announce(pins)
    app = with_access_log(Authenticated(create_app(settings)), opts.access_log)
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")).run()
