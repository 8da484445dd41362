"""``deploy``: attest the keep first, seal keys and secrets to it, run the package inside (DESIGN §1, §7).

Order, per host, is the point: resolve the reference to a digest and verify its signature (before any
host is contacted); create a keep with a fresh nonce; verify its evidence and appraise it against the
policy; only then unwrap the layer keys, read the secrets and seal them, with a fresh session key, to
the attested keep key; then relay sealed stdin and sealed output. Decisions live in ``deploy_plan``.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from enarx_pkg import deploy_plan as plan
from enarx_pkg._internal import bounded, seal
from enarx_pkg.errors import AttestationError, Error, InputError, TransportError, UsageError
from enarx_pkg.oci.reference import service_url
from enarx_pkg.package import MEDIA_ENARX_CONFIG, ImageManifest, Layout, require_published

HTTP_TIMEOUT_S = 30.0
# A host agent is untrusted: it may send an answer that never ends. Its answers are read only up to these.
MAX_ANSWER_BYTES = 1 << 20  # JSON: ids, a public key, a platform report
MAX_CREATED_BYTES = 4 << 20  # create-keep also carries base64 evidence and aux (each at most 1 MiB raw)
MAX_REFUSAL_BYTES = 64 << 10  # an error answer: only its start is shown
Sink = Callable[[bytes], None]
Event = Callable[[str, str], None]  # (host, step) progress notes for people


@dataclass(frozen=True)
class DeploySettings:
    ref: str
    hosts: tuple[str, ...]
    signer: Any  # verify.KeyPolicy | verify.IdentityPolicy
    policy_path: Path | None = None
    host_token: str | None = None
    decryption_key: bytes | None = None
    secrets: tuple[plan.SecretSource, ...] = ()
    insecure_sim: bool = False
    args: tuple[str, ...] | None = None
    stdin: bytes | BinaryIO | None = None  # a stream is sent as it is read (one host), chunk by chunk
    keep_registry: str | None = None  # where the keep pulls from, if not where the deployer resolved
    plain_http: bool | None = None
    allow_yanked: bool = False  # deploy a version its registry marks yanked

    def __repr__(self) -> str:
        return f"DeploySettings({self.ref}, hosts={self.hosts})"


@dataclass
class HostResult:
    host: str
    status: int | None = None
    error: Error | None = None
    tee: str = ""
    measurement: str = ""
    keep_id: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True)
class Package:
    """A resolved, signature-verified package: what every host will be asked to run."""

    reference: Any  # oci.reference.Reference, pinned
    manifest: ImageManifest
    layout: Layout
    signers: tuple[str, ...]
    timings: dict[str, float]


def resolve_and_verify(settings: DeploySettings, workdir: Path, event: Event | None = None) -> Package:
    """Refuse a yanked version, pull the manifest, blobs and signatures, verify the signature. No host is contacted."""
    from enarx_pkg import pull as _pull
    from enarx_pkg import verify

    t0 = time.perf_counter()
    ref = check_yanked(settings, event or (lambda h, s: None))
    result = _pull.pull(ref, workdir / "package", plain_http=settings.plain_http)
    t1 = time.perf_counter()
    signatures = verify.verify_layout(result.layout, result.manifest_digest, settings.signer)
    t2 = time.perf_counter()
    manifest = result.layout.manifest(result.manifest_digest)
    signers = tuple(str(getattr(s, "signer", "") or getattr(s, "identity", "")) for s in signatures)
    timings = {"resolve": t1 - t0, "verify_signature": t2 - t1}
    return Package(result.reference, manifest, result.layout, signers, timings)


def check_yanked(settings: DeploySettings, event: Event) -> Any:
    """Refuse a version the registry marks yanked, unless ``allow_yanked``; returns the reference to pull.

    A registry that hides yanked tags (ours does) still serves them by digest, so an allowed yanked
    version is pulled by the digest its API named; the signature is verified on that digest as always.
    """
    from enarx_pkg import credentials, yanked
    from enarx_pkg.oci.reference import parse

    ref = parse(settings.ref, plain_http=settings.plain_http)
    status = yanked.lookup(ref, credentials.lookup(ref.registry.host))
    if status is None or not status.yanked:
        return ref
    if not settings.allow_yanked:
        raise yanked.refuse(ref, status)
    event(ref.registry.host, f"WARNING: {ref} is yanked; deploying it anyway (--allow-yanked)")
    return ref.pinned(status.digest) if ref.digest is None and status.digest else ref


def load_policy(settings: DeploySettings) -> Any:
    from enarx_pkg.attestation import policy as ap

    if settings.policy_path is None:
        raise UsageError("deploy needs an attestation policy: --policy FILE",
                         hint="write one from the host's pins (`enarx-pkg host serve` prints them)")
    return ap.load_policy(settings.policy_path)


def deploy(settings: DeploySettings, *, stdout: Sink | None = None, stderr: Sink | None = None,
           event: Event | None = None) -> list[HostResult]:
    """Deploy to every host in parallel; one result per host (errors are captured per host)."""
    if not settings.hosts:
        raise UsageError("deploy needs at least one --host URL")
    require_published(settings.ref, "deploy")
    settings = replace(settings, hosts=tuple(service_url(h, "--host") for h in settings.hosts))
    policy = load_policy(settings)
    if len(settings.hosts) > 1 and settings.stdin is not None and not isinstance(settings.stdin, bytes):
        settings = replace(settings, stdin=settings.stdin.read())  # every host gets the same whole input
    threading.Thread(target=_prewarm, daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="enarx-deploy-") as tmp:
        package = resolve_and_verify(settings, Path(tmp), event)
        live = len(settings.hosts) == 1  # one host: stream its output as it arrives
        with ThreadPoolExecutor(max_workers=len(settings.hosts)) as pool:
            futures = [pool.submit(_deploy_host, h, settings, package, policy,
                                   stdout if live else None, stderr if live else None, event)
                       for h in settings.hosts]
            results = [f.result() for f in futures]
    for r in results:
        r.timings = package.timings | r.timings
    return results


def _prewarm() -> None:
    """While the package downloads, import and warm up what attestation and sealing need next.

    Nothing here touches a host or a secret; it only moves one-off costs (imports, schema
    compilation) off the critical path.
    """
    import jwcrypto.jwe  # noqa: F401

    from enarx_pkg import encrypt, manifest  # noqa: F401
    from enarx_pkg.attestation import dispatch, sim  # noqa: F401

    manifest.loads('[package]\nname = "warm"\nversion = "0.0.0"\n', Path("warm.toml"))


def _deploy_host(host: str, settings: DeploySettings, package: Package, policy: Any,
                 stdout: Sink | None, stderr: Sink | None, event: Event | None) -> HostResult:
    result = HostResult(host)
    try:
        HostSession(host, settings, package, policy, result, event or (lambda h, s: None)).run(stdout, stderr)
    except Error as exc:
        result.error = exc
    return result


class HostSession:
    """One keep on one host, driven through the protocol in the order that keeps secrets safe."""

    def __init__(self, host: str, settings: DeploySettings, package: Package, policy: Any,
                 result: HostResult, event: Event) -> None:
        import httpx

        self.host, self.settings, self.package, self.policy = host.rstrip("/"), settings, package, policy
        self.result, self.event = result, event
        headers = {"Authorization": f"Bearer {settings.host_token}"} if settings.host_token else {}
        self.http = httpx.Client(base_url=self.host, headers=headers, timeout=HTTP_TIMEOUT_S)

    def _time(self, step: str, t0: float) -> float:
        now = time.perf_counter()
        self.result.timings[step] = now - t0
        return now

    def run(self, stdout: Sink | None, stderr: Sink | None) -> None:
        try:
            t = time.perf_counter()
            nonce = os.urandom(seal.NONCE_BYTES)
            created = self._create(nonce)
            t = self._time("create_keep", t)
            keep_key = self._attest(created, nonce)
            t = self._time("attest", t)
            envelope = self._envelope()
            sealed = seal.seal_envelope(envelope, keep_key, self.result.keep_id)
            self._time("seal", t)
            self._stream(sealed, envelope, stdout, stderr)
        finally:
            if self.result.keep_id and self.result.status is None:
                self._destroy()
            self.http.close()

    def _post(self, path: str, limit: int, **kw: Any) -> Any:
        return agent_json(self.http, "POST", path, limit, **kw)

    def _create(self, nonce: bytes) -> dict[str, Any]:
        self.event(self.host, "creating keep")
        created = self._post("/v1/keeps", MAX_CREATED_BYTES, json={"nonce": base64.b64encode(nonce).decode()})
        if not isinstance(created, dict) or not all(isinstance(created.get(k), str)
                                                    for k in ("keep_id", "keep_public_key", "tee", "evidence")):
            raise TransportError("host agent answered create-keep without keep_id/key/tee/evidence", url=self.host)
        self.result.keep_id, self.result.tee = created["keep_id"], created["tee"]
        return created

    def _attest(self, created: dict[str, Any], nonce: bytes) -> bytes:
        """Verify the evidence, its binding and the policy; returns the keep key we may seal to."""
        from enarx_pkg.attestation import policy as ap

        self.event(self.host, f"verifying {created['tee']} evidence")
        tee, keep_key, evidence = decode_offer(created, self.host)
        plan.check_sim(tee, self.host, self.settings.insecure_sim)
        claims = verify_offer(self.host, tee, keep_key, evidence, created.get("aux"), nonce,
                              collateral=_collateral(self.policy, self.settings.policy_path, tee, evidence))
        appraisal = ap.appraise(claims, self.policy, expected_report_data=seal.report_data(nonce, keep_key))
        if not appraisal.ok:
            raise AttestationError(plan.appraisal_refusal(self.host, appraisal.tee, appraisal.checks))
        self.result.measurement = claims.measurement
        return keep_key

    def _envelope(self) -> seal.Envelope:
        """Only now, after attestation: unwrap layer keys, read secrets, make the session key."""
        from enarx_pkg import credentials
        from enarx_pkg.oci.reference import parse_registry

        self.event(self.host, "sealing keys and secrets to the attested keep")
        ref = self.package.reference
        layer_keys = unwrap_keys(self.package.manifest, self.settings.decryption_key)
        config = package_config(self.package, layer_keys)
        if config is not None:  # the package's own [keep] backends, checked before anything is sealed
            plan.check_backend(self.result.tee, config.keep.backends, self.host)
        declared = config.secrets if config is not None else ()
        secrets = read_secrets(plan.merge_secrets(declared, self.settings.secrets))
        registry = parse_registry(self.settings.keep_registry) if self.settings.keep_registry else ref.registry
        cred = credentials.lookup(ref.registry.host)
        return plan.envelope_for(
            registry=registry.base_url, repository=ref.repository, manifest_digest=ref.digest,
            session_key=seal.new_session_key(), credential=(cred.username, cred.password) if cred else None,
            layer_keys=layer_keys, secrets=secrets, args=self.settings.args, stdin=self.settings.stdin is not None)

    def _stream(self, sealed: bytes, envelope: seal.Envelope, stdout: Sink | None, stderr: Sink | None) -> None:
        import httpx

        channel = seal.Channel(envelope.session_key, keep_side=False)
        out, err = self._sink(self.result.stdout, stdout), self._sink(self.result.stderr, stderr)
        decoder = plan.OutputDecoder(channel, self.host, out, err)
        path = f"/v1/keeps/{self.result.keep_id}/provision"
        feeder = StdinFeeder(self, channel) if self.settings.stdin is not None else None
        t = time.perf_counter()
        try:
            with self.http.stream("POST", path, content=sealed, timeout=None) as r:
                if r.status_code >= 300:
                    text = (bounded.read(r, MAX_REFUSAL_BYTES) or b"")[:200].decode("utf-8", "replace")
                    raise TransportError(f"host agent refused the envelope: {text}", url=self.host + path,
                                         status=r.status_code)
                self._time("provision", t)
                if feeder is not None:
                    feeder.start()
                for chunk in r.iter_raw():
                    if decoder.feed(chunk):
                        break
        except httpx.HTTPError as exc:
            raise TransportError(f"lost the keep's output stream: {type(exc).__name__}", url=self.host + path) from None
        if decoder.status is None and feeder is not None and feeder.error is not None:
            raise feeder.error  # we ended the keep because its input failed
        self.result.status = decoder.finish()
        self._time("provision_to_exit", t)
        self.result.timings.update(decoder.keep_timings)

    @staticmethod
    def _sink(buffer: bytearray, live: Sink | None) -> Sink:
        lock = threading.Lock()

        def write(data: bytes) -> None:
            with lock:
                buffer.extend(data)
            if live:
                live(data)
        return write

    def _destroy(self) -> None:
        import httpx

        with contextlib.suppress(httpx.HTTPError):  # the agent reaps it at its deadline anyway
            agent_delete(self.http, self.result.keep_id)


class StdinFeeder:
    """Streams the deployer's stdin to one keep as sealed frames, in one chunked upload, while output flows back.

    Each chunk is sealed and sent as soon as it is read (memory: one chunk). If reading or sending
    fails, the keep is destroyed (it would otherwise wait for the rest of its input) and the deploy
    reports this error; a keep that exited before taking all of its input is not an error.
    """

    def __init__(self, session: HostSession, channel: seal.Channel) -> None:
        stdin = session.settings.stdin
        assert stdin is not None
        self.source: BinaryIO = io.BytesIO(stdin) if isinstance(stdin, bytes) else stdin
        self.session, self.channel = session, channel
        self.error: Error | None = None

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True, name=f"stdin-{self.session.result.keep_id}").start()

    def _run(self) -> None:
        import httpx

        s = self.session
        path = f"/v1/keeps/{s.result.keep_id}/stdin"
        read = getattr(self.source, "read1", None) or self.source.read
        # no read/write timeout: a workload that reads slowly holds the upload back, by design
        timeout = httpx.Timeout(HTTP_TIMEOUT_S, read=None, write=None)
        with httpx.Client(base_url=s.host, headers=s.http.headers, timeout=timeout) as http:
            try:
                with http.stream("POST", path, content=plan.stdin_stream(self.channel, read)) as r:
                    if r.status_code < 300 or r.status_code in (404, 410):  # 404/410: the keep already exited
                        return
                    text = (bounded.read(r, MAX_REFUSAL_BYTES) or b"")[:200].decode("utf-8", "replace")
                self.error = TransportError(f"host agent refused stdin: {text}", url=s.host + path,
                                            status=r.status_code)
            except httpx.HTTPError as exc:
                self.error = TransportError(f"lost the stdin upload: {type(exc).__name__}", url=s.host + path)
            except OSError as exc:
                self.error = InputError(f"cannot read stdin: {exc.strerror or type(exc).__name__}")
            with contextlib.suppress(httpx.HTTPError):
                agent_delete(http, s.result.keep_id)


def agent_json(http: Any, method: str, path: str, limit: int = MAX_ANSWER_BYTES, **kw: Any) -> Any:
    """One request to a host agent; its JSON answer, read no further than ``limit`` bytes.

    The body is counted as it arrives, so an agent that never stops sending costs ``limit`` bytes of
    memory and a ``TransportError``, not the deployer's memory.
    """
    import httpx

    url = str(http.base_url).rstrip("/") + path
    try:
        with http.stream(method, path, **kw) as r:
            status = r.status_code
            body = bounded.read(r, limit if status < 300 else MAX_REFUSAL_BYTES)
    except httpx.HTTPError as exc:
        raise TransportError(f"host agent unreachable: {type(exc).__name__}", url=url) from None
    if status >= 300:
        text = (body or b"")[:200].decode("utf-8", "replace")
        raise TransportError(f"host agent refused: {text or '(answer too long to show)'}", url=url, status=status)
    if body is None:
        raise TransportError(f"host agent's answer is over the {limit}-byte limit", url=url, status=status)
    try:
        return json.loads(body)
    except ValueError:
        raise TransportError("host agent's answer is not JSON", url=url, status=status) from None


def agent_delete(http: Any, keep_id: str) -> None:
    """DELETE a keep; the answer's body is not read (an agent could make it endless)."""
    with http.stream("DELETE", f"/v1/keeps/{keep_id}"):
        pass


