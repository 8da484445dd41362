"""Real Sigstore peers on loopback for the keyless and timestamp tests.

- sigstore's own mock Fulcio CA and Rekor log (npm ``@sigstore/mock``), served over HTTP by
  ``sigstore-js/mock-server.js`` (which says where it adapts the mock to sigstore-python's requests);
- an RFC 3161 timestamp authority: ``openssl ts -reply`` behind a small HTTP wrapper;
- sigstore-js's verifier (``@sigstore/verify``) as an independent judge of our bundles.

Together they make the ClientTrustConfig a private Sigstore deployment would publish.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SIGSTORE_JS = Path(__file__).resolve().parent / "sigstore-js"
ISSUER = "https://oidc.enarx.test"
IDENTITY = "https://github.com/enarx/demo/.github/workflows/release.yml@refs/heads/main"
SINCE = "2020-01-01T00:00:00Z"


def need_sigstore_js() -> None:
    if shutil.which("node") is None or not (SIGSTORE_JS / "node_modules/@sigstore/mock").is_dir():
        pytest.skip("sigstore-js peers not installed (scripts/install-npm-deps.sh runs npm ci in "
                    "tests/signing/sigstore-js)")


def oidc_token(sub: str = IDENTITY, iss: str = ISSUER, lifetime: int = 600) -> str:
    """An OIDC identity token as a CI provider issues it (the mock Fulcio does not check its signature)."""
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims = {"iss": iss, "sub": sub, "aud": "sigstore", "iat": now - 10, "nbf": now - 10, "exp": now + lifetime}
    part = [base64.urlsafe_b64encode(json.dumps(x).encode()).rstrip(b"=").decode()
            for x in ({"alg": "RS256", "typ": "JWT", "kid": "test"}, claims)]
    return ".".join(part) + "." + base64.urlsafe_b64encode(b"not-checked-by-the-mock").rstrip(b"=").decode()


def sigstore_js_verify(bundle: Path, trusted_root: Path, *args: str) -> dict[str, Any]:
    """sigstore-js's verdict on a bundle: {"ok": true, ...} or {"ok": false, "code", "message"}."""
    done = subprocess.run(["node", str(SIGSTORE_JS / "verify.js"), str(bundle), str(trusted_root), *args],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class PrivateSigstore:
    """The peers' URLs and the trust material a client needs for them."""

    url: str  # mock Fulcio + Rekor
    tsa_url: str
    trust_config: Path  # ClientTrustConfig JSON
    trusted_root: Path  # its trustedRoot alone (what sigstore-js takes)
    tsa_certs: tuple[bytes, ...]  # leaf, root (DER)


def _key_entry(url: str, spki_b64: str) -> dict[str, Any]:
    der = base64.b64decode(spki_b64)
    return {"baseUrl": url, "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": spki_b64, "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                          "validFor": {"start": SINCE}},
            "logId": {"keyId": base64.b64encode(hashlib.sha256(der).digest()).decode()}}


def _service(url: str) -> dict[str, Any]:
    return {"url": url, "majorApiVersion": 1, "validFor": {"start": SINCE}, "operator": "enarx-tests"}


def trust_config(mock: dict[str, str], tsa_url: str, tsa_chain: tuple[bytes, ...]) -> dict[str, Any]:
    """A ClientTrustConfig v0.1 for the mock Fulcio/Rekor and the openssl TSA."""
    b64 = [base64.b64encode(c).decode() for c in tsa_chain]
    root = {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [_key_entry(mock["url"], mock["rekorKey"])],
        "certificateAuthorities": [{"subject": {"organization": "sigstore.mock", "commonName": "sigstore"},
                                    "uri": mock["url"],
                                    "certChain": {"certificates": [{"rawBytes": mock["fulcioRoot"]}]},
                                    "validFor": {"start": SINCE}}],
        "ctlogs": [_key_entry(mock["url"], mock["ctlogKey"])],
        "timestampAuthorities": [{"subject": {"organization": "enarx tests", "commonName": "openssl ts"},
                                  "uri": tsa_url, "certChain": {"certificates": [{"rawBytes": c} for c in b64]},
                                  "validFor": {"start": SINCE}}],
    }
    signing = {"mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
               "caUrls": [_service(mock["url"])], "oidcUrls": [], "rekorTlogUrls": [_service(mock["url"])],
               "tsaUrls": [], "rekorTlogConfig": {"selector": "ANY"}, "tsaConfig": {"selector": "ANY"}}
    return {"mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": root, "signingConfig": signing}


@pytest.fixture(scope="session")
def private_sigstore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateSigstore]:
    """The mock Fulcio/Rekor and an openssl TSA on loopback, and the trust config naming them."""
    need_sigstore_js()
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("private-sigstore")
    with openssl_tsa(d / "tsa") as (tsa_url, chain), mock_sigstore(d, tsa_url, chain) as instance:
        yield instance


