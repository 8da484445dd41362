"""Every limit and switch of the registry in one frozen settings object."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

ENV_CONFIG = "ENARX_REGISTRY_CONFIG"


@dataclass(frozen=True)
class Settings:
    """Where the registry keeps its data and how it behaves."""

    data_dir: Path
    database: str | None = None  # None: SQLite in data_dir; "postgresql://...": shared PostgreSQL
    anonymous_pull: bool = False  # default for repositories that do not say otherwise
    max_manifest_bytes: int = 4 * 1024 * 1024
    max_bundle_bytes: int = 1024 * 1024  # signature bundles / Enarx.toml read for the web pages
    max_blob_bytes: int = 16 << 30  # one blob, monolithic or the sum of its chunks (413 SIZE_INVALID beyond)
    bearer_ttl: int = 300  # seconds a /token bearer token lives
    cache_ttl: float = 1.0  # seconds repository settings and token lookups are cached per process
    upload_grace: float = 3600.0  # gc leaves blobs and uploads younger than this alone
    sweep_interval: float = 60.0  # the server removes uploads idle past upload_grace this often (on a new upload)
    read_chunk: int = 1024 * 1024
    public_url: str | None = None  # used in WWW-Authenticate realm; default: from the Host header
    access_log: str = "off"  # common | combined | off (``registry serve`` defaults to combined)
    trusted_keys: tuple[str, ...] = ()  # PEM public keys whose signatures the pages show as verified
    trusted_identities: tuple[tuple[str, str], ...] = ()  # (identity, OIDC issuer) for keyless signatures
    trust_config: str | None = None  # sigstore ClientTrustConfig of a private Sigstore, for keyless badges
    storage: str | None = None  # None: blobs under data_dir; "s3://BUCKET[/PREFIX]": an S3-compatible bucket
    s3_endpoint: str | None = None  # e.g. http://127.0.0.1:8080 (Swift, MinIO, Ceph); None: AWS's own
    s3_region: str | None = None
    s3_redirect: bool = False  # blob GETs answer 307 to a presigned URL instead of streaming

    @property
    def db_url(self) -> str:
        return self.database or f"sqlite:///{self.data_dir / 'registry.db'}"

    def to_env(self) -> str:
        d = asdict(self)
        d["data_dir"] = str(self.data_dir)
        return json.dumps(d)

    @classmethod
    def from_env(cls) -> Settings:
        d = json.loads(os.environ[ENV_CONFIG])
        d["data_dir"] = Path(d["data_dir"])
        d["trusted_keys"] = tuple(d.get("trusted_keys", ()))
        d["trusted_identities"] = tuple(tuple(pair) for pair in d.get("trusted_identities", ()))
        return cls(**d)
