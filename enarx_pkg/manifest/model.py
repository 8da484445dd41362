"""The normalised Enarx.toml: typed, frozen, valid by construction (DESIGN §3).

Both Enarx dialects (``[[files]]`` and ``[stdin]``/``[network.*]``) load into these same types, with
Enarx's defaults applied, so nothing downstream ever looks at raw TOML.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

FileKind = Literal["null", "stdin", "stdout", "stderr", "listen", "connect"]
Prot = Literal["tls", "tcp"]
Backend = Literal["snp", "tdx", "sgx", "cca", "sim"]
Recipe = Literal["wat", "c", "cpp", "prebuilt"]

DEFAULT_FILES: tuple[FileKind, ...] = ("stdin", "stdout", "stderr")
SOCKET_KINDS: frozenset[str] = frozenset({"listen", "connect"})


@dataclass(frozen=True)
class File:
    """One file descriptor handed to the workload, in order (fd 0, 1, 2, ...)."""

    kind: FileKind
    name: str  # Enarx defaults the name to the kind for stdio/null
    addr: str | None = None  # listen
    host: str | None = None  # connect
    port: int | None = None  # listen/connect
    prot: Prot | None = None  # listen/connect, default "tls"
    ca: str | None = None  # connect + tls: PEM CA certificate(s) the server must chain to (default: system roots)


@dataclass(frozen=True)
class Package:
    name: str
    version: str  # semver 2.0
    description: str = ""
    license: str = ""
    authors: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class Build:
    """How to produce the module: a command, a built-in recipe, or a prebuilt ``.wasm``."""

    output: str  # path of the wasm module, relative to the project directory
    command: tuple[str, ...] | None = None
    shell: bool = False  # run ``command[0]`` through /bin/sh -c only when asked
    workdir: str = "."
    env: Mapping[str, str] = field(default_factory=dict)
    recipe: Recipe | None = None
    sources: tuple[str, ...] = ()  # inputs of a built-in recipe (e.g. main.c, hello.wat)
    debug: bool = False  # keep DWARF debug info (release builds strip it; paths are mapped either way)
    deterministic: bool | None = None  # frozen host for the command; None: yes for componentize-py


def default_connect_name(host: str) -> str:
    """A connect file's name when none is given: its host, with an IPv6 host's ':' as '-'
    (FD_NAMES is ':'-separated)."""
    return host.replace(":", "-")


@dataclass(frozen=True)
class Dir:
    """A host directory preopened for ``run`` (only where Enarx.toml asks)."""

    host: str
    guest: str
    writable: bool = False


@dataclass(frozen=True)
class Keep:
    backends: tuple[Backend, ...] = ("snp", "tdx", "sgx", "cca")
    memory_mb: int = 256
    time_limit_s: float | None = 60.0
    fuel: int | None = None
    dirs: tuple[Dir, ...] = ()


@dataclass(frozen=True)
class Signing:
    key: str | None = None  # public key path for verification / private key path for signing
    identity: str | None = None
    identity_regexp: str | None = None
    issuer: str | None = None
    issuer_regexp: str | None = None
    trust_config: str | None = None  # sigstore ClientTrustConfig JSON (private Sigstore), project-relative


@dataclass(frozen=True)
class Publish:
    registry: str | None = None
    repository: str | None = None
    encrypt: bool = False
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class Secret:
    """Where the deployer reads a secret (never the value itself) and how the workload receives it."""

    name: str
    source: Literal["env", "file"]
    ref: str  # environment variable name, or file path on the deployer
    mount: str | None = None  # deliver as a file at this guest path instead of an env var


@dataclass(frozen=True)
class EnarxToml:
    path: Path | None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    files: tuple[File, ...] = tuple(File(k, k) for k in DEFAULT_FILES)
    steward: str | None = None
    package: Package | None = None
    build: Build | None = None
    keep: Keep = field(default_factory=Keep)
    attestation: Mapping[str, Any] = field(default_factory=dict)  # appraised by attestation.policy
    signing: Signing = field(default_factory=Signing)
    publish: Publish = field(default_factory=Publish)
    secrets: tuple[Secret, ...] = ()

    @property
    def fd_names(self) -> str:
        """``FD_NAMES`` as Enarx exports it: the file names joined with ':'."""
        return ":".join(f.name for f in self.files)

    @property
    def fd_count(self) -> int:
        return len(self.files)

    @property
    def socket_files(self) -> tuple[File, ...]:
        return tuple(f for f in self.files if f.kind in SOCKET_KINDS)
