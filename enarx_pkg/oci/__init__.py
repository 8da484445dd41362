"""OCI registry client: references, authentication, streamed and verified blob transfer.

Used by ``publish`` and ``pull`` and, inside the keep, to fetch a package by digest. It has no
dependency on the CLI.
"""

from enarx_pkg.oci.auth import AuthError, Credential, CredentialSource
from enarx_pkg.oci.client import Client, FetchedManifest
from enarx_pkg.oci.reference import Reference, Registry, parse, parse_registry
from enarx_pkg.oci.transport import Settings

__all__ = [
    "AuthError",
    "Client",
    "Credential",
    "CredentialSource",
    "FetchedManifest",
    "Reference",
    "Registry",
    "Settings",
    "parse",
    "parse_registry",
]
