"""``keys generate``, ``sign`` and ``verify``: thin wrappers over enarx_pkg.keys/sign/verify."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from enarx_pkg._cli.common import info, print_json

keys_app = typer.Typer(add_completion=False, rich_markup_mode=None, no_args_is_help=True)
sign_app = typer.Typer(add_completion=False, rich_markup_mode=None)
verify_app = typer.Typer(add_completion=False, rich_markup_mode=None)

PASSWORD_ENV = "ENARX_PKG_KEY_PASSWORD"  # noqa: S105 (an environment variable's name)


@keys_app.callback()
def keys_group() -> None:
    """Generate signing keys (ECDSA P-256, PEM)."""


@keys_app.command("generate")
def generate(
    out: Path = typer.Option(Path("enarx"), "--out", help="Write OUT.key (private, 0600) and OUT.pub."),
    password_env: str = typer.Option(PASSWORD_ENV, "--password-env", metavar="VAR",
                                     help="Encrypt the private key with the passphrase in this environment "
                                          "variable (unset or empty: unencrypted)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing key files."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Generate an ECDSA P-256 key pair for `enarx-pkg sign --key`."""
    from enarx_pkg import keys

    pair = keys.generate(out, password_env=password_env, force=force)
    result = {"privateKey": str(pair.private_path), "publicKey": str(pair.public_path),
              "fingerprint": pair.fingerprint, "encrypted": pair.encrypted}
    if as_json:
        print_json(result)
        return
    print(f"private key: {pair.private_path} ({'encrypted' if pair.encrypted else 'NOT encrypted'}, mode 0600)")
    print(f"public key:  {pair.public_path}")
    print(f"fingerprint: {pair.fingerprint}")