def _collateral(policy: Any, policy_path: Path | None, tee: str, evidence: bytes) -> Any:
    """The collateral the policy's ``[collateral]`` table asks for (see :mod:`enarx_pkg.attestation.gather`:
    Intel TCB info, QE identity, CRLs; SNP VCEK/ASK/ARK and CRL; fetched for the report's product)."""
    from enarx_pkg.attestation.gather import collateral_for

    base = policy_path.parent if policy_path is not None else Path.cwd()
    return collateral_for(policy.collateral, tee, evidence, base=base, cache=_cache_dir())


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "enarx-pkg"


def decode_offer(created: dict[str, Any], host: str) -> tuple[str, bytes, bytes]:
    """The TEE, keep public key and evidence of a create-keep answer, shapes and encodings checked."""
    tee = created.get("tee")
    if not isinstance(tee, str) or not all(isinstance(created.get(k), str) for k in ("keep_public_key", "evidence")):
        raise InputError(f"{host} answered create-keep without tee/key/evidence")
    try:
        keep_key = base64.b64decode(created["keep_public_key"], validate=True)
        evidence = base64.b64decode(created["evidence"], validate=True)
    except ValueError:
        raise InputError(f"{host} sent a keep key or evidence that is not base64") from None
    if len(keep_key) != seal.KEY_BYTES:
        raise InputError(f"{host} sent a keep key of {len(keep_key)} bytes, expected 32")
    return tee, keep_key, evidence


