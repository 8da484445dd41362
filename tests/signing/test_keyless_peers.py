"""Keyless bundles judged by three verifiers: enarx-pkg, sigstore-python and sigstore-js.

Two sources of bad bundles, each checked against all three:
- our own keyless bundle (signed through the mock Fulcio/Rekor) changed one field at a time: the log
  entry's SET, integrated time, log index, log id, root hash, checkpoint, kind, the DSSE payload and
  signature, the bundle media type, an RFC 3161 timestamp;
- RFC 3161 timestamps from the openssl TSA of the trusted root, over another signature, or from an
  unknown TSA;
- bundles from a mis-issuing mock instance (mock-server.js's config): a certificate not valid at the
  log's integrated time, without an SCT, an OIDC issuer only in the new extension (…57264.1.8) or
  contradicting the legacy one (…1.1).

Rule: whatever either peer refuses, we refuse. Where the peers disagree it is said case by case.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from enarx_pkg import verify
from enarx_pkg.errors import Error
from tests.signing.conftest import make_package
from tests.signing.sigstore_peers import (
    IDENTITY,
    ISSUER,
    PrivateSigstore,
    mock_sigstore,
    oidc_token,
    openssl_tsa,
    sigstore_js_verify,
)

V1, V2 = "1.3.6.1.4.1.57264.1.1", "1.3.6.1.4.1.57264.1.8"
OTHER_ISSUER = "https://accounts.example.com"


def _statement(tmp: Path) -> tuple[bytes, str]:
    from enarx_pkg import provenance

    layout, desc = make_package(tmp / "layout", name="peers")
    return provenance.statement(desc.digest, layout.manifest(desc.digest), None, "peers"), desc.digest


def _sign(instance: PrivateSigstore, statement: bytes, *, check_sct: bool = True) -> bytes:
    """Sign with sigstore-python's own client (not ours: ours refuses to emit a bundle it cannot verify).

    ``check_sct=False`` switches off the client's own SCT check while SIGNING only (sigstore.sign's
    reference to it), so a certificate the instance issued without an SCT still reaches the verifiers."""
    if not check_sct:
        import sigstore.sign

        saved = sigstore.sign.verify_sct
        sigstore.sign.verify_sct = lambda *_a, **_k: None  # type: ignore[assignment]
        try:
            return _sign(instance, statement)
        finally:
            sigstore.sign.verify_sct = saved
    from sigstore import dsse
    from sigstore.models import ClientTrustConfig
    from sigstore.oidc import IdentityToken
    from sigstore.sign import SigningContext

    context = SigningContext.from_trust_config(ClientTrustConfig.from_json(instance.trust_config.read_text()))
    with context.signer(IdentityToken(oidc_token())) as signer:
        return signer.sign_dsse(dsse.Statement(statement)).to_json().encode()  # type: ignore[no-any-return]


def verdicts(bundle: bytes, digest: str, instance: PrivateSigstore, tmp: Path, identity: str = IDENTITY,
             issuer: str = ISSUER) -> dict[str, str]:
    """{"ours", "sigstore-python", "sigstore-js"} -> "ok" or the refusal."""
    from sigstore.models import Bundle, ClientTrustConfig
    from sigstore.verify import Verifier, policy

    out: dict[str, str] = {}
    try:
        verify.verify_bundle(bundle, digest, verify.IdentityPolicy(identity=identity, issuer=issuer,
                                                                   trust_config=str(instance.trust_config)))
        out["ours"] = "ok"
    except Error as exc:
        out["ours"] = f"refused: {exc}"
    try:
        root = ClientTrustConfig.from_json(instance.trust_config.read_text()).trusted_root
        Verifier(trusted_root=root).verify_dsse(Bundle.from_json(bundle), policy.Identity(identity=identity,
                                                                                           issuer=issuer))
        out["sigstore-python"] = "ok"
    except Exception as exc:  # the peer's whole error surface is its verdict
        out["sigstore-python"] = f"refused: {type(exc).__name__}: {exc}"
    (tmp / "judged.json").write_bytes(bundle)
    js = sigstore_js_verify(tmp / "judged.json", instance.trusted_root, "--identity", identity, "--issuer", issuer)
    out["sigstore-js"] = "ok" if js["ok"] else f"refused: {js['code']}: {js['message']}"
    return out


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory, private_sigstore: PrivateSigstore) -> tuple[bytes, str]:
    statement, digest = _statement(tmp_path_factory.mktemp("peers"))
    return _sign(private_sigstore, statement), digest


def _entry(b: dict[str, Any]) -> dict[str, Any]:
    return b["verificationMaterial"]["tlogEntries"][0]  # type: ignore[no-any-return]


def _flip(text: str, i: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[i] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _checkpoint_signature(b: dict[str, Any]) -> None:
    proof = _entry(b)["inclusionProof"]["checkpoint"]
    lines = proof["envelope"].split("\n")
    sig = lines[-2].split(" ")[-1]
    lines[-2] = lines[-2].replace(sig, _flip(sig, len(base64.b64decode(sig)) - 3))
    proof["envelope"] = "\n".join(lines)


def _payload(b: dict[str, Any]) -> None:
    statement = json.loads(base64.b64decode(b["dsseEnvelope"]["payload"]))
    statement["predicate"]["buildDefinition"]["buildType"] = "https://example.com/other"
    b["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()


SIGSTORE_V01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"
# mutation -> (change, which peers refuse). Every one: we refuse.
MUTATIONS: dict[str, tuple[Callable[[dict[str, Any]], object], set[str]]] = {
    "SET (inclusion promise) signature": (
        lambda b: _entry(b)["inclusionPromise"].update(signedEntryTimestamp=_flip(
            _entry(b)["inclusionPromise"]["signedEntryTimestamp"], 20)), {"sigstore-python", "sigstore-js"}),
    "integrated time moved by 1 s": (
        lambda b: _entry(b).update(integratedTime=str(int(_entry(b)["integratedTime"]) + 1)),
        {"sigstore-python", "sigstore-js"}),
    "log index": (lambda b: _entry(b).update(logIndex=str(int(_entry(b)["logIndex"]) + 1)),
                  {"sigstore-python", "sigstore-js"}),
    "log id of another log": (lambda b: _entry(b)["logId"].update(keyId=_flip(_entry(b)["logId"]["keyId"], 0)),
                              {"sigstore-python", "sigstore-js"}),
    "checkpoint signature": (_checkpoint_signature, {"sigstore-python", "sigstore-js"}),
    # sigstore-js checks the checkpoint's root hash, not the proof's copy of it; sigstore-python both
    "inclusion proof root hash": (lambda b: _entry(b)["inclusionProof"].update(rootHash=_flip(
        _entry(b)["inclusionProof"]["rootHash"], 3)), {"sigstore-python"}),
    "no inclusion promise (and no timestamp)": (lambda b: _entry(b).pop("inclusionPromise"),
                                                {"sigstore-python", "sigstore-js"}),
    "no log entry": (lambda b: b["verificationMaterial"].update(tlogEntries=[]), {"sigstore-python", "sigstore-js"}),
    "the log entry twice": (lambda b: b["verificationMaterial"]["tlogEntries"].append(copy.deepcopy(_entry(b))),
                            {"sigstore-python", "sigstore-js"}),
    "entry kind version": (lambda b: _entry(b)["kindVersion"].update(version="0.0.2"),
                           {"sigstore-python", "sigstore-js"}),
    "DSSE payload": (_payload, {"sigstore-python", "sigstore-js"}),
    "DSSE signature": (lambda b: b["dsseEnvelope"]["signatures"][0].update(sig=_flip(
        b["dsseEnvelope"]["signatures"][0]["sig"], 12)), {"sigstore-python", "sigstore-js"}),
    # a v0.1 bundle must carry x509CertificateChain; sigstore-js does not hold it to that
    "v0.1 media type over v0.3 material": (lambda b: b.update(mediaType=SIGSTORE_V01), {"sigstore-python"}),
    "RFC 3161 timestamp that is not one": (
        lambda b: b["verificationMaterial"].update(timestampVerificationData={"rfc3161Timestamps": [
            {"signedTimestamp": base64.b64encode(bytes.fromhex("3003020100")).decode()}]}),
        {"sigstore-python", "sigstore-js"}),
}


def test_our_keyless_bundle_is_accepted_by_all_three(signed: tuple[bytes, str], private_sigstore: PrivateSigstore,
                                                     tmp_path: Path) -> None:
    bundle, digest = signed
    assert verdicts(bundle, digest, private_sigstore, tmp_path) == \
        {"ours": "ok", "sigstore-python": "ok", "sigstore-js": "ok"}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_mutated_bundle_refused_by_us_whenever_a_peer_refuses(name: str, signed: tuple[bytes, str],
                                                              private_sigstore: PrivateSigstore,
                                                              tmp_path: Path) -> None:
    change, refusers = MUTATIONS[name]
    obj = json.loads(signed[0])
    change(obj)
    got = verdicts(json.dumps(obj).encode(), signed[1], private_sigstore, tmp_path)
    assert got["ours"].startswith("refused: "), got
    assert {peer for peer in ("sigstore-python", "sigstore-js") if got[peer] != "ok"} == refusers, got
    assert "Traceback" not in got["ours"] and "internal error" not in got["ours"]


@pytest.mark.parametrize("case", ["from the trusted TSA", "over another signature", "from a TSA not in the root"])
def test_rfc3161_timestamp_on_a_keyless_bundle(case: str, signed: tuple[bytes, str],
                                               private_sigstore: PrivateSigstore, tmp_path: Path) -> None:
    """A signed timestamp beside the log entry: a good one is accepted by all three. One over another
    signature, or signed by a TSA the trusted root does not list: sigstore-js refuses the bundle;
    sigstore-python skips that timestamp (the log's time suffices) and accepts. We refuse (we used to
    accept)."""
    from enarx_pkg._internal.sigstore_services import timestamp

    obj = json.loads(signed[0])
    signature = base64.b64decode(obj["dsseEnvelope"]["signatures"][0]["sig"])
    if case == "from a TSA not in the root":
        with openssl_tsa(tmp_path / "tsa") as (url, _chain):
            token = timestamp(url, signature)
    else:
        token = timestamp(private_sigstore.tsa_url, signature + (b"x" if case == "over another signature" else b""))
    obj["verificationMaterial"]["timestampVerificationData"] = {
        "rfc3161Timestamps": [{"signedTimestamp": base64.b64encode(token).decode()}]}
    got = verdicts(json.dumps(obj).encode(), signed[1], private_sigstore, tmp_path)
    if case == "from the trusted TSA":
        assert got == {"ours": "ok", "sigstore-python": "ok", "sigstore-js": "ok"}
    else:
        assert got["ours"].startswith("refused: ") and "RFC 3161 timestamp(s) do not verify" in got["ours"], got
        assert (got["sigstore-python"], got["sigstore-js"][:26]) == ("ok", "refused: TIMESTAMP_ERROR: "), got


def test_identity_is_matched_exactly(signed: tuple[bytes, str], private_sigstore: PrivateSigstore,
                                     tmp_path: Path) -> None:
    """A prefix of the identity: sigstore-js reads its policy SAN as an unanchored regexp and accepts;
    sigstore-python (and cosign's --certificate-identity) compare exactly: refused."""
    got = verdicts(*signed, private_sigstore, tmp_path, identity=IDENTITY.removesuffix("main"))
    assert got["ours"].startswith("refused: ") and "does not match" in got["ours"]
    assert got["sigstore-python"] != "ok" and got["sigstore-js"] == "ok"


# --- a mock instance that mis-issues, one way at a time ---

HOUR = dt.timedelta(hours=1)


INSTANCES: dict[str, tuple[dict[str, Any], set[str]]] = {
    # the log records the entry an hour after the 10-minute certificate expired
    "certificate expired at the integrated time": ({"tlogClock": HOUR},
                                                   {"sigstore-python", "sigstore-js"}),
    # the certificate becomes valid an hour after the log recorded the entry
    "certificate not yet valid at the integrated time": ({"tlogClock": -HOUR},
                                                         {"sigstore-python", "sigstore-js"}),
    # sigstore-python reads the issuer from …1.1 only; sigstore-js prefers …1.8
    "issuer only in the new extension": ({"extensions": {V1: None}}, {"sigstore-python"}),
    "legacy issuer contradicts the new one": ({"extensions": {V1: OTHER_ISSUER}}, {"sigstore-python"}),
    "new issuer contradicts the legacy one": ({"extensions": {V2: OTHER_ISSUER}}, {"sigstore-js"}),
    "issuer only in the legacy extension (accepted)": ({"extensions": {V2: None}}, set()),
    "certificate without an SCT": ({"ct": False}, {"sigstore-python", "sigstore-js"}),
}


@pytest.mark.parametrize("name", list(INSTANCES))
def test_mis_issued_bundle_refused_by_us_whenever_a_peer_refuses(name: str, private_sigstore: PrivateSigstore,
                                                                 tmp_path: Path) -> None:
    config, refusers = INSTANCES[name]
    if "tlogClock" in config:  # an offset from now, taken when the test runs (the CA issues at its own now)
        config = {**config, "tlogClock": (dt.datetime.now(dt.UTC) + config["tlogClock"]).isoformat()}
    statement, digest = _statement(tmp_path)
    with mock_sigstore(tmp_path, private_sigstore.tsa_url, private_sigstore.tsa_certs, config) as instance:
        bundle = _sign(instance, statement, check_sct=config.get("ct", True))
        got = verdicts(bundle, digest, instance, tmp_path)
    assert {peer for peer in ("sigstore-python", "sigstore-js") if got[peer] != "ok"} == refusers, got
    assert (got["ours"] == "ok") == (not refusers), got


# --- identity rules on certificates made here (the mock issues only one URI): ours vs sigstore-python ---

def _certificate(names: list[Any], extensions: dict[str, bytes]) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([])
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
         .serial_number(1).not_valid_before(dt.datetime(2025, 1, 1)).not_valid_after(dt.datetime(2030, 1, 1))
         .add_extension(x509.SubjectAlternativeName(names), critical=True))
    for oid, value in extensions.items():
        b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False)
    return b.sign(key, hashes.SHA256())


