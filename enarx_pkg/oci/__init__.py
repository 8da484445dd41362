"""OCI registry client: references, authentication, streamed and verified blob transfer.

Used by ``publish`` and ``pull`` and, inside the keep, to fetch a package by digest. It has no
dependency on the CLI.
"""

import sys

# httpx imports its own command-line tool (click, rich, pygments) on import, ~80 ms of a ~300 ms
# start; a None entry makes that optional import fail fast, as it does when those are absent.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

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