def verify_offer(host: str, tee: str, keep_key: bytes, evidence: bytes, aux: Any, nonce: bytes, *,
                 collateral: Any = None) -> Any:
    """Verify an offered keep's evidence and its binding to ``nonce`` and its key (no policy)."""
    from enarx_pkg.attestation import verify_evidence

    claims = verify_evidence(tee, evidence, certs=evidence_certs(tee, aux), collateral=collateral)
    plan.check_binding(claims.report_data, nonce, keep_key, host)
    return claims


def evidence_certs(tee: str, aux: Any) -> list[bytes]:
    """Certificates the keep sent beside its evidence (SNP: the host's certificate table)."""
    if tee != "snp" or not isinstance(aux, str) or not aux:
        return []
    from enarx_pkg.attestation.snp import parse_cert_table

    return parse_cert_table(base64.b64decode(aux))


def unwrap_keys(manifest: ImageManifest, decryption_key: bytes | None) -> dict[str, seal.LayerKey]:
    """Layer keys for every encrypted layer (called only after attestation succeeded)."""
    from enarx_pkg import encrypt

    encrypted = [d for d in manifest.layers if encrypt.is_encrypted(d)]
    if encrypted and decryption_key is None:
        raise UsageError("the package is encrypted: pass --decryption-key KEY (a recipient's private key)")
    assert decryption_key is not None or not encrypted
    return {d.digest: encrypt.unwrap_layer_key(d, decryption_key) for d in encrypted}  # type: ignore[arg-type]


def package_config(package: Package, layer_keys: dict[str, seal.LayerKey]) -> Any:
    """The package's normalised Enarx.toml (decrypting the config layer if needed), or None without one."""
    import io

    from enarx_pkg import encrypt, manifest

    desc = package.manifest.find_layer(MEDIA_ENARX_CONFIG)
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
    out = {}
    for s in sources:
        if s.source == "env":
            value = os.environ.get(s.ref)
            if value is None:
                raise InputError(f"secret {s.name}: environment variable {s.ref} is not set")
            data = value.encode()
        else:
            try:
                data = Path(s.ref).expanduser().read_bytes()
            except OSError as exc:
                raise InputError(f"secret {s.name}: cannot read {s.ref} ({exc.strerror})") from None
        out[s.name] = seal.SecretValue(data, s.mount)
    return out