@contextmanager
def mock_sigstore(d: Path, tsa_url: str, tsa_chain: tuple[bytes, ...],
                  config: dict[str, Any] | None = None) -> Iterator[PrivateSigstore]:
    """One mock Fulcio/Rekor process (``config``: see mock-server.js) and its trust config in ``d``."""
    proc = subprocess.Popen(["node", str(SIGSTORE_JS / "mock-server.js"), json.dumps(config or {})],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"mock-server.js did not start: {proc.stderr.read() if proc.stderr else ''}")
        mock = json.loads(line)
        trust = trust_config(mock, tsa_url, tsa_chain)
        (d / "trust-config.json").write_text(json.dumps(trust, indent=1))
        (d / "trusted-root.json").write_text(json.dumps(trust["trustedRoot"], indent=1))
        yield PrivateSigstore(mock["url"], tsa_url, d / "trust-config.json", d / "trusted-root.json", tsa_chain)
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
          tsa: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    iname, ikey = (name, key)
    if issuer:
        iname, ikey = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer[0])]), issuer[1]
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(iname).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
         .not_valid_after(now + dt.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=not tsa, path_length=None), critical=True))
    if tsa:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
    else:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    return b.sign(ikey, hashes.SHA256())


# No `certs = chain`: openssl writes the SignedData certificate SET unsorted (not DER), which
# rfc3161-client (sigstore-python's parser too) refuses; the signer certificate alone is one element.
OPENSSL_TSA_CONF = """
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = {dir}
serial = $dir/serial
signer_cert = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.57264.2
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


class _TsaHandler(BaseHTTPRequestHandler):
    """POST an RFC 3161 TimeStampReq (DER); answer openssl's TimeStampResp."""

    conf: Path
    fail_with: ClassVar[list[int]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        query = self.rfile.read(min(length, 65536))
        if self.fail_with:
            self._send(self.fail_with[0], b"timestamp authority unavailable", "text/plain")
            return
        with tempfile.TemporaryDirectory() as tmp:
            qf = Path(tmp) / "q.tsq"
            qf.write_bytes(query)
            done = subprocess.run(["openssl", "ts", "-reply", "-config", str(self.conf), "-queryfile", str(qf),
                                   "-out", str(Path(tmp) / "r.tsr")], capture_output=True, timeout=30, check=False)
            if done.returncode != 0:
                self._send(400, done.stderr[-300:], "text/plain")
                return
            self._send(200, (Path(tmp) / "r.tsr").read_bytes(), "application/timestamp-reply")

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


class openssl_tsa:
    """``openssl ts -reply`` on a loopback port: yields (URL, (TSA cert DER, root DER))."""

    def __init__(self, d: Path) -> None:
        self.dir = d

    def __enter__(self) -> tuple[str, tuple[bytes, ...]]:
        d = self.dir
        d.mkdir(parents=True)
        root_key, tsa_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        root = _cert("enarx tests TSA root", root_key, None, tsa=False)
        leaf = _cert("enarx tests TSA", tsa_key, ("enarx tests TSA root", root_key), tsa=True)
        pem = serialization.Encoding.PEM
        (d / "tsa.pem").write_bytes(leaf.public_bytes(pem))
        (d / "chain.pem").write_bytes(leaf.public_bytes(pem) + root.public_bytes(pem))
        (d / "tsa.key").write_bytes(tsa_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
        (d / "tsa.key").chmod(0o600)
        (d / "serial").write_text("01\n")
        (d / "openssl.cnf").write_text(OPENSSL_TSA_CONF.format(dir=d))
        handler = type("Handler", (_TsaHandler,), {"conf": d / "openssl.cnf", "fail_with": []})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.handler = handler
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        der = serialization.Encoding.DER
        return f"http://127.0.0.1:{self.server.server_address[1]}/", (leaf.public_bytes(der), root.public_bytes(der))

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Failing(BaseHTTPRequestHandler):
    status = 503
    body = b'{"code":503,"message":"service unavailable"}'

    def _answer(self) -> None:
        self.rfile.read(min(int(self.headers.get("Content-Length", "0")), 65536))
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return


class failing_service:
    """A loopback HTTP service that answers every request with ``status`` and ``body``: yields its URL."""

    def __init__(self, status: int = 503, body: bytes = _Failing.body) -> None:
        handler = type("Handler", (_Failing,), {"status": status, "body": body})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)

    def __enter__(self) -> str:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def with_service(config: Path, out: Path, field: str, url: str) -> Path:
    """A copy of a trust config whose signing config sends ``field`` (caUrls, rekorTlogUrls) to ``url``."""
    obj = json.loads(config.read_text())
    obj["signingConfig"][field] = [_service(url)]
    out.write_text(json.dumps(obj))
    return out
