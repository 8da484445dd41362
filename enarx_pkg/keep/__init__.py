"""The keep runtime: one OS process per keep, started by the host agent (``python -m enarx_pkg.keep``).

Inside a keep: a fresh X25519 key, evidence binding it to the deployer's nonce, the HPKE envelope opened,
the package pulled by digest, decrypted and checked, then run in wasmtime with sealed stdio.
"""
