"""``encrypt``: ocicrypt-encrypt a package's layers for recipients, into a new layout to sign and publish."""

from __future__ import annotations

from pathlib import Path

import typer

encrypt_app = typer.Typer(add_completion=False, rich_markup_mode=None)


@encrypt_app.command()
def encrypt(
    layout: Path = typer.Argument(..., help="OCI layout of the package (e.g. DIR/target/oci)."),
    recipient: list[Path] = typer.Option(..., "--recipient", metavar="PUBKEY",
                                         help="Recipient public key PEM (RSA, EC P-256 or X25519); repeat for "
                                              "several."),
    output: Path = typer.Option(..., "--output", "-o", help="New OCI layout for the encrypted package."),
    ref: str = typer.Option(None, "--ref", help="Tag or digest, if the layout holds several packages."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Encrypt the wasm and Enarx.toml layers (ocicrypt, AES-256-CTR + HMAC, keys wrapped as JWE).

    The encrypted manifest is a new package: sign it (`enarx-pkg sign OUTPUT`) before publishing,
    since `deploy` verifies the signature of the manifest it resolves, which covers the ciphertext.
    """
    from enarx_pkg._cli.common import info, print_json
    from enarx_pkg.encrypt import encrypt_layout
    from enarx_pkg.errors import NotFoundError
    from enarx_pkg.package import Layout

    keys = []
    for path in recipient:
        if not path.is_file():
            raise NotFoundError(f"recipient public key {path} does not exist")
        keys.append(path.read_bytes()[:65536])
    out = encrypt_layout(Layout.open(layout), keys, ref=ref, dest=output)
    digest = out.resolve(ref).digest
    if as_json:
        print_json({"digest": digest, "layout": str(out.path), "recipients": len(keys)})
        return
    info(f"encrypted for {len(keys)} recipient(s); sign it next: enarx-pkg sign {out.path} --key KEY")
    print(f"{digest}  oci:{out.path}")
