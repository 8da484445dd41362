"""One error hierarchy, split by who is at fault, each with a diagnostic a person can act on.

The CLI catches :class:`Error` in exactly one place, prints :meth:`Error.diagnostics` and exits with
:attr:`Error.exit_code`. Messages never contain secrets (tokens, passphrases, keys, secret values).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes a pipeline can tell apart (documented in the README).

    ``run`` and ``deploy`` exit with the workload's own status when the workload ran.
    """

    OK = 0
    INTERNAL = 1
    USAGE = 2
    INVALID_INPUT = 65
    NOT_FOUND = 66
    TRANSPORT = 69
    BUILD_FAILED = 70
    IO_ERROR = 74  # sysexits EX_IOERR: this machine refused a read or write the command needed
    VERIFICATION_REFUSED = 77
    ATTESTATION_REFUSED = 78
    WORKLOAD_TIMEOUT = 124
    WORKLOAD_TRAPPED = 134


class Error(Exception):
    """Base of every error enarx-pkg raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """What happened and, where known, what the user can do about it."""
        text = f"error: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class UsageError(Error):
    """The caller asked for something inconsistent (bad flag combination, missing option)."""

    exit_code = ExitCode.USAGE


class InputError(Error):
    """A file or value given by the user is malformed (Enarx.toml, policy, key file, evidence)."""

    exit_code = ExitCode.INVALID_INPUT


class NotFoundError(Error):
    """A file, package, tag, blob or keep does not exist."""

    exit_code = ExitCode.NOT_FOUND


class TransportError(Error):
    """A network peer (registry, host agent, KDS/PCS) failed or could not be reached."""

    exit_code = ExitCode.TRANSPORT

    def __init__(
        self, message: str, *, url: str | None = None, status: int | None = None, hint: str | None = None
    ) -> None:
        where = ""
        if url:
            where += f" ({url}"
            where += f", HTTP {status})" if status is not None else ")"
        super().__init__(message + where, hint=hint)
        self.url = url
        self.status = status
        self.status = status


class BuildError(Error):
    """Building the workload failed (build command, invalid module, refused imports)."""

    exit_code = ExitCode.BUILD_FAILED


class VerificationError(Error):
    """Untrusted input lied: bad signature, digest mismatch, wrong identity, forged envelope."""

    exit_code = ExitCode.VERIFICATION_REFUSED


class AttestationError(VerificationError):
    """Evidence did not verify, or did not satisfy the policy."""

    exit_code = ExitCode.ATTESTATION_REFUSED


class WorkloadError(Error):
    """The workload could not be run to completion by the runtime (trap, limits)."""

    exit_code = ExitCode.WORKLOAD_TRAPPED


class WorkloadTimeout(WorkloadError):
    """The workload exceeded its wall-time limit."""

    exit_code = ExitCode.WORKLOAD_TIMEOUT