@sign_app.command()
def sign(
    target: str = typer.Argument(".", metavar="LAYOUT|PROJECT|REF",
                                 help="OCI layout, project dir, or registry reference (signatures are pushed back)."),
    key: str | None = typer.Option(None, "--key", help="Private key (PEM) to sign with."),
    keyless: bool = typer.Option(False, "--keyless", help="Sign with a Fulcio certificate for your OIDC identity."),
    identity_token: str | None = typer.Option(None, "--identity-token", metavar="FILE",
                                              help="File holding the OIDC token for --keyless ('-': stdin). A "
                                                   "token itself is never taken from the command line. Default: "
                                                   "the SIGSTORE_ID_TOKEN variable, then ambient CI credentials."),
    staging: bool = typer.Option(False, "--staging", help="Use the sigstore staging instance."),
    trust_config: str | None = typer.Option(None, "--trust-config", metavar="FILE",
                                            help="sigstore ClientTrustConfig JSON of a private Sigstore "
                                                 "(trusted root + Fulcio/Rekor/TSA URLs); default: public sigstore."),
    timestamp_server: str | None = typer.Option(None, "--timestamp-server", metavar="URL",
                                                help="With --key: add an RFC 3161 timestamp from this TSA."),
    tlog_upload: bool = typer.Option(False, "--tlog-upload",
                                     help="With --key: log the signature in Rekor (the trust config's, "
                                          "else the public one), as cosign does."),
    ref: str | None = typer.Option(None, "--ref", help="Tag or digest of the manifest, if the layout holds several."),
    password_env: str = typer.Option(PASSWORD_ENV, "--password-env", metavar="VAR",
                                     help="Environment variable holding the private key's passphrase."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Sign a package: SLSA provenance in a sigstore bundle, attached as an OCI referrer."""
    from enarx_pkg import sign as signing

    token = _identity_token(identity_token)
    result = signing.sign_target(target, signing.SignSettings(
        key, keyless, token, staging, password_env, ref, trust_config=trust_config,
        timestamp_server=timestamp_server, tlog_upload=tlog_upload))
    if as_json:
        print_json(result.to_json())
        return
    print(f"signed {result.subject_name}@{result.manifest_digest}")
    print(f"  signer:    {result.signer} ({result.kind})")
    print(f"  predicate: {result.predicate_type}")
    print(f"  referrer:  {result.referrer_digest} (bundle {result.bundle_digest})")


@verify_app.command()
def verify(
    target: str | None = typer.Argument(None, metavar="LAYOUT|PROJECT|REF",
                                        help="OCI layout, project dir or reference (default: the current "
                                             "directory; not with --bundle)."),
    key: str | None = typer.Option(None, "--key", help="Public key (PEM) the package must be signed with."),
    identity: str | None = typer.Option(None, "--certificate-identity", metavar="ID",
                                        help="Signer identity (certificate SAN: email or URI)."),
    identity_regexp: str | None = typer.Option(None, "--certificate-identity-regexp", metavar="RE",
                                               help="Regexp the whole identity must match."),
    issuer: str | None = typer.Option(None, "--certificate-oidc-issuer", metavar="ISS",
                                      help="OIDC issuer that vouched for the identity."),
    issuer_regexp: str | None = typer.Option(None, "--certificate-oidc-issuer-regexp", metavar="RE",
                                             help="Regexp the whole issuer must match."),
    offline: bool = typer.Option(True, "--offline/--online",
                                 help="Use the embedded sigstore trusted roots, no network (default)."),
    staging: bool = typer.Option(False, "--staging", help="Trust the sigstore staging root, not production."),
    trust_config: str | None = typer.Option(None, "--trust-config", metavar="FILE",
                                            help="sigstore ClientTrustConfig JSON of a private Sigstore "
                                                 "(trusted root + Fulcio/Rekor/TSA URLs); default: public sigstore."),
    ref: str | None = typer.Option(None, "--ref", help="Tag or digest of the manifest, if the layout holds several."),
    bundle: str | None = typer.Option(None, "--bundle", metavar="FILE",
                                      help="Verify this standalone sigstore bundle instead (needs --digest)."),
    subject_digest: str | None = typer.Option(None, "--digest", metavar="sha256:HEX",
                                              help="With --bundle: the digest the bundle must be about."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Verify a package's signatures; exit 77 if none satisfies the policy, 65 if bundles are malformed."""
    from enarx_pkg import verify as verifying
    from enarx_pkg.errors import UsageError

    settings = verifying.VerifySettings(key, identity, identity_regexp, issuer, issuer_regexp, staging,
                                        offline, ref, trust_config)
    if bundle is None and target is None:
        target = "."
    if (bundle is None) == (target is None) or (bundle is not None) != (subject_digest is not None):
        raise UsageError("give a LAYOUT|PROJECT|REF, or --bundle FILE with --digest sha256:HEX")
    if bundle is not None and subject_digest is not None:
        report = verifying.verify_bundle_file(bundle, subject_digest, settings)
    else:
        assert target is not None
        report = verifying.verify_target(target, settings)
    if as_json:
        print_json(report.to_json())
        return
    _render(report, standalone=bundle is not None)


def _render(report: Any, standalone: bool = False) -> None:
    print(f"verified {report.manifest_digest}: " + ("bundle is about this digest" if standalone
                                                    else "package blobs match the manifest"))
    for sig in report.verified:
        who = sig.signer + (f" (issuer {sig.issuer})" if sig.issuer else f" ({sig.kind})")
        print(f"  OK  signed by {who}")
        print(f"      when:    {sig.time or 'unknown'}" + (f" [{sig.time_source}]" if sig.time_source else ""))
        p = sig.provenance
        if p:
            print(f"      builder: {p.builder}")
            print(f"      source:  {p.source()}")
            print(f"      command: {p.command or '?'} ({p.inputs} input digests)")
            if p.plaintext_digest:
                print(f"      encrypted from: {p.plaintext_digest}")
    for refused in report.refused:
        info(f"  --  signature {refused.referrer} not accepted: {refused.reason}")


def _identity_token(source: str | None) -> str | None:
    """Read the OIDC token from a file or stdin, else SIGSTORE_ID_TOKEN; never from argv (it is a credential)."""
    import os
    import sys
    from pathlib import Path

    from enarx_pkg.errors import UsageError

    if source is None:
        return os.environ.get("SIGSTORE_ID_TOKEN") or None
    if source == "-":
        return sys.stdin.read(65536).strip() or None
    path = Path(source)
    if not path.exists() and source.count(".") == 2 and source.startswith("eyJ"):  # a JWT on the command line
        raise UsageError("--identity-token takes a FILE holding the token, not the token itself",
                         hint="write it to a 0600 file, pipe it with --identity-token -, or set SIGSTORE_ID_TOKEN")
    from enarx_pkg._internal import bounded

    return bounded.file(path, "identity token file", 65536).decode("utf-8", "replace").strip() or None
