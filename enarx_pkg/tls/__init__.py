"""Attested TLS: certificates that prove the key behind them lives in an attested keep.

Two kinds of certificate (docs/tls.md):

* **self-contained** (RA-TLS style): self-signed by the keep, carrying the keep's evidence in an
  extension whose ``report_data`` binds the certificate's public key and the package digest; any
  client checks it with :mod:`enarx_pkg.tls.verify` against its own policy;
* **CA-issued**: a deploy CA (``enarx-pkg ca init``), the deployer or ``enarx-pkg steward serve``
  attests the keep's CSR and issues a short-lived certificate carrying the digests of the appraised
  evidence, the package and the policy, so ``curl --cacert ca.crt`` works.

Our extension OIDs live under one arc, a UUID OID (ITU-T X.667, no registration needed):
:data:`ARC`. Nothing heavy is imported here.
"""

from __future__ import annotations

# 2.25.<the integer value of UUID 403f610c-617a-457c-89c0-fba1f3e4517f>
ARC = "2.25.85399674806959677432917496955431833983"
# the keep's evidence (self-contained certificates, and CSRs sent to a Steward)
OID_KEEP_EVIDENCE = ARC + ".1"
# what the issuer appraised (CA-issued certificates): evidence, package and policy digests
OID_APPRAISED_KEEP = ARC + ".2"
# report_data of a TLS key: SHA-512(prefix ‖ nonce ‖ SHA-256(SPKI DER) ‖ package digest)
BINDING_PREFIX = b"enarx-pkg/tls/v1"
