"""Registry credentials: our own login store, docker's config.json, credential helpers, environment.

Looked up in this order for a registry host (``host[:port]``):

1. environment, for pipelines: ``ENARX_PKG_REGISTRY_USERNAME`` + ``ENARX_PKG_REGISTRY_PASSWORD``, or
   ``ENARX_PKG_REGISTRY_TOKEN`` (sent as the password); limited to one host when
   ``ENARX_PKG_REGISTRY_HOST`` is set;
2. ``$XDG_CONFIG_HOME/enarx-pkg/auth.json`` (written by ``enarx-pkg login``; mode 0600, dir 0700;
   docker's ``auths`` format so other tools can read it too);
3. docker's ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``): ``credHelpers`` for
   the host, then ``auths`` (base64 ``auth``), then ``credsStore`` — what skopeo, oras and spin read.

Secrets are never put in argv (helpers get the host on stdin), never logged, never in a message.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from enarx_pkg._internal import atomic
from enarx_pkg.errors import InputError
from enarx_pkg.oci.auth import Credential
from enarx_pkg.oci.reference import DOCKER_HUB

ENV_USERNAME = "ENARX_PKG_REGISTRY_USERNAME"
ENV_PASSWORD = "ENARX_PKG_REGISTRY_PASSWORD"  # noqa: S105 - a variable name, not a secret
ENV_TOKEN = "ENARX_PKG_REGISTRY_TOKEN"  # noqa: S105
ENV_HOST = "ENARX_PKG_REGISTRY_HOST"
MAX_CONFIG_BYTES = 1 << 20
HELPER_TIMEOUT = 20
_HELPER_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def store_path(env: Mapping[str, str] = os.environ) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "enarx-pkg" / "auth.json"


def docker_config_path(env: Mapping[str, str] = os.environ) -> Path:
    base = env.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    return Path(base) / "config.json"


def lookup(host: str, env: Mapping[str, str] = os.environ) -> Credential | None:
    """Find credentials for ``host``; ``None`` means go anonymous."""
    return from_env(host, env) or from_store(host, env) or from_docker(host, env)


def from_env(host: str, env: Mapping[str, str] = os.environ) -> Credential | None:
    only = env.get(ENV_HOST)
    if only and _normalise(only) != host:
        return None
    if env.get(ENV_TOKEN):
        return Credential(env.get(ENV_USERNAME) or "token", env[ENV_TOKEN], f"${ENV_TOKEN}")
    if env.get(ENV_USERNAME) and env.get(ENV_PASSWORD):
        return Credential(env[ENV_USERNAME], env[ENV_PASSWORD], f"${ENV_USERNAME}/${ENV_PASSWORD}")
    return None


def from_store(host: str, env: Mapping[str, str] = os.environ) -> Credential | None:
    path = store_path(env)
    return _from_auths(_read_config(path).get("auths"), host, str(path))


def from_docker(host: str, env: Mapping[str, str] = os.environ) -> Credential | None:
    path = docker_config_path(env)
    cfg = _read_config(path)
    helpers = cfg.get("credHelpers")
    if isinstance(helpers, dict) and isinstance(helpers.get(host), str):
        return _run_helper(helpers[host], host, env)
    found = _from_auths(cfg.get("auths"), host, f"docker config {path}")
    if found is None and isinstance(cfg.get("credsStore"), str):
        return _run_helper(cfg["credsStore"], host, env)
    return found


def save(host: str, credential: Credential, env: Mapping[str, str] = os.environ) -> Path:
    """Store (replace) credentials for ``host`` in our auth.json, atomically, mode 0600 in a 0700 dir."""
    path = store_path(env)
    cfg = _read_config(path)
    auths = cfg.get("auths") if isinstance(cfg.get("auths"), dict) else {}
    assert isinstance(auths, dict)
    raw = f"{credential.username}:{credential.password}".encode()
    auths[host] = {"auth": base64.b64encode(raw).decode("ascii")}
    cfg["auths"] = auths
    _write_config(path, cfg)
    return path


def remove(host: str, env: Mapping[str, str] = os.environ) -> bool:
    """Forget ``host``; ``False`` if nothing was stored for it."""
    path = store_path(env)
    cfg = _read_config(path)
    auths = cfg.get("auths")
    if not isinstance(auths, dict):
        return False
    keys = [k for k in auths if _normalise(k) == host]
    for k in keys:
        del auths[k]
    if keys:
        _write_config(path, cfg)
    return bool(keys)


def _write_config(path: Path, cfg: dict[str, Any]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    atomic.write_bytes(path, (json.dumps(cfg, indent=2, sort_keys=True) + "\n").encode(), mode=0o600)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()[: MAX_CONFIG_BYTES + 1]
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise InputError(f"{path} is over {MAX_CONFIG_BYTES} bytes")
    try:
        obj = json.loads(data or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON (line {getattr(exc, 'lineno', '?')})") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}: expected a JSON object")
    return obj


def _normalise(key: str) -> str:
    """docker writes keys as ``host``, ``https://host`` or ``https://index.docker.io/v1/``."""
    key = re.sub(r"^[a-z]+://", "", key.strip()).split("/", 1)[0].lower()
    return DOCKER_HUB if key in ("index.docker.io", "registry-1.docker.io") else key


