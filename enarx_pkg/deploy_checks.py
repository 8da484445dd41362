"""What ``deploy`` checks before it contacts any host, and what it reads once for every host.

A deploy that cannot succeed should fail before a keep is created: a package whose ``[keep]
backends`` share no TEE with the policy's ``tees``, an encrypted package without a
``--decryption-key`` (or with one it was not encrypted for), a secret whose source cannot be read.
So the layer keys are unwrapped and the secrets are read here, once, on the deployer; they stay in
its memory and are sealed (per host) only to a keep whose evidence has been verified. Reading each
secret once also means a one-shot source (``file:/dev/fd/3``, a FIFO) gives every host the same value.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from enarx_pkg import deploy_plan as plan
from enarx_pkg._internal import seal
from enarx_pkg.errors import AttestationError, InputError, UsageError
from enarx_pkg.package import ENCRYPTED_SUFFIX, MEDIA_ENARX_CONFIG, ImageManifest

if TYPE_CHECKING:
    from enarx_pkg.deploy import Package

MAX_SECRET_BYTES = 1 << 20  # a secret is a key or a password, not a data set


@dataclass(frozen=True)
class Prepared:
    """The package's Enarx.toml (decrypted if need be), its layer keys and the secret values."""

    config: Any  # manifest.model.Manifest, or None for a package without an Enarx.toml layer
    layer_keys: dict[str, seal.LayerKey] = field(default_factory=dict, repr=False)
    secrets: dict[str, seal.SecretValue] = field(default_factory=dict, repr=False)
    registry: Any = None  # oci.reference.Registry the keep pulls from (set by deploy.ready)
    credential: tuple[str, str] | None = field(default=None, repr=False)  # issued for that registry
    tls: seal.TlsRequest | None = None  # the envelope's TLS request (set by deploy.ready)


def prepare(package: Package, decryption_key: bytes | None, given: Sequence[plan.SecretSource],
            tees: Sequence[str]) -> Prepared:
    """Everything a host's envelope needs, checked before any host is contacted (see the module doc)."""
    layer_keys = unwrap_keys(package.manifest, decryption_key)
    config = package.config if package.config is not None else package_config(package, layer_keys)
    if config is not None:
        check_backends(config.keep.backends, tees)
    declared = config.secrets if config is not None else ()
    return Prepared(config, layer_keys, read_secrets(plan.merge_secrets(declared, given)))


def check_backends(backends: Sequence[str], tees: Sequence[str]) -> None:
    """Refuse when no keep could satisfy both the package's ``[keep] backends`` and the policy's ``tees``."""
    if backends and not set(backends) & set(tees):
        raise AttestationError(f"the package's [keep] backends ({', '.join(backends)}) and the policy's tees "
                               f"({', '.join(tees)}) have no TEE in common: no keep could be accepted",
                               hint=_backends_hint(tees))


def _backends_hint(tees: Sequence[str]) -> str:
    """A sim policy meets a package built for hardware TEEs mostly while developing: say how to allow it."""
    if "sim" in tees:
        return ('to deploy to a sim keep while developing, add "sim" to [keep] backends in Enarx.toml, then '
                "version bump, build, sign and publish again; otherwise use a policy for a TEE the package "
                "was built for")
    return "deploy with a policy for a TEE the package was built for"


def unwrap_keys(manifest: ImageManifest, decryption_key: bytes | None) -> dict[str, seal.LayerKey]:
    """Layer keys for every encrypted layer (they stay in memory until sealed to an attested keep)."""
    from enarx_pkg import encrypt

    encrypted = [d for d in manifest.layers if encrypt.is_encrypted(d)]
    if encrypted and decryption_key is None:
        raise UsageError("the package is encrypted: pass --decryption-key KEY (a recipient's private key)")
    assert decryption_key is not None or not encrypted
    return {d.digest: encrypt.unwrap_layer_key(d, decryption_key) for d in encrypted}  # type: ignore[arg-type]


def _config_layer(package: Package) -> Any:
    return package.manifest.find_layer(MEDIA_ENARX_CONFIG)


def plain_config(package: Package) -> Any:
    """The package's Enarx.toml if it is not encrypted (readable before any host is contacted), else None."""
    desc = _config_layer(package)
    return None if desc is None or desc.media_type.endswith(ENCRYPTED_SUFFIX) else package_config(package, {})


def package_config(package: Package, layer_keys: dict[str, seal.LayerKey]) -> Any:
    """The package's normalised Enarx.toml (decrypting the config layer if needed), or None without one."""
    from enarx_pkg import encrypt, manifest

    desc = _config_layer(package)
    if desc is None:
        return None
    if encrypt.is_encrypted(desc):
        out = io.BytesIO()
        with package.layout.open_blob(desc.digest) as f:
            encrypt.decrypt_layer(f, desc, layer_keys[desc.digest], out)
        text = out.getvalue().decode("utf-8")
    else:
        text = package.layout.read_blob(desc.digest, 1 << 20).decode("utf-8")
    return manifest.loads(text, Path("Enarx.toml"))


def read_secrets(sources: Sequence[plan.SecretSource]) -> dict[str, seal.SecretValue]:
    """Read secret values on the deployer; errors name the secret and its source, never the value."""
    return {s.name: seal.SecretValue(_read_secret(s), s.mount) for s in sources}


def _read_secret(s: plan.SecretSource) -> bytes:
    if s.source == "env":
        value = os.environ.get(s.ref)
        if value is None:
            raise InputError(f"secret {s.name}: environment variable {s.ref} is not set")
        return value.encode()
    try:
        with Path(s.ref).expanduser().open("rb") as f:
            data = f.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise InputError(f"secret {s.name}: cannot read {s.ref} ({exc.strerror})") from None
    if len(data) > MAX_SECRET_BYTES:
        raise InputError(f"secret {s.name}: {s.ref} is larger than {MAX_SECRET_BYTES} bytes")
    return data