def _der_utf8(text: str) -> bytes:
    return bytes([0x0C, len(text)]) + text.encode()


def _cases() -> dict[str, tuple[list[Any], dict[str, bytes], bool, str]]:
    from cryptography import x509

    uri, email = x509.UniformResourceIdentifier(IDENTITY), x509.RFC822Name("mallory@example.com")
    both = {V1: ISSUER.encode(), V2: _der_utf8(ISSUER)}
    username = x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.7"), _der_utf8(IDENTITY))
    return {  # name -> (SANs, extensions, sigstore-python accepts?, our reason)
        "as Fulcio issues (control)": ([uri], both, True, ""),
        "a second identity beside the one asked for": ([email, uri], both, True, "names 2 identities"),
        "a username otherName": ([username], both, False, "OtherName"),
        "new issuer extension not DER": ([uri], {V1: ISSUER.encode(), V2: ISSUER.encode()}, True, "disagree"),
        "new issuer with bytes after the string": ([uri], {V1: ISSUER.encode(), V2: _der_utf8(ISSUER) + b"x"},
                                                    True, "disagree"),
        "legacy issuer not UTF-8": ([uri], {V1: b"\xff" + ISSUER.encode()}, False, "not UTF-8"),
    }


@pytest.mark.parametrize("name", list(_cases()))
def test_certificate_identity_rules(name: str) -> None:
    """Where sigstore-python would accept a certificate sigstore-js judges differently (it reads only the
    first URI or email, and the issuer from …1.8's DER string), we refuse: one rule both agree with."""
    from sigstore.errors import VerificationError as SigstoreVerificationError
    from sigstore.verify import policy

    from enarx_pkg._internal.sigstore_keyless import IdentityMatch

    sans, extensions, peer_accepts, reason = _cases()[name]
    cert = _certificate(sans, extensions)
    try:
        policy.Identity(identity=IDENTITY, issuer=ISSUER).verify(cert)
        peer = True
    except (SigstoreVerificationError, UnicodeDecodeError):
        peer = False
    assert peer == peer_accepts
    ours = IdentityMatch(IDENTITY, ISSUER)
    if not reason:
        ours.verify(cert)
        return
    with pytest.raises(SigstoreVerificationError, match=reason):
        ours.verify(cert)


