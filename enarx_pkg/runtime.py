"""Run a workload in wasmtime with Enarx semantics: used by ``enarx-pkg run`` and inside the keep.

What the workload sees is what Enarx gives it: ``argv`` (argv[0] is the package name), the
Enarx.toml environment plus ``FD_COUNT``/``FD_NAMES``, stdin/stdout/stderr (or null) on fds 0-2,
and preopened directories only where ``[[keep.dirs]]`` asks (read-only unless ``writable``).
Limits come from ``[keep]``: memory (``store.set_limits``), wall time (epoch interruption driven by
a timer thread) and optionally fuel. WASI preview 1 modules and WASI 0.2 command components run.
``listen``/``connect`` files are host sockets served by :mod:`enarx_pkg.network` (preview 1 only).

wasmtime is imported only when a workload actually runs, so this module is cheap to import.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from enarx_pkg.errors import InputError, WorkloadError, WorkloadTimeout
from enarx_pkg.manifest.model import DEFAULT_FILES, SOCKET_KINDS, Dir, EnarxToml, File

if TYPE_CHECKING:
    import wasmtime

    from enarx_pkg.network import Limits
    from enarx_pkg.package import LocalPackage

Output = Callable[[bytes], None]
MIB = 1024 * 1024
CLI_RUN_PREFIX = "wasi:cli/run@0.2."
STDIO_SLOTS = ("stdin", "stdout", "stderr")


class WorkloadOutOfMemory(WorkloadError):
    """The workload trapped after using all the memory its ``[keep] memory_mb`` allows."""


@dataclass(frozen=True)
class RunSpec:
    """Everything needed to run one workload. Build one with :func:`spec_for` from an Enarx.toml."""

    module: Path
    name: str = "main"  # argv[0]
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    files: tuple[File, ...] = tuple(File(k, k) for k in DEFAULT_FILES)
    stdin: bytes | Path | None = None  # None: inherit this process's stdin
    stdout: Output | None = None  # None: inherit
    stderr: Output | None = None
    dirs: tuple[Dir, ...] = ()  # host paths absolute, or relative to base_dir
    base_dir: Path | None = None
    memory_mb: int = 256
    time_limit_s: float | None = 60.0
    fuel: int | None = None
    module_digest: str | None = None  # computed from the file when not given
    cache: bool = True
    cache_dir: Path | None = None  # default: <user cache dir>/compiled
    network: Limits | None = None  # connections, buffers and timeouts of listen/connect files (None: defaults)
    tls: Any = None  # enarx_pkg.tls.sockets.TlsSetup: a keep's TLS for prot = "tls" files (None: refused)
    publish: Any = None  # enarx_pkg.network.Publish: a keep binds listen files where its host says


def spec_for(model: EnarxToml, module: Path, *, args: tuple[str, ...] | None = None,
             base_dir: Path | None = None, **overrides: Any) -> RunSpec:
    """A :class:`RunSpec` with the args, env, files, dirs and limits that ``model`` declares."""
    name = model.package.name if model.package else Path(module).stem
    return RunSpec(
        module=Path(module), name=name, args=model.args if args is None else args, env=dict(model.env),
        files=model.files, dirs=model.keep.dirs, base_dir=base_dir, memory_mb=model.keep.memory_mb,
        time_limit_s=model.keep.time_limit_s, fuel=model.keep.fuel, **overrides,
    )


def run(spec: RunSpec) -> int:
    """Run the workload to completion and return its exit status.

    Raises :class:`WorkloadTimeout` (time or fuel limit), :class:`WorkloadOutOfMemory`,
    :class:`WorkloadError` (trap), or :class:`InputError` (invalid module, unsupported files).
    """
    import wasmtime

    from enarx_pkg._internal import wasmbin

    stdio = _stdio_plan(spec.files)
    kind = wasmbin.kind_of(spec.module)
    network = _network(spec)
    if network is not None:
        network.check_runnable(spec.files, spec.dirs, kind, f"package {spec.name}", tls=spec.tls is not None)
    engine = _engine(spec.fuel is not None)
    compiled = _load(engine, spec, kind)
    store = wasmtime.Store(engine)
    store.set_limits(memory_size=spec.memory_mb * MIB)
    if spec.fuel is not None:
        store.set_fuel(spec.fuel)
    pumps = _Pumps()
    fired = threading.Event()
    try:
        with _sockets(network, spec) as opened, _tls(opened, spec) as sockets, _wasi(spec, stdio, pumps) as wasi:
            store.set_wasi(wasi)
            net = _net_layer(sockets, spec.network, fired)
            with _deadline(engine, store, spec.time_limit_s, fired):
                try:
                    return _execute(store, engine, compiled, kind, spec, fired, net)
                finally:
                    if net is not None:
                        net.table.close_all()
    finally:
        store.close()  # closes the workload's ends of the output pipes, so the pumps see EOF
        pumps.join()


def _network(spec: RunSpec) -> Any:
    """:mod:`enarx_pkg.network`, for a workload with socket files or a keep's publish range; else None.

    Without either it would check nothing and open nothing, and ``enarx-pkg run`` of such a workload
    is spared importing it with ``socket`` (bench/run.py)."""
    if spec.publish is None and not any(f.kind in SOCKET_KINDS for f in spec.files):
        return None
    from enarx_pkg import network

    return network


def _sockets(network: Any, spec: RunSpec) -> contextlib.AbstractContextManager[list[Any]]:
    if network is None:
        return contextlib.nullcontext([])
    return network.open_sockets(spec.files, spec.network or network.Limits(), spec.publish)  # type: ignore[no-any-return]


@contextlib.contextmanager
def _tls(opened: list[Any], spec: RunSpec) -> Iterator[list[Any]]:
    """``prot = "tls"`` sockets with the keep's TLS in front (their plaintext side goes to the workload)."""
    if spec.tls is None:
        yield opened
        return
    from enarx_pkg.tls.sockets import terminated

    with terminated(opened, spec.files, spec.tls) as entries:
        yield entries


