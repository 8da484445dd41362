"""Root command. Sub-commands are imported only when they run, so ``--help`` starts fast.

The typer app lives in :mod:`enarx_pkg._cli.root` and is imported on first use. ``enarx-pkg run``
without options never imports it: ``main`` binds its two positional arguments as click would and
calls what the typer ``run`` command calls (:mod:`enarx_pkg._cli.run`; typer costs ~30 ms a start,
a third of what running a small workload takes).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

# name -> (module, attribute holding a typer.Typer, one-line help shown by ``enarx-pkg --help``)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": ("enarx_pkg._cli.manifest", "init_app", "Create an Enarx.toml and a hello-world source."),
    "validate": ("enarx_pkg._cli.manifest", "validate_app", "Check an Enarx.toml and print its normalised form."),
    "secret": ("enarx_pkg._cli.edit", "secret_app", "Declare where the deployer reads a secret (never its value)."),
    "version": ("enarx_pkg._cli.edit", "version_app", "Bump [package] version in Enarx.toml (semver)."),
    "build": ("enarx_pkg._cli.build", "build_app", "Build the workload into a reproducible OCI layout."),
    "inspect": ("enarx_pkg._cli.build", "inspect_app", "Show a package's manifest, config, layers and Enarx.toml."),
    "run": ("enarx_pkg._cli.build", "run_app", "Run the workload locally in wasmtime (no TEE)."),
    "keys": ("enarx_pkg._cli.signing", "keys_app", "Generate signing keys."),
    "sign": ("enarx_pkg._cli.signing", "sign_app", "Sign a package (sigstore bundle + SLSA provenance)."),
    "verify": ("enarx_pkg._cli.signing", "verify_app", "Verify a package's signatures."),
    "encrypt": ("enarx_pkg._cli.encrypt", "encrypt_app", "Encrypt a package's layers for recipients (ocicrypt)."),
    "login": ("enarx_pkg._cli.transfer", "login_app", "Store credentials for a registry."),
    "logout": ("enarx_pkg._cli.transfer", "logout_app", "Remove stored credentials for a registry."),
    "publish": ("enarx_pkg._cli.transfer", "publish_app", "Push a package and its signatures to a registry."),
    "pull": ("enarx_pkg._cli.transfer", "pull_app", "Pull a package and its signatures into an OCI layout."),
    "attest": ("enarx_pkg._cli.attest", "attest_app", "Inspect and verify TEE attestation evidence."),
    "platform": ("enarx_pkg._cli.attest", "platform_app", "Report this host's TEE interfaces."),
    "host": ("enarx_pkg._cli.deploy", "host_app", "Run the host agent that creates keeps."),
    "deploy": ("enarx_pkg._cli.deploy", "deploy_app", "Attest a keep, seal secrets to it, run the package."),
    "keep": ("enarx_pkg._cli.keep", "keep_app", "Manage keeps left running by deploy --detach."),
    "registry": ("enarx_pkg._cli.registry", "registry_app", "Run and administer the enarx-pkg registry."),
    "ca": ("enarx_pkg._cli.tls", "ca_app", "Make the deploy CA that certifies attested keeps."),
    "steward": ("enarx_pkg._cli.tls", "steward_app", "Issue TLS certificates to attested keeps."),
}


def __getattr__(name: str) -> Any:
    if name == "app":  # the typer app, as ``enarx_pkg._cli.main.app`` (built lazily)
        from enarx_pkg._cli.root import app

        return app
    raise AttributeError(name)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning every enarx-pkg error into its diagnostic and exit code."""
    from enarx_pkg.errors import Error

    if argv is None:  # the console script: a process of enarx-pkg's own
        from enarx_pkg._cli import startup

        startup.own_process()
    args = sys.argv[1:] if argv is None else argv
    as_json = "--json" in args
    interrupted = _watch_ctrl_c()
    try:
        code = _dispatch(args)
        if interrupted and code == 130:  # typer turns Ctrl-C into a silent exit 130
            _aborted(as_json)
        return code
    except Error as exc:
        to_dict = getattr(exc, "to_dict", None)  # e.g. ManifestError lists its problems
        details = to_dict() if callable(to_dict) else None
        _report(exc.diagnostics(), int(exc.exit_code), type(exc).__name__, exc.message, as_json, details)
        return int(exc.exit_code)
    except _typer_exceptions() as exc:
        return _typer_outcome(exc, as_json)
    except KeyboardInterrupt:
        _aborted(as_json)
        return 130
    except OSError as exc:  # the machine refused a file operation (permissions, a full disk, a read-only path)
        if os.environ.get("ENARX_PKG_DEBUG"):
            raise
        return _io_error(exc, as_json)
    except Exception as exc:  # a bug in enarx-pkg, not the user's fault: say so, briefly
        if os.environ.get("ENARX_PKG_DEBUG"):
            raise
        _report(f"internal error: {type(exc).__name__}: {exc}\n  hint: set ENARX_PKG_DEBUG=1 for a traceback "
                "and report it", 1, "InternalError", str(exc), as_json)
        return 1


