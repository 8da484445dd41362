"""``deploy``: attest the keep first, seal keys and secrets to it, run the package inside (DESIGN §1, §7).

Order, per host, is the point: resolve the reference to a digest once and verify its signature and
that it is the version asked for (before any host is contacted); create a keep with a fresh nonce;
``trust.attest`` its offer (evidence, binding, policy), which alone yields the key sealing accepts;
only then unwrap the layer keys, read the secrets and seal them, with a fresh session key, to the
attested keep; then relay sealed stdin and sealed output. Talking to hosts is ``host.client``;
trust decisions are ``trust`` and ``deploy_plan``; this module only orchestrates.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from enarx_pkg import deploy_plan as plan
from enarx_pkg import trust
from enarx_pkg._internal import seal
from enarx_pkg.deploy_checks import Prepared, plain_config, prepare
from enarx_pkg.errors import Error, InputError, TransportError, UsageError
from enarx_pkg.host.client import HostClient, Limits
from enarx_pkg.network import check_mapping
from enarx_pkg.oci.reference import service_url
from enarx_pkg.package import ImageManifest, Layout, require_published
from enarx_pkg.tls import deployer as tls_deployer

Sink = Callable[[bytes], None]
Event = Callable[[str, str], None]  # (host, step) progress notes for people
NO_TIME_LIMIT_OUTPUT_S = 24 * 3600.0  # a workload without a time limit: the output stream's deadline


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
    allow_version_mismatch: bool = False  # deploy a signed package of another version/repository than asked
    limits: Limits = field(default_factory=Limits)  # sizes and deadlines of every host exchange
    detach: bool = False  # return once the keep's listen sockets are bound; the keep runs on
    state: Path | None = None  # where a detached keep's state goes (default: keeps.state_dir())
    publish: tuple[tuple[str, int], ...] = ()  # explicit (LISTEN, host port) mapping of a detached keep
    recipe: Any = None  # keeps.Recipe: saved with a detached keep, for `keep restart`
    replaces: Any = None  # restart.Replacing: the detached keep this deploy takes over from
    tls: Any = None  # tls.deployer.DeployTls (--tls-ca/--tls-ca-key/--tls-name, CA loaded); None: the keep's own

    def __repr__(self) -> str:
        return f"DeploySettings({self.ref}, hosts={self.hosts})"


@dataclass
class HostResult:
    host: str
    status: int | None = None
    error: Error | None = None
    tee: str = ""  # the verified TEE (empty until attested)
    measurement: str = ""
    keep_id: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    detached: bool = False  # the keep runs on; its state is in ``state_file``
    endpoints: list[dict[str, Any]] = field(default_factory=list)  # declared listen port -> host address
    state_file: Path | None = None
    evidence: dict[str, str] = field(default_factory=dict)  # the nonce and the SHA-256 of the evidence accepted
    tls: dict[str, Any] | None = None  # the certificate this deployer issued to the keep (--tls-ca)


@dataclass(frozen=True)
class Package:
    """A resolved, signature-verified package: what every host will be asked to run."""

    reference: Any  # oci.reference.Reference, pinned
    manifest: ImageManifest
    layout: Layout
    signers: tuple[str, ...]
    timings: dict[str, float]
    release: plan.Release
    config: Any = None  # the normalised Enarx.toml (read once, before any host; decrypted by ``ready``)
    prepared: Prepared | None = None  # layer keys and secret values, read by ``ready`` before any host


@dataclass
class Deployment:
    """The package deployed (resolved once) and one result per host, in the order the hosts were given."""

    release: plan.Release
    hosts: list[HostResult]

    def __iter__(self) -> Iterator[HostResult]:
        return iter(self.hosts)

    def __len__(self) -> int:
        return len(self.hosts)

    def __getitem__(self, i: int) -> HostResult:
        return self.hosts[i]


def resolve_and_verify(settings: DeploySettings, workdir: Path, event: Event | None = None) -> Package:
    """Resolve the tag once, pull by digest, verify the signature and the version. No host is contacted."""
    from enarx_pkg import pull as _pull
    from enarx_pkg import verify

    note = event or (lambda h, s: None)
    t0 = time.perf_counter()
    asked, ref = check_yanked(settings, note)
    result = _pull.pull(ref, workdir / "package", plain_http=settings.plain_http)
    t1 = time.perf_counter()
    signatures = verify.verify_layout(result.layout, result.manifest_digest, settings.signer)
    t2 = time.perf_counter()
    manifest = result.layout.manifest(result.manifest_digest)
    signers = tuple(str(getattr(s, "signer", "") or getattr(s, "identity", "")) for s in signatures)
    rel = plan.release(asked, result.reference, manifest.annotations)
    package = Package(result.reference, manifest, result.layout, signers,
                      {"resolve": t1 - t0, "verify_signature": t2 - t1}, rel)
    package = replace(package, config=plain_config(package))
    check_release(package, settings, note, package.config)
    note(asked.registry.host, f"deploying {rel.repository}@{rel.digest}"
         + (f" (version {rel.version})" if rel.version else ""))
    return package


def ready(settings: DeploySettings, package: Package, policy: Any, event: Event | None = None) -> Package:
    """Unwrap the layer keys, read the (decrypted) Enarx.toml and the secrets, and check them all before
    any host is contacted: a deploy that cannot succeed fails before a keep is created."""
    prepared = prepare(package, settings.decryption_key, settings.secrets, policy.tees)
    tls = tls_deployer.request_for(prepared.config, settings.tls)  # refuses --tls-ca with nothing to certify
    if package.config is None and prepared.config is not None:  # an encrypted Enarx.toml, read only now
        check_release(package, settings, event or (lambda h, s: None), prepared.config)
    registry, credential = keep_registry(package.reference, settings.keep_registry)
    prepared = replace(prepared, registry=registry, credential=credential, tls=tls)
    return replace(package, config=prepared.config, prepared=prepared)


def check_yanked(settings: DeploySettings, event: Event) -> tuple[Any, Any]:
    """Refuse a version the registry marks yanked, unless ``allow_yanked``; (asked, reference to pull).

    When the registry's API names the digest, the pull is pinned to it, so the tag is resolved once:
    what was checked is what is pulled. An allowed yanked version (hidden from pulls by tag) is pulled
    the same way; the signature is verified on that digest as always.
    """
    from enarx_pkg import credentials, yanked
    from enarx_pkg.oci.reference import parse

    ref = parse(settings.ref, plain_http=settings.plain_http)
    status = yanked.lookup(ref, credentials.lookup(ref.registry.host))
    pinned = ref.pinned(status.digest) if status is not None and status.digest and ref.digest is None else ref
    if status is None or not status.yanked:
        return ref, pinned
    if not settings.allow_yanked:
        raise yanked.refuse(ref, status)
    event(ref.registry.host, f"WARNING: {ref} is yanked; deploying it anyway (--allow-yanked)")
    return ref, pinned


def check_release(package: Package, settings: DeploySettings, event: Event, config: Any) -> None:
    """Refuse a signed package of another version or repository than asked (``--allow-version-mismatch``)."""
    rel = package.release
    asked_tag = None if "@" in rel.asked else package.reference.tag
    publish_repo = config.publish.repository if config is not None else None
    problems = plan.release_mismatches(rel, asked_tag, publish_repo)
    if not problems:
        return
    if not settings.allow_version_mismatch:
        raise plan.mismatch_refusal(rel, problems)
    event(package.reference.registry.host, "WARNING: --allow-version-mismatch: deploying it anyway: "
          + "; ".join(problems))


def load_policy(settings: DeploySettings) -> Any:
    from enarx_pkg.attestation import policy as ap

    if settings.policy_path is None:
        raise UsageError("deploy needs an attestation policy: --policy FILE",
                         hint="`enarx-pkg host keyscan URL --host-token-file FILE > policy.toml` writes one from what "
                              "the host shows; compare its pins with what `host serve` printed on the host")
    return ap.load_policy(settings.policy_path)


def deploy(settings: DeploySettings, *, stdout: Sink | None = None, stderr: Sink | None = None,
           event: Event | None = None) -> Deployment:
    """Deploy to every host in parallel; one result per host (a host's failure is its own row)."""
    if not settings.hosts:
        raise UsageError("deploy needs at least one --host URL")
    if settings.detach and settings.stdin is not None:
        raise UsageError("--detach and --stdin together: a detached keep has no deployer to read its input from")
    if settings.state is not None and (not settings.detach or len(settings.hosts) > 1):
        raise UsageError("--state FILE goes with --detach and one --host (each keep has its own state)")
    if settings.publish and (not settings.detach or len(settings.hosts) > 1):
        raise UsageError("--publish goes with --detach and one --host (a host port can be bound only once)")
    require_published(settings.ref, "deploy")
    settings = replace(settings, hosts=tuple(service_url(h, "--host") for h in settings.hosts))
    policy = load_policy(settings)
    if len(settings.hosts) > 1 and settings.stdin is not None and not isinstance(settings.stdin, bytes):
        settings = replace(settings, stdin=settings.stdin.read())  # every host gets the same whole input
    threading.Thread(target=_prewarm, daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="enarx-deploy-") as tmp:
        package = ready(settings, resolve_and_verify(settings, Path(tmp), event), policy, event)
        if package.config is not None:  # readable now (decrypted if need be): a mapping of no listen file fails here
            check_mapping(package.config.files, settings.publish, f"package {settings.ref}")
        live = len(settings.hosts) == 1  # one host: stream its output as it arrives
        with ThreadPoolExecutor(max_workers=len(settings.hosts)) as pool:
            futures = [pool.submit(_deploy_host, h, settings, package, policy,
                                   stdout if live else None, stderr if live else None, event)
                       for h in settings.hosts]
            results = [f.result() for f in futures]
    for r in results:
        r.timings = package.timings | r.timings
    return Deployment(package.release, results)


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
    """One host's deploy; whatever happens to it is its own result, never the other hosts' end."""
    result = HostResult(host)
    try:
        HostSession(host, settings, package, policy, result, event or (lambda h, s: None)).run(stdout, stderr)
    except Error as exc:
        result.error = exc
    except Exception as exc:  # a host found a way to break us that no check anticipated: refuse this host only
        result.error = Error(f"{host}: deploy to this host failed unexpectedly ({type(exc).__name__})",
                             hint="set ENARX_PKG_DEBUG=1 to see where, and report it")
        if os.environ.get("ENARX_PKG_DEBUG"):
            raise
    return result


class HostSession:
    """One keep on one host, driven through the protocol in the order that keeps secrets safe."""

    def __init__(self, host: str, settings: DeploySettings, package: Package, policy: Any,
                 result: HostResult, event: Event) -> None:
        self.host, self.settings, self.package, self.policy = host.rstrip("/"), settings, package, policy
        self.result, self.event = result, event
        self.client = HostClient(self.host, settings.host_token, settings.limits)
        self.offer: trust.Offer | None = None
        self.output_s = NO_TIME_LIMIT_OUTPUT_S

    def _time(self, step: str, t0: float) -> float:
        now = time.perf_counter()
        self.result.timings[step] = now - t0
        return now

    def run(self, stdout: Sink | None, stderr: Sink | None) -> None:
        try:
            t = time.perf_counter()
            nonce = os.urandom(seal.NONCE_BYTES)
            self.event(self.host, "creating keep")
            self.offer = self.client.create(nonce)
            self.result.keep_id = self.offer.keep_id
            t = self._time("create_keep", t)
            keep = self._attest(self.offer, nonce)
            t = self._time("attest", t)
            envelope = self._envelope(keep)
            sealed = seal.seal_envelope(envelope, keep)
            self._time("seal", t)
            self._stream(self.offer, sealed, envelope, stdout, stderr)
        finally:
            if self.offer is not None and self.result.status is None and not self.result.detached:
                self.client.delete(self.offer)
            self.client.close()

    def _attest(self, offer: trust.Offer, nonce: bytes) -> trust.AttestedKeep:
        """Verify the evidence, its binding and the policy; the attested keep we may seal to."""
        tee = trust.evidence_tee(offer)
        self.event(self.host, f"verifying {tee} evidence")
        collateral = _collateral(self.policy, self.settings.policy_path, tee, offer.evidence)
        keep = trust.attest(offer, nonce, self.policy, collateral, insecure_sim=self.settings.insecure_sim)
        self.result.tee, self.result.measurement = keep.tee, keep.measurement
        self.result.evidence = {"nonce": nonce.hex(), "evidence_sha256": hashlib.sha256(offer.evidence).hexdigest()}
        return keep

    def _envelope(self, keep: trust.AttestedKeep) -> seal.Envelope:
        """Only now, after attestation: the envelope of what ``ready`` prepared, with a fresh session key."""
        ref, config, prepared = self.package.reference, self.package.config, self.package.prepared
        assert prepared is not None, "deploy() readies the package before any host"
        if config is not None:  # the package's own [keep] backends, against the TEE the evidence shows
            trust.check_backend(keep, config.keep.backends)
        self.output_s = output_deadline(config)
        self.event(self.host, "sealing keys and secrets to the attested keep")  # nothing left to refuse
        return plan.envelope_for(
            registry=prepared.registry.base_url, repository=ref.repository, manifest_digest=ref.digest,
            session_key=seal.new_session_key(), credential=prepared.credential, layer_keys=prepared.layer_keys,
            secrets=prepared.secrets, args=self.settings.args, stdin=self.settings.stdin is not None,
            tls=prepared.tls)

    def _stream(self, offer: trust.Offer, sealed: bytes, envelope: seal.Envelope, stdout: Sink | None,
                stderr: Sink | None) -> None:
        channel = seal.Channel(envelope.session_key, keep_side=False)
        out, err = self._sink(self.result.stdout, stdout), self._sink(self.result.stderr, stderr)
        if self.settings.detach:
            self._detach(offer, sealed, envelope, channel, out, err)
            return
        decoder = plan.OutputDecoder(channel, self.host, out, err)
        feeder = StdinFeeder(self, offer, channel) if self.settings.stdin is not None else None
        t = time.perf_counter()
        with self.client.provision(offer, sealed, self.output_s) as chunks:
            self._time("provision", t)
            if feeder is not None:
                feeder.start()
            for chunk in chunks:
                if decoder.feed(chunk):
                    break
        if decoder.status is None and feeder is not None and feeder.error is not None:
            raise feeder.error  # we ended the keep because its input failed
        self.result.status = decoder.finish()
        self._time("provision_to_exit", t)
        self.result.timings.update(decoder.keep_timings)

    def _detach(self, offer: trust.Offer, sealed: bytes, envelope: seal.Envelope, channel: seal.Channel,
                out: Sink, err: Sink) -> None:
        """Until the keep reports its listen sockets bound; then save its state and leave it running."""
        from enarx_pkg import keeps

        t = time.perf_counter()
        if self.settings.replaces is not None:
            self.settings.replaces.before_bind(self.event)
        self.event(self.host, "waiting for the keep to bind its listen sockets")
        body = self.client.provision_detached(offer, sealed, [f"{port}:{key}" for key, port in self.settings.publish])
        self._time("provision_to_listening", t)
        logs = keeps.Logs()
        endpoints = keeps.read_frames(body, channel, self.host, out, err, logs)
        if endpoints is None:
            reason = logs.error or (f"the workload exited with status {logs.status}" if logs.status is not None
                                    else "it sent no sealed report")
            raise TransportError(f"the keep on {self.host} stopped before its listen sockets were bound: {reason}")
        self.result.tls = tls_deployer.certify_keep(self, offer, envelope, channel, logs.csr)
        attested = {"tee": self.result.tee, "measurement": self.result.measurement, **self.result.evidence}
        record = keeps.KeepRecord(self.host, offer.keep_id, offer.capability, envelope.session_key, tuple(endpoints),
                                  self.settings.ref, keeps.pin(self.settings.recipe, self.package.reference), attested)
        state_file = keeps.save(record, self.settings.state)
        try:
            self.client.confirm(offer)
        except Error:
            state_file.unlink(missing_ok=True)  # the agent reaps an unconfirmed keep: the state would name nothing
            raise
        self.result.state_file, self.result.endpoints, self.result.detached = state_file, endpoints, True
        if self.settings.replaces is not None:
            self.result.state_file = self.settings.replaces.after_saved(state_file, self.event)

    @staticmethod
    def _sink(buffer: bytearray, live: Sink | None) -> Sink:
        lock = threading.Lock()

        def write(data: bytes) -> None:
            with lock:
                buffer.extend(data)
            if live:
                live(data)
        return write


class StdinFeeder:
    """Streams the deployer's stdin to one keep as sealed frames, in one chunked upload, while output flows back.

    Each chunk is sealed and sent as soon as it is read (memory: one chunk). If reading or sending
    fails, the keep is destroyed (it would otherwise wait for the rest of its input) and the deploy
    reports this error; a keep that exited before taking all of its input is not an error.
    """

    def __init__(self, session: HostSession, offer: trust.Offer, channel: seal.Channel) -> None:
        stdin = session.settings.stdin
        assert stdin is not None
        self.source: BinaryIO = io.BytesIO(stdin) if isinstance(stdin, bytes) else stdin
        self.session, self.offer, self.channel = session, offer, channel
        self.error: Error | None = None

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True, name=f"stdin-{self.offer.keep_id}").start()

    def _run(self) -> None:
        s = self.session
        read = getattr(self.source, "read1", None) or self.source.read
        with HostClient(s.host, None, s.settings.limits) as client:
            try:
                client.stdin(self.offer, plan.stdin_stream(self.channel, read), s.output_s)
                return
            except Error as exc:
                self.error = exc
            except OSError as exc:
                self.error = InputError(f"cannot read stdin: {exc.strerror or type(exc).__name__}")
            client.delete(self.offer)


