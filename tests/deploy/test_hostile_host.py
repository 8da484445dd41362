"""Issue 11: the host is the attacker. One test per hole, each played through a real agent process, a
hostile proxy or a scripted agent on 127.0.0.1, asserting the refusal (type, exit code, message) AND
that nothing secret (the workload's secret, a registry credential, a sealed envelope) reached the attacker.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from enarx_pkg import deploy as d
from enarx_pkg import keys, verify
from enarx_pkg._internal import canonical, seal
from enarx_pkg.build import build
from enarx_pkg.errors import AttestationError, ExitCode, TransportError
from enarx_pkg.host.client import HostTimeout, Limits
from enarx_pkg.package import ImageManifest, Layout
from enarx_pkg.publish import Target, publish
from enarx_pkg.pull import pull
from enarx_pkg.sign import sign_layout
from enarx_pkg.trust import HostAnswerError
from tests.conftest import REPO
from tests.deploy import scripted
from tests.deploy.conftest import MARKER, SECRET, WORKLOAD, Published
from tests.deploy.proxy import Proxy, running
from tests.fixtures.hosts import HostAgent

pytestmark = pytest.mark.timeout(120)
REGISTRY_TOKEN = "registry-token-5be0c1d7a9"


@pytest.fixture(autouse=True)
def _secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_SECRET_SOURCE", SECRET)


def run(pub: Published, host: HostAgent, *urls: str, policy: Path, **kw: object) -> d.Deployment:
    base: dict[str, object] = dict(ref=pub.plain, hosts=urls, signer=verify.KeyPolicy(pub.signer_pub.read_bytes()),
                                   policy_path=policy, host_token=host.token, insecure_sim=True)
    return d.deploy(d.DeploySettings(**(base | kw)))  # type: ignore[arg-type]


def refused(r: d.HostResult, kind: type[Exception], code: ExitCode, *words: str) -> None:
    assert isinstance(r.error, kind), r.error
    assert r.error.exit_code == code, (r.error.exit_code, r.error.message)
    for w in words:
        assert w in r.error.message, r.error.message
    assert r.status is None and MARKER not in r.stdout


def clean(captured: bytes) -> None:
    """Nothing the attacker captured holds the workload's secret or the registry credential."""
    for secret in (SECRET.encode(), REGISTRY_TOKEN.encode(), base64.b64encode(REGISTRY_TOKEN.encode())):
        assert secret not in captured


def provisioned(proxy: Proxy) -> list[str]:
    return [p for p in proxy.paths() if p.endswith("/provision")]


# -- hole 2: the TEE is what the verified evidence says, not the host's label ------------------------