def _from_auths(auths: Any, host: str, source: str) -> Credential | None:
    if not isinstance(auths, dict):
        return None
    for key, entry in auths.items():
        if not isinstance(key, str) or _normalise(key) != host or not isinstance(entry, dict):
            continue
        if isinstance(entry.get("auth"), str) and entry["auth"]:
            try:
                user, sep, pw = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise InputError(f"{source}: the 'auth' entry for {key} is not base64 'user:password'") from None
            if not sep:
                raise InputError(f"{source}: the 'auth' entry for {key} has no ':' between user and password")
            return Credential(user, pw, source)
        if isinstance(entry.get("identitytoken"), str):
            return Credential("<token>", entry["identitytoken"], source)
    return None


def _run_helper(name: str, host: str, env: Mapping[str, str]) -> Credential | None:
    """``docker-credential-NAME get`` with the server URL on stdin (the docker credential-helper protocol)."""
    if not _HELPER_NAME.match(name):
        raise InputError(f"invalid docker credential helper name {name!r}")
    exe = shutil.which(f"docker-credential-{name}", path=env.get("PATH"))
    if exe is None:
        raise InputError(f"docker config names credential helper {name!r} but docker-credential-{name} "
                         "is not on PATH")
    try:
        out = subprocess.run([exe, "get"], input=host.encode(), capture_output=True, timeout=HELPER_TIMEOUT,
                             check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"docker-credential-{name} failed for {host}: {type(exc).__name__}") from None
    if out.returncode != 0:
        return None  # "credentials not found in native keychain": anonymous
    try:
        obj = json.loads(out.stdout[:MAX_CONFIG_BYTES])
        user, secret = obj["Username"], obj["Secret"]
    except (ValueError, KeyError, TypeError):
        raise InputError(f"docker-credential-{name} returned an unreadable answer for {host}") from None
    if not isinstance(user, str) or not isinstance(secret, str):
        raise InputError(f"docker-credential-{name} returned an unreadable answer for {host}")
    return Credential(user, secret, f"docker-credential-{name}")


def login(registry: str, credential: Credential, *, plain_http: bool | None = None,
          env: Mapping[str, str] = os.environ) -> Path:
    """Check ``credential`` against the registry's ``/v2/`` and store it only if the registry accepts it."""
    from enarx_pkg.oci.auth import AuthError, static
    from enarx_pkg.oci.client import Client
    from enarx_pkg.oci.reference import parse_registry

    reg = parse_registry(registry, plain_http=plain_http)
    try:
        with Client(reg, static(reg.host, credential)) as client:
            client.ping()
    except AuthError:  # not "run enarx-pkg login": that is what was just run
        raise AuthError(f"registry {reg.host} refused the user name and password for {credential.username!r}",
                        hint="check both and try again (a registry API token goes in as the password)") from None
    return save(reg.host, credential, env)


def logout(registry: str, env: Mapping[str, str] = os.environ) -> bool:
    """Forget the stored credentials for ``registry`` (docker's config is left alone)."""
    from enarx_pkg.oci.reference import parse_registry

    return remove(parse_registry(registry).host, env)