def test_cli_refuses_a_bundle_with_a_timestamp_that_does_not_verify(
        signed: tuple[bytes, str], private_sigstore: PrivateSigstore, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`verify --bundle` as a user runs it: exit 77 and the reason; the bundle without it still exits 0."""
    from enarx_pkg._cli.main import main
    from enarx_pkg._internal.sigstore_services import timestamp

    obj = json.loads(signed[0])
    (tmp_path / "good.json").write_bytes(signed[0])
    signature = base64.b64decode(obj["dsseEnvelope"]["signatures"][0]["sig"])
    token = timestamp(private_sigstore.tsa_url, signature + b"x")
    obj["verificationMaterial"]["timestampVerificationData"] = {
        "rfc3161Timestamps": [{"signedTimestamp": base64.b64encode(token).decode()}]}
    (tmp_path / "bad.json").write_text(json.dumps(obj))
    args = ["--digest", signed[1], "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER,
            "--trust-config", str(private_sigstore.trust_config)]
    assert main(["verify", "--bundle", str(tmp_path / "good.json"), *args]) == 0
    capsys.readouterr()
    assert main(["verify", "--bundle", str(tmp_path / "bad.json"), *args]) == 77
    err = capsys.readouterr().err
    assert "RFC 3161 timestamp(s) do not verify" in err and "Traceback" not in err
