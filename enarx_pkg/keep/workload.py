"""Inside the keep, after the envelope is open: pull by digest, decrypt, check, run.

The keep pulls through :func:`enarx_pkg.pull.pull`, as ``enarx-pkg pull`` does, under the tighter
:data:`LIMITS`. Every byte from the registry is checked before use: the manifest against the sealed
digest, each blob against its descriptor (the OCI client does this while streaming, and the keep
again as it copies a plain layer into its memory: the blob's file is on the host's disk), each
decrypted layer against the plaintext digest in the sealed layer key and in the manifest annotation.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from enarx_pkg import pull
from enarx_pkg._internal import digest, roots, seal
from enarx_pkg.errors import InputError, VerificationError
from enarx_pkg.manifest.model import Dir
from enarx_pkg.package import MEDIA_ENARX_CONFIG, MEDIA_WASM, Descriptor, Layout
from enarx_pkg.tls import keepside

MAX_CONFIG_BYTES = 1 << 20
# a package is one manifest with two layers (module, Enarx.toml); its signatures were checked by the
# deployer, so the keep fetches no referrers
LIMITS = pull.Limits(max_manifest_bytes=1 << 20, max_blob_bytes=1 << 30, max_layers=2, max_referrers=0)
Sink = Callable[[bytes], None]
Tls = Callable[[Any], Any]  # the package's Enarx.toml -> its RunSpec.tls (None: no prot = "tls" file)


WARM_TOML = '[package]\nname = "warm"\nversion = "0.0.0"\n'


def prewarm() -> None:
    """Do the slow first-time work now, before any deployer is waiting: imports, the Enarx.toml
    schema, a wasmtime engine and one trivial run (no secret exists in the keep yet).

    Everything the keep will run must be imported here: the keep is measured next, and then refuses
    to import anything else (keep/measure.py).
    """
    import wasmtime
    import wasmtime.component  # WASI 0.2 components: the runtime imports it only for them
    from cryptography.hazmat.primitives import hpke  # noqa: F401 (opening the envelope)
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from enarx_pkg import encrypt, manifest, network, runtime  # noqa: F401
    from enarx_pkg._internal import socktable, wasip1_net  # noqa: F401 (listen/connect files)
    from enarx_pkg.oci import auth  # noqa: F401
    from enarx_pkg.oci.client import Client
    from enarx_pkg.oci.reference import parse_registry

    X25519PrivateKey.generate()  # loads cryptography's OpenSSL backend
    roots.pin()  # the TLS roots the keep trusts: read now, measured next, never re-read from the host's disk
    keepside.prewarm()  # prot = "tls": ssl, the TLS termination and certificate code
    with Client(parse_registry("127.0.0.1:1"), None):  # builds httpx's transports (no request is sent)
        "registry.invalid".encode("idna")

    toml = manifest.loads(WARM_TOML, Path("warm.toml"))
    with tempfile.TemporaryDirectory(prefix="enarx-keep-warm-") as tmp:
        module = Path(tmp) / "warm.wasm"
        module.write_bytes(wasmtime.wat2wasm('(module (func (export "_start")))'))
        runtime.run(replace(runtime.spec_for(toml, module, stdin=b"", stdout=lambda b: None,
                                             stderr=lambda b: None), cache=False))


def execute(envelope: seal.Envelope, stdin: bytes | Path, on_stdout: Sink, on_stderr: Sink,
            timings: dict[str, float] | None = None, publish: Any = None, tls: Tls | None = None) -> int:
    """Fetch, verify and run the sealed package; returns the workload's exit status.

    ``stdin`` is the input itself, or a path the runtime opens as the workload's stdin (the keep's
    pipe, by its /proc/self/fd name, fed while the workload runs). ``timings`` collects seconds per
    step (pull, decrypt, run).
    ``publish`` (:class:`enarx_pkg.network.Publish`): where the host lets listen files bind.
    ``tls``: the keep's TLS for the package's ``prot = "tls"`` files (``keep.tls.KeepTls.setup``).
    """
    timings = {} if timings is None else timings
    with tempfile.TemporaryDirectory(prefix="enarx-keep-") as tmp:
        work = Path(tmp)
        module, config = fetch(envelope, work, timings)
        t = time.perf_counter()
        try:
            return run(envelope, module, config, stdin, work, on_stdout, on_stderr, publish, tls)
        finally:
            timings["keep_run"] = time.perf_counter() - t


def fetch(envelope: seal.Envelope, work: Path, timings: dict[str, float]) -> tuple[Path, str]:
    """Pull the sealed manifest digest and its blobs into a layout in ``work``, decrypt the layers
    that are encrypted; returns (module path, Enarx.toml text)."""
    from enarx_pkg.oci.auth import Credential, anonymous, static
    from enarx_pkg.oci.reference import Reference, parse_registry

    registry = parse_registry(envelope.registry)
    # the credential is bound to the registry origin it was sealed for: never sent to a redirect target
    # (oci/transport.py) nor to a token service on another origin (oci/auth.py); without one the keep
    # asks anonymously, never through a credential store on the host's disk
    creds = static(registry.host, Credential(*envelope.credential, source="sealed envelope",
                                             origin=registry.base_url)) if envelope.credential else anonymous
    t = time.perf_counter()
    result = pull.pull(Reference(registry, envelope.repository, digest=envelope.manifest_digest),
                       work / "package", credentials=creds, limits=LIMITS, durable=False)
    if result.manifest_digest != envelope.manifest_digest:
        raise VerificationError(f"registry served manifest {result.manifest_digest}, not the sealed "
                                f"{envelope.manifest_digest}")
    timings["keep_pull"] = time.perf_counter() - t
    t = time.perf_counter()
    manifest = result.layout.manifest(result.manifest_digest)
    module = _plaintext(result.layout, envelope, manifest.layer(MEDIA_WASM), "module.wasm")
    config = _plaintext(result.layout, envelope, manifest.layer(MEDIA_ENARX_CONFIG), "Enarx.toml")
    timings["keep_decrypt"] = time.perf_counter() - t
    if config.stat().st_size > MAX_CONFIG_BYTES:
        raise InputError("the package's Enarx.toml is over the size limit")
    return module, config.read_text("utf-8")


def _plaintext(layout: Layout, envelope: seal.Envelope, desc: Descriptor, name: str) -> Path:
    """The layer's plaintext in an anonymous file in the keep's memory, checked there as it is copied
    in: decrypted (against the sealed plaintext digest), or, for a plain layer, hashed again. The blob
    on disk was verified as it arrived, but the disk is the host's, which could change it afterwards.
    The file stays open for the rest of the keep's life (one workload), read by its /proc/self/fd name."""
    from enarx_pkg import encrypt

    key = envelope.layer_keys.get(desc.digest)
    if encrypt.is_encrypted(desc) and key is None:
        raise VerificationError(f"layer {desc.digest} is encrypted but the envelope holds no key for it")
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    with open(layout.blob_path(desc.digest), "rb") as src, os.fdopen(os.dup(fd), "wb") as out:
        if key is not None and encrypt.is_encrypted(desc):
            encrypt.decrypt_layer(src, desc, key, out)
        else:
            _copy_checked(src, out, desc)
    return Path(f"/proc/self/fd/{fd}")


