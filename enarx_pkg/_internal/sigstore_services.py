"""The two services a key-based signature may use: an RFC 3161 timestamp authority and Rekor.

Key-based bundles need no service at all (air-gapped use); with ``--timestamp-server`` the DSSE
signature gets a signed timestamp, with ``--tlog-upload`` a Rekor v1 ``dsse`` entry, as cosign adds
by default. TimeStampReq/Resp DER comes from rfc3161-client (what sigstore-python uses; importing
it does not import sigstore). Each failure names the service, its URL and the reason (exit 69);
an answer that breaks the protocol is refused (exit 77).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from enarx_pkg._internal import bounded, canonical, dsse
from enarx_pkg.errors import TransportError, VerificationError

TIMEOUT_S = 30.0
MAX_ANSWER_BYTES = 1024 * 1024
PUBLIC_REKOR = "https://rekor.sigstore.dev"


def timestamp(url: str, signature: bytes) -> bytes:
    """A TimeStampResponse (DER) from the TSA at ``url`` over SHA-256(``signature``), checked to
    be granted, to echo our nonce and to cover exactly this signature."""
    from rfc3161_client import HashAlgorithm, TimestampRequestBuilder, decode_timestamp_response

    req = TimestampRequestBuilder().hash_algorithm(HashAlgorithm.SHA256).data(signature).nonce(nonce=True).build()
    body = _post("TSA", url, req.as_bytes(), "application/timestamp-query")
    try:
        resp = decode_timestamp_response(body)
        info = resp.tst_info
        granted = resp.status in (0, 1)
        matches = info.nonce == req.nonce and info.message_imprint.message == hashlib.sha256(signature).digest()
    except ValueError as exc:
        raise VerificationError(f"TSA returned a malformed timestamp: {exc}", hint=f"service at {url}") from None
    if not granted:
        raise TransportError(f"TSA failed: timestamp not granted (PKIStatus {resp.status})", url=url)
    if not matches:
        raise VerificationError("TSA answered for another request (nonce or message imprint differ)",
                                hint=f"service at {url}")
    return resp.as_bytes()  # type: ignore[no-any-return]


def verified_time(token: bytes, signature: bytes, trust_config: str) -> str:
    """The time an RFC 3161 TimeStampResponse over ``signature`` vouches for, checked against the
    timestamp authorities of ``trust_config``'s trusted root; raise unless one of them signed it."""
    from cryptography import x509
    from rfc3161_client import VerifierBuilder, decode_timestamp_response

    try:
        resp = decode_timestamp_response(token)
    except ValueError as exc:
        raise VerificationError(f"RFC 3161 timestamp is malformed: {exc}") from None
    for chain in _tsa_chains(trust_config):
        certs = [x509.load_der_x509_certificate(c) for c in chain]
        builder = VerifierBuilder().tsa_certificate(certs[0]).add_root_certificate(certs[-1])
        for middle in certs[1:-1]:
            builder = builder.add_intermediate_certificate(middle)
        try:
            if builder.build().verify_message(resp, signature):
                return str(resp.tst_info.gen_time.strftime("%Y-%m-%dT%H:%M:%SZ"))
        except Exception:  # noqa: S112 (rfc3161-client raises its own error types: try the next TSA)
            continue
    raise VerificationError(f"RFC 3161 timestamp is not signed by a timestamp authority of {trust_config}, "
                            "or is not over this signature")


def _tsa_chains(trust_config: str) -> list[list[bytes]]:
    """DER certificate chains (leaf first) of a trust config's ``trustedRoot.timestampAuthorities``."""
    obj = _trust_config_json(trust_config)
    root = obj.get("trustedRoot") if isinstance(obj.get("trustedRoot"), dict) else {}
    out = []
    for tsa in root.get("timestampAuthorities") or []:  # type: ignore[union-attr]
        certs = _nested(tsa, "certChain", "certificates")
        chain = [base64.b64decode(c["rawBytes"]) for c in certs if isinstance(c, dict) and "rawBytes" in c] \
            if isinstance(certs, list) else []
        if chain:
            out.append(chain)
    return out


def _nested(obj: Any, *keys: str) -> Any:
    for k in keys:
        obj = obj.get(k) if isinstance(obj, dict) else None
    return obj