def _net_layer(sockets: list[Any], limits: Limits | None, fired: threading.Event) -> Any:
    """The preview 1 socket layer over the opened sockets (None when the workload has none)."""
    if not sockets:
        return None
    from enarx_pkg._internal.socktable import Limits, SocketTable, Stopped

    limits = limits or Limits()
    from enarx_pkg._internal.wasip1_net import Wasip1Net

    def check_stop() -> None:
        if fired.is_set():
            raise Stopped()

    return Wasip1Net(SocketTable(sockets, limits, check_stop))


def _stdio_plan(files: tuple[File, ...]) -> tuple[str, str, str]:
    """What fds 0-2 are ("stdin"/"stdout"/"stderr" or "null"); refuse what wasmtime cannot do.

    Files after fd 2 must be sockets (served by :mod:`enarx_pkg.network`, which checks them)."""
    extra = [f"{f.name} ({f.kind})" for f in files[3:] if f.kind not in SOCKET_KINDS]
    if extra:
        raise InputError(f"the workload declares {len(files)} files; after fds 0-2 (stdin, stdout, stderr "
                         f"or null) only listen/connect sockets can be provided, not {', '.join(extra)}")
    plan = []
    for fd, slot in enumerate(STDIO_SLOTS):
        kind = files[fd].kind if fd < len(files) else "null"
        if kind in SOCKET_KINDS:
            kind = "null"  # refused with its reason by network.check_buildable before anything runs
        if kind not in (slot, "null"):
            raise InputError(f"file {fd} is {kind!r}: fd {fd} can only be {slot!r} or 'null' here")
        plan.append(kind)
    return plan[0], plan[1], plan[2]