def _copy_checked(src: BinaryIO, out: BinaryIO, desc: Descriptor) -> None:
    hasher = digest.Hasher()
    while chunk := src.read(1 << 20):
        hasher.update(chunk)
        out.write(chunk)
    hasher.verify(desc.digest, desc.size, f"layer {desc.digest} (changed on the keep's disk after it was pulled)")


def run(envelope: seal.Envelope, module: Path, config_text: str, stdin: bytes | Path, work: Path,
        on_stdout: Sink, on_stderr: Sink, publish: Any = None, tls: Tls | None = None) -> int:
    """Run the module under the package's ``[keep]`` limits, with secrets as env vars or files.

    Listen files are bound where ``publish`` says (the host's loopback, a port of its range) and
    reported to the host before the workload starts; without ``publish`` a keep refuses them."""
    from enarx_pkg import manifest, runtime

    toml = manifest.loads(config_text, Path("Enarx.toml"))
    listen = [f for f in toml.socket_files if f.kind == "listen"]
    if listen and publish is None:
        raise InputError(f"file {listen[0].name!r} of kind 'listen' needs a host publish range, "
                         "which this keep was not given")
    runtime.confine_dirs(toml.keep.dirs, work, "the keep's work directory")  # never the keep host's files
    env = dict(toml.env)
    dirs = secret_files(envelope.secrets, work / "secrets", env)
    # compiled here from the module whose digest was just checked: no compiled-code cache in a keep,
    # whose disk belongs to the host
    spec = runtime.spec_for(toml, module, args=envelope.args, base_dir=work, stdin=stdin,
                            stdout=on_stdout, stderr=on_stderr, cache=False, publish=publish,
                            tls=tls(toml) if tls is not None else None)
    spec = replace(spec, env=env, dirs=spec.dirs + dirs, name=spec.name if toml.package else "module")
    return int(runtime.run(spec))


def secret_files(secrets: Mapping[str, seal.SecretValue], root: Path, env: dict[str, str]) -> tuple[Dir, ...]:
    """Secrets with a mount become files in private host dirs preopened at the mount's directory."""
    dirs: dict[str, Path] = {}
    for name, secret in secrets.items():
        if secret.mount is None:
            env[name] = secret.value.decode("utf-8", "replace")
            continue
        guest = PurePosixPath(secret.mount)
        if not guest.is_absolute() or ".." in guest.parts or guest.name in ("", "."):
            raise InputError(f"secret {name}: mount must be an absolute file path without '..'")
        host_dir = dirs.setdefault(str(guest.parent), root / f"d{len(dirs)}")
        host_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(host_dir / guest.name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secret.value)
    return tuple(Dir(str(host), guest) for guest, host in dirs.items())