def upload_dsse(rekor_url: str, envelope: dsse.Envelope, public_key_pem: bytes) -> dict[str, Any]:
    """Log a key-signed DSSE envelope in Rekor (v1 API, ``dsse`` 0.0.1); the bundle's tlog entry."""
    proposed = {"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {
        "envelope": canonical.dumps(envelope.to_json()).decode(),
        "verifiers": [base64.b64encode(public_key_pem).decode()]}}}
    url = rekor_url.rstrip("/") + "/api/v1/log/entries"
    body = _post("Rekor", url, json.dumps(proposed).encode(), "application/json")
    try:
        return _tlog_entry(json.loads(body))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise VerificationError(f"Rekor returned a malformed log entry ({type(exc).__name__}: {exc})",
                                hint=f"service at {url}") from None


def _tlog_entry(answer: dict[str, Any]) -> dict[str, Any]:
    """Rekor's ``{uuid: entry}`` answer as a bundle v0.3 ``tlogEntries`` item (protobuf-specs JSON)."""
    (entry,) = answer.values()
    proof = entry["verification"]["inclusionProof"]
    body = json.loads(base64.b64decode(entry["body"], validate=True))
    return {
        "logIndex": str(int(entry["logIndex"])),
        "logId": {"keyId": base64.b64encode(bytes.fromhex(entry["logID"])).decode()},
        "kindVersion": {"kind": str(body["kind"]), "version": str(body["apiVersion"])},
        "integratedTime": str(int(entry["integratedTime"])),
        "inclusionPromise": {"signedEntryTimestamp": str(entry["verification"]["signedEntryTimestamp"])},
        "inclusionProof": {
            "logIndex": str(int(proof["logIndex"])),
            "rootHash": base64.b64encode(bytes.fromhex(proof["rootHash"])).decode(),
            "treeSize": str(int(proof["treeSize"])),
            "hashes": [base64.b64encode(bytes.fromhex(h)).decode() for h in proof["hashes"]],
            "checkpoint": {"envelope": str(proof["checkpoint"])},
        },
        "canonicalizedBody": str(entry["body"]),
    }


def rekor_url(trust_config: str | None) -> str:
    """The Rekor v1 log a trust config's signing config names (the public one without a config)."""
    if trust_config is None:
        return PUBLIC_REKOR
    from enarx_pkg.errors import InputError

    obj = _trust_config_json(trust_config)
    logs = obj.get("signingConfig", {}).get("rekorTlogUrls", []) if isinstance(obj.get("signingConfig"), dict) else []
    urls = [s.get("url") for s in logs if isinstance(s, dict) and s.get("majorApiVersion") == 1]
    if not urls or not isinstance(urls[0], str):
        raise InputError(f"trust config {trust_config}: signingConfig.rekorTlogUrls names no Rekor v1 log")
    return urls[0]


def _trust_config_json(trust_config: str) -> dict[str, Any]:
    from pathlib import Path

    from enarx_pkg._internal.bounded import json_object
    from enarx_pkg.errors import NotFoundError

    path = Path(trust_config)
    if not path.is_file():
        raise NotFoundError(f"trust config {trust_config} does not exist")
    return json_object(path.read_bytes(), f"trust config {trust_config}", MAX_ANSWER_BYTES)


def _post(service: str, url: str, data: bytes, content_type: str) -> bytes:
    import httpx

    try:
        with httpx.Client(timeout=TIMEOUT_S) as client, client.stream(
                "POST", url, content=data, headers={"Content-Type": content_type}) as resp:
            body = bounded.read(resp, MAX_ANSWER_BYTES)
            status = resp.status_code
    except httpx.HTTPError as exc:
        reason = "cannot connect" if isinstance(exc, httpx.ConnectError) else type(exc).__name__
        raise TransportError(f"{service} failed: {reason}", url=url) from None
    if body is None:
        raise TransportError(f"{service} failed: answer over {MAX_ANSWER_BYTES} bytes", url=url)
    if status not in (200, 201):
        text = " ".join(body.decode("utf-8", "replace").split())[:200]
        raise TransportError(f"{service} failed: HTTP {status}" + (f": {text}" if text else ""), url=url)
    return body