def _io_error(exc: OSError, as_json: bool) -> int:
    """An operating-system refusal, named with its path (a temporary file is named by its directory)."""
    from enarx_pkg.errors import ExitCode

    path = str(exc.filename or "")
    if os.path.basename(path).startswith("."):  # atomic writes go through a hidden temporary file: its directory
        path = os.path.dirname(path) or "."
    reason = exc.strerror or type(exc).__name__
    message = f"{path}: {reason}" if path else reason
    _report(f"error: cannot read or write {message}", int(ExitCode.IO_ERROR), "IOError", message, as_json)
    return int(ExitCode.IO_ERROR)


def _watch_ctrl_c() -> list[bool]:
    """Note a Ctrl-C (still raised as KeyboardInterrupt) so the exit can say so whoever caught it."""
    import signal
    import threading

    seen: list[bool] = []
    if threading.current_thread() is not threading.main_thread():
        return seen

    def on_sigint(signum: int, frame: object) -> None:
        seen.append(True)
        raise KeyboardInterrupt
    signal.signal(signal.SIGINT, on_sigint)
    return seen


def _dispatch(args: list[str]) -> int:
    from enarx_pkg._cli import run

    if args[:1] == ["run"] and run.no_options(args[1:]):
        return run.run(*run.positionals(args[1:]))
    from enarx_pkg._cli.startup import loading

    with loading():
        import typer.main

        from enarx_pkg._cli.root import app

    rv = typer.main.get_command(app).main(args=args, prog_name="enarx-pkg", standalone_mode=False)
    return rv if isinstance(rv, int) else 0


def _typer_exceptions() -> tuple[type[BaseException], ...]:
    """typer's exit/abort/usage exceptions; none can be raised before typer is imported."""
    if "typer" not in sys.modules:
        return ()
    import typer

    return typer.Exit, typer.Abort, typer.TyperException  # the last: usage errors, bad parameters


def _typer_outcome(exc: BaseException, as_json: bool) -> int:
    """typer's own exits; with ``--json`` its usage errors and aborts are ``{"error": ...}`` documents too."""
    import typer

    if isinstance(exc, typer.Exit):
        return int(exc.exit_code)
    if isinstance(exc, typer.Abort):
        _aborted(as_json)
        return 130
    code = int(getattr(exc, "exit_code", 2))
    if as_json:
        _json_error("UsageError", getattr(exc, "format_message", lambda: str(exc))(), code)
    show = getattr(exc, "show", None)
    if callable(show):
        show()
    else:
        print(f"error: {exc}", file=sys.stderr)
    return code


def _aborted(as_json: bool) -> None:
    _report("aborted", 130, "Interrupted", "interrupted (Ctrl-C)", as_json)


def _json_error(kind: str, message: str, code: int, details: dict[str, Any] | None = None) -> None:
    """The documented ``{"error": {kind, message, exit_code, ...}}`` document, on stdout."""
    print(json.dumps({"error": {"kind": kind, "message": message, "exit_code": code, **(details or {})}}))


def _report(text: str, code: int, kind: str, message: str, as_json: bool,
            details: dict[str, Any] | None = None) -> None:
    if as_json:
        _json_error(kind, message, code, details)
    from enarx_pkg._internal.text import printable

    print(printable(text, keep_newlines=True), file=sys.stderr)  # messages may quote what a peer sent
