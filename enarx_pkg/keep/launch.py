"""How a keep must be started, checked by the keep itself before it loads any code of its own.

The host starts the keep process, so a modified agent chooses its command line, environment and
working directory. The measurement (keep/measure.py) covers the files the keep loads, but not how the
interpreter was told to treat them: without ``-X pycache_prefix`` it would run a host-planted
``__pycache__/*.pyc`` while measuring the genuine source; ``-O`` strips asserts; ``SSL_CERT_FILE``
picks the CA the keep trusts with the registry credential; ``TMPDIR`` picks where it works;
``OPENSSL_CONF`` reconfigures its TLS. None of that is measured, so none of it is accepted: a keep
started in any other way than :data:`ENV`, :data:`CWD` and the flags of ``KeepCommand.argv`` refuses
to start (before READY, so no key exists yet). Messages name variables and flags, never their values.
"""

from __future__ import annotations

import os
import sys

NO_PYCACHE = "/dev/null/enarx-keep-pycache"  # under a non-directory: no .pyc can ever exist there
ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
CWD = "/"
FLAGS = ("-I", "-B", "-X", f"pycache_prefix={NO_PYCACHE}")  # what the agent puts before ``-m enarx_pkg.keep``
_OFF = ("optimize", "inspect", "interactive", "verbose", "bytes_warning", "dev_mode", "debug")


def refusals() -> list[str]:
    """Every way this process was started other than as a keep must be; empty when it may run."""
    out = []
    if not sys.flags.isolated:
        out.append("it is not an isolated interpreter (-I)")
    if not sys.flags.dont_write_bytecode or sys.pycache_prefix != NO_PYCACHE:
        out.append(f"bytecode caches are not off (-B -X pycache_prefix={NO_PYCACHE})")
    if sys._xoptions != {"pycache_prefix": NO_PYCACHE}:
        out.append("it was given other -X options: " + ", ".join(sorted(sys._xoptions)))
    on = [name for name in _OFF if getattr(sys.flags, name)]
    if on or sys.warnoptions:
        out.append("interpreter flags change how its code runs: " + ", ".join(on + ["-W"] * bool(sys.warnoptions)))
    if dict(os.environ) != ENV:
        names = sorted(set(os.environ) ^ set(ENV) | {k for k in ENV if os.environ.get(k) != ENV[k]})
        out.append("its environment is not the keep's own (variables: " + ", ".join(names) + ")")
    if os.getcwd() != CWD:
        out.append(f"its working directory is not {CWD}")
    return out


def refuse_unless_launched_as_a_keep() -> None:
    """Exit (status 2, a FAIL record to the agent) if :func:`refusals` finds anything."""
    found = refusals()
    if not found:
        return
    from enarx_pkg._internal.frames import R_FAIL, record

    message = "this keep was started the way no honest agent starts one, so it refuses to run: " + "; ".join(found)
    os.write(1, record(R_FAIL, message.encode("utf-8", "replace")))
    print(f"keep: {message}", file=sys.stderr, flush=True)
    os._exit(2)  # not SystemExit: under -i that would open a prompt on the agent's pipe