def output_deadline(config: Any) -> float:
    """How long the keep's output may take: the workload's own time limit (or the default one)."""
    from enarx_pkg.manifest.model import Keep

    limit = config.keep.time_limit_s if config is not None else Keep().time_limit_s
    return NO_TIME_LIMIT_OUTPUT_S if limit is None else float(limit)


def keep_registry(ref: Any, override: str | None) -> tuple[Any, tuple[str, str] | None]:
    """Where the keep pulls from, and the credential issued for THAT origin (or none).

    The deployer's credential for the registry it resolved from never goes to another origin: an
    unscoped ``ENARX_PKG_REGISTRY_TOKEN`` counts as issued for the resolved registry only.
    """
    from enarx_pkg import credentials
    from enarx_pkg.oci.reference import parse_registry

    registry = parse_registry(override) if override else ref.registry
    env = dict(os.environ)
    if not env.get(credentials.ENV_HOST):
        env[credentials.ENV_HOST] = ref.registry.host
    cred = credentials.lookup(registry.host, env)
    return registry, (cred.username, cred.password) if cred else None


def _collateral(policy: Any, policy_path: Path | None, tee: str, evidence: bytes) -> Any:
    """The collateral the policy's ``[collateral]`` table asks for (see :mod:`enarx_pkg.attestation.gather`:
    Intel TCB info, QE identity, CRLs; SNP VCEK/ASK/ARK and CRL; fetched for the report's product)."""
    from enarx_pkg.attestation.gather import collateral_for

    base = policy_path.parent if policy_path is not None else Path.cwd()
    return collateral_for(policy.collateral, tee, evidence, base=base, cache=_cache_dir())


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "enarx-pkg"