@pytest.fixture(scope="module")
def bare(published: Published, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The probe without its Enarx.toml layer (so no [keep] backends of its own), signed and published."""
    root = tmp_path_factory.mktemp("bare")
    src = pull(published.plain, root / "src")
    old = src.layout.manifest(src.manifest_digest)
    wasm = old.layers[0]
    config = json.loads(src.layout.read_blob(old.config.digest)) | {"layerDigests": [wasm.digest]}
    new = Layout.create(root / "bare")
    src.layout.copy_blob_to(wasm.digest, new)
    cfg = new.put_bytes(canonical.dumps(config), old.config.media_type)
    new.add_manifest(ImageManifest(cfg, (wasm,), old.annotations), tag="0.1.0")
    sign_layout(new, "0.1.0", key=keys.load_private(published.signer_key, password_env=None))
    target = publish(new, Target(src.reference.registry, "bare/probe", "0.1.0"), source_ref="0.1.0")
    return f"{published.registry_host}/bare/probe@{target.reference.digest}"


@pytest.mark.parametrize(("label", "words"), [
    ("auto", "labels its keep 'auto', which is not a TEE"),
    ("snp", "labels its keep 'snp' but sent sim evidence"),
    ("sim", "refused without --insecure-sim"),
])
def test_sim_evidence_under_any_label_gets_nothing_without_the_flag(published, bare, sim_host, policy_for,
                                                                     label, words) -> None:
    """A package without an Enarx.toml layer, a policy that pins the host's sim key: only the verified
    TEE decides, so without --insecure-sim no label makes the deployer seal anything."""
    def relabel(method: str, path: str, status: int, body: bytes) -> bytes:
        if method == "POST" and path == "/v1/keeps" and status == 201:
            return json.dumps(json.loads(body) | {"tee": label}).encode()
        return body

    proxy = Proxy(sim_host.url, on_response=relabel)
    with running(proxy):
        [r] = run(published, sim_host, proxy.url, policy=policy_for(sim_host), ref=bare, insecure_sim=False)
    refused(r, AttestationError, ExitCode.ATTESTATION_REFUSED, words)
    assert not provisioned(proxy) and r.tee == ""  # nothing sealed left the deployer
    clean(proxy.recorded())


# -- hole 3: deadlines -------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["body", "headers"])
def test_a_host_trickling_its_create_answer_times_out(published, sim_host, policy_for, how) -> None:
    drip = scripted.trickle if how == "body" else scripted.trickle_headers
    script = {("POST", "/v1/keeps"): lambda h, body: drip(h, 0.2)}
    t0 = time.monotonic()
    with scripted.agent(sim_host.url, script) as url:
        [r] = run(published, sim_host, url, policy=policy_for(sim_host), limits=Limits(create_s=1.0))
    refused(r, HostTimeout, ExitCode.TRANSPORT, "did not complete POST /v1/keeps within its 1 s deadline")
    assert time.monotonic() - t0 < 10  # not 600 bytes x 0.2 s


def test_a_host_stalling_after_provisioning_times_out_and_other_hosts_finish(published, sim_host,
                                                                             policy_for) -> None:
    envelopes: list[bytes] = []

    def swallow(h: BaseHTTPRequestHandler, body: bytes) -> None:
        envelopes.append(body)
        scripted.stall(h, 60)

    t0 = time.monotonic()
    with scripted.agent(sim_host.url, {("POST", "/provision"): swallow}) as url:
        stalled, honest = run(published, sim_host, url, sim_host.url, policy=policy_for(sim_host),
                              limits=Limits(max_output_s=2.0))
    refused(stalled, HostTimeout, ExitCode.TRANSPORT, "did not complete the keep's output stream within its 2 s")
    assert honest.error is None and honest.status == 1 and MARKER in honest.stdout  # its own row, unharmed
    assert time.monotonic() - t0 < 30
    clean(b"".join(envelopes))  # the stalled host holds only an HPKE-sealed envelope


# -- hole 4: a credential goes only to the registry it was issued for ---------------------------------

def test_keep_registry_elsewhere_never_gets_the_deployers_credential(published, sim_host, policy_for,
                                                                     monkeypatch) -> None:
    """The deployer holds a token for its registry; --keep-registry names a harvester that answers
    every request with a Basic challenge. The keep is sent no credential for it, so it has none to give."""
    monkeypatch.setenv("ENARX_PKG_REGISTRY_TOKEN", REGISTRY_TOKEN)
    monkeypatch.delenv("ENARX_PKG_REGISTRY_HOST", raising=False)
    presented: list[str] = []

    def challenge(h: BaseHTTPRequestHandler, body: bytes) -> None:
        presented.append(h.headers.get("authorization") or "")
        h.send_response(401)
        h.send_header("WWW-Authenticate", 'Basic realm="harvest"')
        h.send_header("Content-Length", "0")
        h.end_headers()

    with scripted.agent(None, {("GET", ""): challenge, ("HEAD", ""): challenge}) as harvester:
        [r] = run(published, sim_host, sim_host.url, policy=policy_for(sim_host), keep_registry=harvester)
    assert r.error is not None and "refused anonymous access" in r.error.message, r.error  # it had nothing to give
    assert r.status is None and MARKER not in r.stdout
    assert presented, "the keep never asked the harvester: the attack was not played"
    decoded = [base64.b64decode(p.split(" ", 1)[1]) if p.startswith("Basic ") else p.encode() for p in presented]
    clean(b"\n".join(decoded) + "\n".join(presented).encode())


def test_the_keep_gets_the_credential_of_its_own_registry_only(monkeypatch) -> None:
    from enarx_pkg.oci.reference import parse

    monkeypatch.setenv("ENARX_PKG_REGISTRY_TOKEN", REGISTRY_TOKEN)
    monkeypatch.delenv("ENARX_PKG_REGISTRY_HOST", raising=False)
    ref = parse("127.0.0.1:5000/app:1.0.0")
    assert d.keep_registry(ref, None)[1] == ("token", REGISTRY_TOKEN)
    assert d.keep_registry(ref, "http://127.0.0.1:6000")[1] is None
    monkeypatch.setenv("ENARX_PKG_REGISTRY_HOST", "127.0.0.1:6000")  # a token issued for the keep's registry
    assert d.keep_registry(ref, "http://127.0.0.1:6000")[1] == ("token", REGISTRY_TOKEN)


# -- hole 5: rollback ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rolled_back(published: Published, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The registry answers app:0.1.0 with the genuinely signed 0.0.1."""
    root = tmp_path_factory.mktemp("rollback")
    project = root / "project"
    shutil.copytree(WORKLOAD, project, ignore=shutil.ignore_patterns("target"))
    toml = project / "Enarx.toml"
    toml.write_text(toml.read_text().replace('version = "0.1.0"', 'version = "0.0.1"'))
    built = build(project, root / "oci")
    layout = Layout.open(built.layout)
    sign_layout(layout, built.tag, key=keys.load_private(published.signer_key, password_env=None))
    from enarx_pkg.oci.reference import parse_registry

    publish(layout, Target(parse_registry(published.registry_host), "rollback/probe", "0.1.0"), source_ref=built.tag)
    return f"{published.registry_host}/rollback/probe:0.1.0"


def test_rollback_to_an_older_signed_version_is_refused_by_the_cli(published, rolled_back, sim_host,
                                                                   policy_for) -> None:
    proxy = Proxy(sim_host.url)
    with running(proxy):
        p = subprocess.run([sys.executable, "-m", "enarx_pkg", "deploy", rolled_back, "--host", proxy.url,
                            "--host-token-file", str(sim_host.token_file), "--policy", str(policy_for(sim_host)),
                            "--key", str(published.signer_pub), "--insecure-sim", "--json"],
                           cwd=REPO, capture_output=True, timeout=90, env=_env())
    assert p.returncode == ExitCode.VERIFICATION_REFUSED, p.stderr
    assert b"asked for version 0.1.0 but the signed package is version 0.0.1" in p.stderr
    assert json.loads(p.stdout)["error"]["exit_code"] == 77
    assert proxy.log == []  # refused before any host was contacted


def test_allow_version_mismatch_deploys_loudly_and_reports_what_ran(published, rolled_back, sim_host,
                                                                    policy_for) -> None:
    notes: list[str] = []
    dep = d.deploy(d.DeploySettings(
        ref=rolled_back, hosts=(sim_host.url,), signer=verify.KeyPolicy(published.signer_pub.read_bytes()),
        policy_path=policy_for(sim_host), host_token=sim_host.token, insecure_sim=True,
        allow_version_mismatch=True), event=lambda h, s: notes.append(s))
    assert dep[0].error is None and MARKER in dep[0].stdout
    assert (dep.release.version, dep.release.repository) == ("0.0.1", "rollback/probe")
    assert dep.release.digest.startswith("sha256:")
    assert any("WARNING: --allow-version-mismatch" in n and "0.0.1" in n for n in notes)
    assert any(dep.release.digest in n for n in notes)  # the digest deployed is printed


def test_cli_json_reports_the_deployed_digest_version_and_repository(published, sim_host, policy_for) -> None:
    p = subprocess.run([sys.executable, "-m", "enarx_pkg", "deploy", published.plain, "--host", sim_host.url,
                        "--host-token-file", str(sim_host.token_file), "--policy", str(policy_for(sim_host)),
                        "--key", str(published.signer_pub), "--insecure-sim", "--json"],
                       cwd=REPO, capture_output=True, timeout=90, env=_env())
    out = json.loads(p.stdout)
    assert p.returncode == 1 and out["package"] == {  # the probe's own status
        "reference": published.plain, "repository": "probe", "digest": published.plain_digest,
        "version": "0.1.0", "name": "probe"}
    assert out["hosts"][0]["exit_code"] == 1 and f"deploying probe@{published.plain_digest}" in p.stderr.decode()


# -- hole 7: every host answer is typed, one bad host spoils nothing -----------------------------------

ESC = "\x1b]8;;http://evil.example\x07click\x1b]8;;\x07\x1b[2J\x1b[31m"
NESTED = b'{"keep_id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def _created(sim_host: HostAgent, body: bytes, change: dict[str, object]) -> bytes:
    r = httpx.post(sim_host.url + "/v1/keeps", content=body,
                   headers={"Authorization": f"Bearer {sim_host.token}", "Content-Type": "application/json"},
                   timeout=60)
    return json.dumps(r.json() | change).encode()


@pytest.mark.parametrize(("answer", "kind", "words"), [
    ("bad-aux", HostAnswerError, "aux is not valid base64"),
    ("nested", HostAnswerError, "nests deeper than 32 levels"),
    ("not-json", HostAnswerError, "is not JSON"),
    ("escape-refusal", TransportError, "host agent refused"),
    ("escape-tee", AttestationError, "which is not a TEE"),
])
def test_malformed_answers_are_typed_per_host_and_spare_the_others(published, sim_host, policy_for,
                                                                   answer, kind, words) -> None:
    def create(h: BaseHTTPRequestHandler, body: bytes) -> None:
        if answer == "bad-aux":
            scripted.reply(h, 201, raw=_created(sim_host, body, {"aux": "%%%%not-base64"}))
        elif answer == "nested":
            scripted.reply(h, 201, raw=NESTED)
        elif answer == "not-json":
            scripted.reply(h, 201, raw=b'{"keep_id": "\xff')
        elif answer == "escape-refusal":
            scripted.reply(h, 503, {"error": f"busy{ESC}"})
        else:
            scripted.reply(h, 201, raw=_created(sim_host, body, {"tee": f"sim{ESC}"}))

    with scripted.agent(sim_host.url, {("POST", "/v1/keeps"): create}) as url:
        bad, good = run(published, sim_host, url, sim_host.url, policy=policy_for(sim_host))
    assert isinstance(bad.error, kind) and words in bad.error.message, bad.error
    assert "\x1b" not in bad.error.message and "\x07" not in bad.error.message
    assert good.error is None and MARKER in good.stdout


def test_cli_prints_host_strings_without_terminal_escapes(published, sim_host, policy_for) -> None:
    script = {("POST", "/v1/keeps"): lambda h, body: scripted.reply(h, 503, {"error": f"busy{ESC}"})}
    with scripted.agent(sim_host.url, script) as url:
        p = subprocess.run([sys.executable, "-m", "enarx_pkg", "deploy", published.plain, "--host", url,
                            "--host", sim_host.url, "--host-token-file", str(sim_host.token_file),
                            "--policy", str(policy_for(sim_host)), "--key", str(published.signer_pub),
                            "--insecure-sim"], cwd=REPO, capture_output=True, timeout=90,
                           env=_env() | {"COLUMNS": "400"})
    assert p.returncode == ExitCode.TRANSPORT, p.stderr  # the first failing host's code
    assert b"\x1b" not in p.stdout + p.stderr and b"\x07" not in p.stdout + p.stderr
    assert b"busy\\x1b]8;;http://evil.example\\x07click" in p.stdout  # visible, inert
    assert MARKER in p.stdout  # the honest host's row


# -- hole 8: tenants ------------------------------------------------------------------------------------

class Gate:
    """A stdin that gives its data only once opened (so the keep waits while the attacker tries)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.opened = data, threading.Event()

    def read1(self, n: int) -> bytes:
        self.opened.wait(60)
        out, self.data = self.data[:n], self.data[n:]
        return out

    read = read1


def test_another_tenant_cannot_feed_read_or_delete_my_keep(published, sim_host, policy_for) -> None:
    """The attacker holds the agent's shared token and learns the victim's keep id; the victim's keep
    takes nothing from it, and the victim's run finishes intact."""
    seen: list[str] = []

    def note(method: str, path: str, body: bytes) -> tuple[str, bytes]:
        seen.append(path)  # the attacker learns every keep id
        return path, body

    proxy = Proxy(sim_host.url, on_request=note, stream_responses=True)
    gate = Gate(b"victim input\n")
    answers: list[int] = []
    bodies: list[bytes] = []

    def attack() -> None:
        while not any(p.endswith("/provision") for p in seen):
            time.sleep(0.05)
        keep = next(p for p in seen if p.endswith("/provision")).split("/")[3]
        shared = {"Authorization": f"Bearer {sim_host.token}"}
        forged = seal.record(seal.R_INPUT, seal.Channel(b"k" * 32, keep_side=False).seal(seal.STDIN, b"evil\n"))
        for method, path, body in [("POST", "/stdin", forged), ("POST", "/provision", b"x" * 64), ("DELETE", "", b"")]:
            r = httpx.request(method, f"{sim_host.url}/v1/keeps/{keep}{path}", content=body, headers=shared)
            answers.append(r.status_code)
            bodies.append(r.content)
        gate.opened.set()

    with running(proxy):
        threading.Thread(target=attack, daemon=True).start()
        [r] = run(published, sim_host, proxy.url, policy=policy_for(sim_host), stdin=gate)
    assert answers == [404, 404, 404]
    assert r.error is None and r.status == 1 and MARKER in r.stdout
    assert r.stdout.endswith(b"victim input\n") and b"evil" not in r.stdout
    clean(b"".join(bodies))


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("ENARX_PKG_REGISTRY")} | \
        {"PROBE_SECRET_SOURCE": SECRET}


def test_cli_with_stdin_still_open_exits_cleanly_when_the_host_cuts_the_stream(published, sim_host,
                                                                                policy_for) -> None:
    """The host ends the output stream early while our stdin is still open and being read: the deploy
    is refused (exit 77) and the interpreter exits normally (it used to abort with SIGABRT, a reader
    thread holding stdin's buffer lock at shutdown)."""
    def cut(h: BaseHTTPRequestHandler, body: bytes) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "0")
        h.end_headers()

    with scripted.agent(sim_host.url, {("POST", "/provision"): cut}) as url:
        proc = subprocess.Popen([sys.executable, "-m", "enarx_pkg", "deploy", published.plain, "--host", url,
                                 "--host-token-file", str(sim_host.token_file), "--policy", str(policy_for(sim_host)),
                                 "--key", str(published.signer_pub), "--insecure-sim", "--stdin"],
                                cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=_env())
        try:
            assert proc.stderr is not None
            err = proc.stderr.read()  # stdin stays open: the deployer is still reading it when it exits
            code = proc.wait(60)
        finally:
            proc.kill()
            proc.wait()
    assert code == ExitCode.VERIFICATION_REFUSED, err
    assert b"ended before the sealed exit status" in err and b"Fatal Python error" not in err