def _engine(fuel: bool) -> wasmtime.Engine:
    """A fresh engine per run, so one run's epoch timer can never interrupt another's."""
    import wasmtime

    from enarx_pkg._internal.compiled import engine_config

    return wasmtime.Engine(engine_config(fuel))


def _load(engine: wasmtime.Engine, spec: RunSpec, kind: str) -> Any:
    from enarx_pkg._internal import compiled, digest

    if not spec.cache:
        return _compile_checked(lambda: compiled.compile_module(engine, kind, spec.module), spec.module)  # type: ignore[arg-type]
    dg = spec.module_digest or digest.of_file(spec.module)[0]
    if spec.cache_dir is None:
        from enarx_pkg._internal.cachedir import user_cache_dir

        root = user_cache_dir("compiled")
    else:
        root = spec.cache_dir
    cache = compiled.CompiledCache(root)
    fp = compiled.engine_fingerprint(spec.fuel is not None)
    return _compile_checked(lambda: cache.load(engine, spec.module, dg, kind, fp), spec.module)  # type: ignore[arg-type]


def _compile_checked(load: Callable[[], Any], path: Path) -> Any:
    import wasmtime

    try:
        return load()
    except wasmtime.WasmtimeError as exc:
        raise InputError(f"{path} is not a valid WebAssembly module: {_first_line(exc)}") from None


@contextlib.contextmanager
def _wasi(spec: RunSpec, stdio: tuple[str, str, str], pumps: _Pumps) -> Iterator[wasmtime.WasiConfig]:
    import wasmtime

    wc = wasmtime.WasiConfig()
    wc.argv = [spec.name, *spec.args]
    env = dict(spec.env)
    env["FD_COUNT"] = str(len(spec.files))
    env["FD_NAMES"] = ":".join(f.name for f in spec.files)
    wc.env = sorted(env.items())
    with _stdin_path(spec.stdin, stdio[0]) as stdin:
        try:
            if stdin is None:
                wc.inherit_stdin()
            else:
                wc.stdin_file = str(stdin)
            _output(wc, "stdout", stdio[1], spec.stdout, pumps)
            _output(wc, "stderr", stdio[2], spec.stderr, pumps)
            for d in spec.dirs:
                wc.preopen_dir(str(_host_dir(d, spec.base_dir)), d.guest, d.writable)
        except BaseException:
            wc.close()  # it holds the pipes' write ends: the pumps must see EOF
            raise
        yield wc


