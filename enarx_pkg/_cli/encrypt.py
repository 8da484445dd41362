"""``encrypt``: ocicrypt-encrypt a package's layers for recipients, into a new layout to sign and publish."""

from __future__ import annotations

from pathlib import Path

import typer

encrypt_app = typer.Typer(add_completion=False, rich_markup_mode=None)


@encrypt_app.command()
def encrypt(
    package: str = typer.Argument(".", metavar="PACKAGE",
                                  help="Project DIR (the build of its current version), DIR:TAG or "
                                       "oci:LAYOUT[:TAG]."),
    recipient: list[Path] = typer.Option([], "--recipient", metavar="PUBKEY",
                                         help="Recipient public key PEM (RSA >= 2048 bits, or EC P-256/P-384/"
                                              "P-521: what skopeo/ocicrypt can unwrap); repeat for several."),
    output: Path = typer.Option(..., "--output", "-o", help="New OCI layout for the encrypted package."),
    ref: str = typer.Option(None, "--ref", help="Tag or digest, if the layout holds several packages."),
    for_skopeo: bool = typer.Option(False, "--for-skopeo",
                                    help="Do not encrypt: relabel the layers as OCI tar layers for "
                                         "`skopeo copy --encryption-key jwe:KEY` (which refuses wasm)."),
    from_skopeo: bool = typer.Option(False, "--from-skopeo",
                                     help="Do not encrypt: import LAYOUT as skopeo encrypted a --for-skopeo "
                                          "package, back under the package media types."),
    plaintext: str = typer.Option(None, "--plaintext", metavar="PACKAGE",
                                  help="With --from-skopeo: the package before relabelling, a project DIR or "
                                       "layout (its build record gives the signature's provenance)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Encrypt the wasm and Enarx.toml layers (ocicrypt, AES-256-CTR + HMAC, keys wrapped as JWE).

    The encrypted manifest is a new package: sign it (`enarx-pkg sign OUTPUT`) before publishing,
    since `deploy` verifies the signature of the manifest it resolves, which covers the ciphertext.
    """
    from enarx_pkg import encrypt as enc
    from enarx_pkg._cli.common import info, print_json
    from enarx_pkg.errors import UsageError
    from enarx_pkg.package import locate_local

    if for_skopeo + from_skopeo + bool(recipient) != 1 or (plaintext is not None and not from_skopeo):
        raise UsageError("give --recipient PUBKEY (encrypt), or --for-skopeo, or --from-skopeo [--plaintext LAYOUT]")
    keys = enc.read_recipients(recipient)
    found = locate_local(package, ref, command="encrypt")
    layout, digest = found.layout, found.digest
    if for_skopeo:
        out = enc.relabel_for_skopeo(layout, ref=digest, dest=output)
        next_step = f"encrypt it with: skopeo copy --encryption-key jwe:PUBKEY.pem oci:{out.path}:TAG oci:DIR:TAG"
    elif from_skopeo:
        before = locate_local(plaintext, command="encrypt --plaintext").layout if plaintext else None
        out = enc.import_from_skopeo(layout, ref=digest, dest=output, plaintext=before)
    else:
        out = enc.encrypt_layout(layout, keys, ref=digest, dest=output)
    if not for_skopeo:
        what = "imported skopeo's encryption" if from_skopeo else f"encrypted for {len(keys)} recipient(s)"
        next_step = f"{what}; sign it next: enarx-pkg sign {out.path} --key KEY"
    digest = out.resolve().digest  # the one package the new layout holds
    if as_json:
        print_json({"digest": digest, "layout": str(out.path), "recipients": len(keys) if keys else None})
        return
    info(next_step)
    print(f"{digest}  oci:{out.path}")
