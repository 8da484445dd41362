"""enarx-pkg: build, sign, publish and deploy confidential WebAssembly workloads.

The public modules are named for what a user does (``manifest``, ``build``, ``package``,
``sign``, ``verify``, ``oci``, ``attestation``, ``keep``, ``host``, ``deploy``); everything
under ``_internal`` is plumbing with no stability promise.
"""

__version__ = "0.1.0"