@contextlib.contextmanager
def _stdin_path(stdin: bytes | Path | None, kind: str) -> Iterator[Path | None]:
    if kind == "null":
        yield Path(os.devnull)
    elif isinstance(stdin, bytes):
        import tempfile

        fd, tmp = tempfile.mkstemp(prefix="enarx-stdin.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(stdin)
            yield Path(tmp)
        finally:
            os.unlink(tmp)
    else:
        yield stdin


def _output(wc: wasmtime.WasiConfig, which: str, kind: str, callback: Output | None, pumps: _Pumps) -> None:
    if kind == "null":
        setattr(wc, f"{which}_file", os.devnull)
    elif callback is not None:
        path, write_end = pumps.pipe(callback)
        try:
            setattr(wc, f"{which}_file", path)  # wasmtime opens its own descriptor right here
        finally:
            os.close(write_end)
    else:
        getattr(wc, f"inherit_{which}")()


class _Pumps:
    """Deliver workload output to Python callbacks through OS pipes read by threads.

    wasmtime-py's ``stdout_custom`` calls back into Python from wasmtime's own threads and aborts
    the process at interpreter exit (wasmtime-py 50); a pipe keeps Python out of those threads and
    still streams output as it is written.
    """

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def pipe(self, callback: Output) -> tuple[str, int]:
        """A path the workload's output can be opened at (and our write end, for the caller to close)."""
        r, w = os.pipe()
        thread = threading.Thread(target=self._pump, args=(r, callback), daemon=True)
        thread.start()
        self._threads.append(thread)
        return f"/dev/fd/{w}", w

    def _pump(self, fd: int, callback: Output) -> None:
        with os.fdopen(fd, "rb", buffering=0) as r:
            for chunk in iter(lambda: r.read(65536), b""):
                try:
                    callback(chunk)
                except BaseException as exc:  # keep draining so the workload never blocks
                    self.errors.append(exc)

    def join(self) -> None:
        for t in self._threads:
            t.join()
        if self.errors:
            raise self.errors[0]


def confine_dirs(dirs: tuple[Dir, ...], root: Path, where: str) -> None:
    """Refuse ``[[keep.dirs]]`` host paths that leave ``root``.

    A package's Enarx.toml is the author's wish, not the runner's: a pulled package run locally, or
    any package in a keep, must not preopen ``/`` (or ``../..``) and read the machine's other files.
    """
    base = root.resolve()
    for d in dirs:
        host = (base / d.host).resolve()  # an absolute d.host replaces base, and is then refused
        if not host.is_relative_to(base):
            raise InputError(f"[[keep.dirs]] host {d.host!r} (guest {d.guest}) is outside {where}; "
                             "a package may only preopen directories below it")


def _host_dir(d: Dir, base: Path | None) -> Path:
    host = Path(d.host) if Path(d.host).is_absolute() or base is None else Path(base) / d.host
    if not host.is_dir():
        raise InputError(f"[[keep.dirs]] host directory {host} does not exist (guest path {d.guest})")
    return host.resolve()


@contextlib.contextmanager
def _deadline(engine: wasmtime.Engine, store: wasmtime.Store, seconds: float | None,
              fired: threading.Event) -> Iterator[None]:
    """Interrupt the workload after ``seconds``: the timer bumps the engine's epoch past the deadline
    (and sets ``fired``, which the socket layer checks while the workload waits on a socket)."""
    if seconds is None:
        store.set_epoch_deadline(2**62)
        yield
        return

    def expire() -> None:
        fired.set()
        engine.increment_epoch()

    store.set_epoch_deadline(1)
    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _execute(store: wasmtime.Store, engine: wasmtime.Engine, compiled: Any, kind: str, spec: RunSpec,
             fired: threading.Event, net: Any) -> int:
    import wasmtime

    failed: tuple[type[Exception], ...] = (wasmtime.Trap, wasmtime.WasmtimeError)
    if net is not None:  # only the socket layer raises Stopped (socktable imports socket: not for every run)
        from enarx_pkg._internal.socktable import Stopped

        failed += (Stopped,)
    memories: list[Any] = []
    try:
        if kind == "component":
            return _run_component(store, engine, compiled, spec)
        return _run_module(store, engine, compiled, spec, memories, net)
    except wasmtime.ExitTrap as exc:
        return int(exc.code)
    except failed as exc:
        raise _classify(exc, spec, fired, store, memories) from None


def _run_module(store: wasmtime.Store, engine: wasmtime.Engine, module: Any, spec: RunSpec,
                memories: list[Any], net: Any) -> int:
    import wasmtime

    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    if net is not None:
        net.link(linker, module)
    instance = linker.instantiate(store, module)
    if net is not None:
        _attach(net, store, engine, instance, spec)
    exports = instance.exports(store)
    memories.extend(e for e in (exports.get("memory"),) if isinstance(e, wasmtime.Memory))
    start = exports.get("_start")
    if not isinstance(start, wasmtime.Func):
        raise InputError(f"{spec.module} has no _start function: it is not a WASI command")
    start(store)
    return 0


def _attach(net: Any, store: wasmtime.Store, engine: wasmtime.Engine, instance: Any, spec: RunSpec) -> None:
    from enarx_pkg._internal.socktable import Errno

    try:
        net.attach(store, engine, instance)
    except Errno:
        raise InputError(f"{spec.module} exports no memory named 'memory', which its socket files need") from None


def _run_component(store: wasmtime.Store, engine: wasmtime.Engine, component: Any, spec: RunSpec) -> int:
    from wasmtime import component as wc

    linker = wc.Linker(engine)
    linker.add_wasip2()
    instance = linker.instantiate(store, component)
    run_name = next((n for n in component.type.exports(engine) if n.startswith(CLI_RUN_PREFIX)), None)
    if run_name is None:
        raise InputError(f"{spec.module} does not export wasi:cli/run@0.2.x: it is not a WASI command")
    iface = instance.get_export_index(store, run_name)
    index = instance.get_export_index(store, "run", iface) if iface is not None else None
    func = instance.get_func(store, index) if index is not None else None
    if func is None:
        raise InputError(f"{spec.module}: {run_name} has no run function")
    result = func(store)
    return 0 if getattr(result, "tag", "ok") == "ok" else 1


def _classify(exc: Exception, spec: RunSpec, fired: threading.Event, store: wasmtime.Store,
              memories: list[Any]) -> WorkloadError:
    import wasmtime

    code = getattr(exc, "trap_code", None)
    if fired.is_set() or code == wasmtime.TrapCode.INTERRUPT:
        return WorkloadTimeout(f"{spec.name} did not finish within its time limit of {spec.time_limit_s} s",
                               hint="raise [keep] time_limit_s if it needs longer")
    if code == wasmtime.TrapCode.OUT_OF_FUEL:
        return WorkloadTimeout(f"{spec.name} ran out of fuel ({spec.fuel} units)",
                               hint="raise [keep] fuel if it needs more")
    used = memories[0].size(store) * 65536 if memories else 0
    if used >= spec.memory_mb * MIB * 3 // 4:  # a failed grow is invisible to us: judge by what is in use
        return WorkloadOutOfMemory(f"{spec.name} trapped with {used / MIB:.1f} MiB in use, near its memory "
                                   f"limit of {spec.memory_mb} MiB: {_first_line(exc)}",
                                   hint="raise [keep] memory_mb if it needs more")
    return WorkloadError(f"{spec.name} trapped: {_first_line(exc)}")


def _first_line(exc: Exception) -> str:
    """The cause of a wasmtime error without its backtrace (which follows 'Caused by:')."""
    text = str(getattr(exc, "message", None) or exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "Caused by:" in lines and lines.index("Caused by:") + 1 < len(lines):
        return lines[lines.index("Caused by:") + 1]
    return lines[0] if lines else type(exc).__name__


def run_path(target: Path | str, args: tuple[str, ...] | None = None, *, cache: bool = True,
             ref: str | None = None, secrets: tuple[str, ...] = (), tls12: bool = False,
             announce: Callable[[], None] | None = None) -> int:
    """``enarx-pkg run``: run a package named as :func:`enarx_pkg.package.locate` takes it.

    The module and its Enarx.toml come from the layout (re-hashed before use), so what runs is
    exactly what was packaged. A project whose sources changed since its last build is refused.
    ``tls12``: its ``prot = "tls"`` files accept TLS 1.2 too (TLS 1.3 only otherwise). ``announce`` is
    called once the package is found and checked, before anything of it runs (the CLI's no-TEE notice).
    """
    from enarx_pkg import package

    with package.opened(str(target), ref) as found:
        return _run_located(found, args, cache, secrets, tls12, announce)


def _run_located(found: LocalPackage, args: tuple[str, ...] | None, cache: bool, secrets: tuple[str, ...],
                 tls12: bool = False, announce: Callable[[], None] | None = None) -> int:
    from enarx_pkg import manifest
    from enarx_pkg.package import MEDIA_ENARX_CONFIG, MEDIA_WASM, verify_layout_blob

    layout, project = found.layout, found.project
    if project is not None:
        _check_fresh(layout.path, project, found.digest)
    image = found.manifest
    wasm, toml = image.layer(MEDIA_WASM), image.layer(MEDIA_ENARX_CONFIG)
    if wasm.media_type != MEDIA_WASM or toml.media_type != MEDIA_ENARX_CONFIG:
        raise InputError(f"{layout.path}: the package is encrypted; `run` needs a plaintext package",
                         hint="run the plaintext build, or deploy the encrypted one to a keep")
    verify_layout_blob(layout, wasm)
    model = manifest.loads(layout.read_blob(toml.digest, 1 << 20), f"{layout.path} (Enarx.toml layer)")
    if project is None:  # a layout, perhaps pulled: its author does not choose what of this machine it sees
        confine_dirs(model.keep.dirs, Path.cwd(), "the current directory")
    if announce is not None:
        announce()
    spec = spec_for(model, layout.blob_path(wasm.digest), args=args, base_dir=project or Path.cwd(),
                    module_digest=wasm.digest, cache=cache, tls=_local_tls(model.files, tls12))
    if model.secrets or secrets:
        return _run_with_secrets(spec, model, secrets)
    return run(spec)


def _run_with_secrets(spec: RunSpec, model: EnarxToml, given: tuple[str, ...]) -> int:
    """Secrets as ``deploy`` gives them (``[secrets]`` overridden by ``--secret``), read on this machine.

    Env secrets become environment variables; mounted ones files in a private temporary directory
    preopened read-only at the mount's directory, removed when the workload ends.
    """
    import tempfile
    from dataclasses import replace

    from enarx_pkg import deploy_plan
    from enarx_pkg.deploy_checks import read_secrets
    from enarx_pkg.keep.workload import secret_files

    sources = deploy_plan.merge_secrets(model.secrets, [deploy_plan.parse_secret_option(s) for s in given])
    values = read_secrets(sources)
    with tempfile.TemporaryDirectory(prefix="enarx-pkg-secrets-") as tmp:
        env = dict(spec.env)
        dirs = secret_files(values, Path(tmp), env)
        return run(replace(spec, env=env, dirs=spec.dirs + dirs))


def _local_tls(files: tuple[File, ...], tls12: bool = False) -> Any:
    """``prot = "tls"`` outside a keep: a fresh self-signed certificate, said loudly (it attests nothing)."""
    if not any(f.kind in SOCKET_KINDS and (f.prot or "tls") == "tls" for f in files):
        return None  # the usual case: no TLS code is imported
    import sys

    from enarx_pkg.tls import keepside

    setup = keepside.local_setup(files, tls12=tls12)
    if setup is not None:
        import hashlib

        from cryptography.hazmat.primitives.serialization import Encoding

        fingerprint = hashlib.sha256(setup.identity.certificate.public_bytes(Encoding.DER)).hexdigest()
        print(f"WARNING: prot = \"tls\" outside a keep: serving a fresh self-signed certificate that attests "
              f"nothing (SHA-256 {fingerprint}); deploy to a keep for an attested one", file=sys.stderr)
    return setup


def _check_fresh(layout_dir: Path, project: Path, manifest_digest: str) -> None:
    """Refuse to run a stale build: every input recorded by ``build`` must still hash the same."""
    import json

    from enarx_pkg._internal import digest

    record_path = layout_dir / "enarx-build.json"
    try:
        record = json.loads(record_path.read_bytes())
        if record.get("manifestDigest") != manifest_digest:
            return  # the record is of another build in this layout: nothing to compare
        inputs = [(str(i["path"]), str(i["digest"])) for i in record.get("inputs", [])]
    except (OSError, ValueError, TypeError, KeyError):
        return  # a layout without a readable build record (pulled, copied): nothing to compare
    changed = [p for p, dg in inputs
               if not (project / p).is_file() or digest.of_file(project / p)[0] != dg]
    if changed:
        raise InputError(f"{layout_dir} is older than its sources ({', '.join(changed[:5])} changed)",
                         hint=f"run: enarx-pkg build {project}")
