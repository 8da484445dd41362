"""Errors of the attestation verifiers: every one names the check that failed."""

from __future__ import annotations

from enarx_pkg.errors import AttestationError, ExitCode


class EvidenceError(AttestationError):
    """Evidence was well-formed but a verification check failed (signature, chain, binding, time)."""

    def __init__(self, check: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{check}: {message}", hint=hint)
        self.check = check


class MalformedEvidence(EvidenceError):
    """Evidence (or collateral) could not be parsed: truncated, wrong magic, unknown version."""

    exit_code = ExitCode.INVALID_INPUT
