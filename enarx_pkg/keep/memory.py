"""The keep's memory never becomes a file: no core dump, and no ptrace or ``/proc/PID/mem`` for its host.

A host may start the keep with an unlimited core size and crash it (SIGSEGV, SIGABRT) once it holds
secrets: the kernel would write the keep's memory (its X25519 key, the opened envelope's layer keys,
secrets and session key) to a file on the host's disk. :func:`keep_private` runs when the nonce
arrives, right before the keep makes its key (nothing secret exists earlier): core size 0, soft and
hard (so nothing in the process raises it again), and ``PR_SET_DUMPABLE`` 0, which also stops a
``core_pattern`` pipe and leaves ptrace, ``/proc/PID/mem`` and ``environ`` to root. A TEE encrypts
the keep's memory; a sim keep's stays readable by a root host.
"""

from __future__ import annotations

import ctypes
import os
import resource

from enarx_pkg.errors import InputError

PR_SET_DUMPABLE = 4  # <linux/prctl.h>


def keep_private() -> None:
    """From now on this process dumps no core and cannot be read by a non-root process."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise InputError(f"the keep could not make its memory undumpable: {os.strerror(ctypes.get_errno())}")
