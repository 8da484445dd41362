"""``enarx-pkg build``: Enarx.toml + sources → a reproducible OCI image layout (DESIGN §4).

The layout holds one image manifest (config ``application/vnd.wasm.config.v0+json``, layer 1 the
module ``application/wasm``, layer 2 the normalised Enarx.toml ``application/vnd.enarx.config.v1+toml``)
tagged with the package version. Every byte of it is a function of the inputs: ``created`` comes from
``SOURCE_DATE_EPOCH``, else the commit time of the source directory, else 0; JSON is canonical.

Beside it, ``enarx-build.json`` records what provenance needs later (command, toolchains, source
revision, input digests). It is not part of the manifest, so it cannot disturb the digest.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from enarx_pkg import __version__, network
from enarx_pkg._internal import atomic, canonical, frozen_host, gitinfo, recipes, wasmbin, wasmcheck
from enarx_pkg.errors import BuildError, InputError, NotFoundError
from enarx_pkg.manifest.model import Build, EnarxToml
from enarx_pkg.package import (
    ANNOTATION_TITLE,
    MEDIA_ENARX_CONFIG,
    MEDIA_WASM,
    MEDIA_WASM_CONFIG,
    PROJECT_LAYOUT,
    Descriptor,
    ImageManifest,
    Layout,
    tag_for_version,
)

BUILD_RECORD = "enarx-build.json"
BUILD_TYPE = "https://enarx.dev/enarx-pkg/build/v1"
DEFAULT_OUT = PROJECT_LAYOUT
ENARX_TOML_TITLE = "Enarx.toml"

Progress = Callable[[str], None]
MIB = 1 << 20


@dataclass(frozen=True)
class BuildResult:
    digest: str  # the manifest digest: the package's identity
    layout: Path
    tag: str
    module: Path
    module_digest: str
    module_size: int
    os: str  # wasip1 or wasip2


def build(project: Path, out: Path | None = None, progress: Progress | None = None) -> BuildResult:
    """Build the project in ``project`` into an OCI image layout (default ``project/target/oci``)."""
    from enarx_pkg import manifest

    say = progress or (lambda _msg: None)
    project = Path(project).resolve()
    model = manifest.load(project)
    spec = _build_section(model, project)
    network.check_buildable(model.files, model.keep.dirs, "module", project / "Enarx.toml")
    source = gitinfo.describe(project)
    epoch = source_date_epoch(source)
    module = _produce(spec, project, epoch, say)
    if model.socket_files:  # sockets cannot be given to a component: refuse before anything is written
        network.check_buildable(model.files, model.keep.dirs, wasmbin.kind_of(module), project / "Enarx.toml")
    layout_path = Path(out).resolve() if out else project / DEFAULT_OUT
    with _new_or_kept(layout_path):
        layout = Layout.create(layout_path)
        say(f"validating {module.relative_to(project)}")
        wasm = _put_checked(layout, module, model)
    say(f"writing OCI layout {layout_path}")
    desc, tag = _write_package(layout, model, wasm, epoch, source)
    record = _build_record(spec, project, module, wasm[0].digest, source, epoch, desc.digest)
    atomic.write_bytes(layout_path / BUILD_RECORD, canonical.dumps(record))
    return BuildResult(desc.digest, layout_path, tag, module, wasm[0].digest, wasm[0].size, wasm[1].os)


@contextlib.contextmanager
def _new_or_kept(layout_path: Path) -> Iterator[None]:
    """A layout this build created is removed again if the build fails (no empty ``target/oci``)."""
    created = [p for p in (layout_path, *layout_path.parents) if not p.exists()]
    try:
        yield
    except BaseException:
        if created:
            shutil.rmtree(created[-1], ignore_errors=True)  # the outermost directory this build made
        raise


def _check_memory(module: Path, info: wasmcheck.ModuleInfo, model: EnarxToml) -> None:
    """A module that starts with more memory than ``[keep] memory_mb`` could never run: say so now."""
    limit = model.keep.memory_mb * MIB
    if info.initial_memory > limit:
        need = -(-info.initial_memory // MIB)
        raise BuildError(f"{module} starts with {need} MiB of linear memory, over [keep] memory_mb = "
                         f"{model.keep.memory_mb}: it could not be instantiated in a keep",
                         hint=f"raise [keep] memory_mb to at least {need}, or link with a smaller initial "
                              "memory (e.g. -Wl,--initial-memory=...)")


def _put_checked(layout: Layout, module: Path, model: EnarxToml) -> tuple[Descriptor, wasmcheck.ModuleInfo]:
    """Copy the module into the layout (hashing it on the way, once), then check the stored copy.

    Checking the blob, not the source file, means what was validated is exactly what was packaged,
    even if the build output changes meanwhile; errors still name the source file.
    """
    existed = set(os.listdir(layout.path / "blobs" / "sha256"))
    desc = layout.put_file(module, MEDIA_WASM, {ANNOTATION_TITLE: module.name})
    blob = layout.blob_path(desc.digest)
    try:
        info = wasmcheck.check(blob, desc.digest, fuel=model.keep.fuel is not None)
        _check_memory(module, info, model)
        return desc, info
    except BuildError as exc:
        if blob.name not in existed:  # leave no refused module behind
            blob.unlink(missing_ok=True)
        raise BuildError(exc.message.replace(str(blob), str(module)), hint=exc.hint) from None


def source_date_epoch(source: gitinfo.SourceInfo) -> int:
    """``SOURCE_DATE_EPOCH`` if set, else the source's commit time, else 0 (reproducible-builds.org)."""
    raw = os.environ.get("SOURCE_DATE_EPOCH")
    if raw:
        if not raw.isdigit():
            raise InputError(f"SOURCE_DATE_EPOCH={raw!r} is not a whole number of seconds")
        return int(raw)
    return source.commit_time or 0


def confined(root: Path, relative: str, what: str) -> Path:
    """``root/relative`` resolved, refusing anything that escapes ``root`` (.., absolute, symlinks)."""
    target = (root / relative).resolve()
    if os.path.commonpath([root, target]) != str(root):
        raise BuildError(f"{what} {relative!r} escapes the project directory {root}",
                         hint="keep build outputs and workdirs inside the project")
    return target


def _build_section(model: EnarxToml, project: Path) -> Build:
    if model.build is None:
        raise InputError(f"{project / 'Enarx.toml'} has no [build] section: nothing says how to make the module",
                         hint="add [build] with recipe = \"wat\"|\"c\"|\"cpp\"|\"prebuilt\" or a command, and output")
    return model.build


def _require_sources(spec: Build, project: Path) -> None:
    """A recipe's missing source (or a missing prebuilt module) is "not found" (66), not a failed build."""
    wanted = list(spec.sources) if spec.recipe in ("wat", "c", "cpp") else [spec.output] \
        if spec.recipe == "prebuilt" else []
    missing = [s for s in wanted if not confined(project, s, "[build] sources entry").is_file()]
    if missing:
        raise NotFoundError(f"{project}: [build] names {', '.join(missing)}, which does not exist",
                            hint="check [build] sources (and output, for a prebuilt module) against the "
                                 "files in the project")


def _produce(spec: Build, project: Path, epoch: int, say: Progress) -> Path:
    """Run the recipe or command; return the confined path of the module it produced."""
    output = confined(project, spec.output, "[build] output")
    output.parent.mkdir(parents=True, exist_ok=True)  # compilers do not create it
    workdir = confined(project, spec.workdir, "[build] workdir")
    env = recipes.build_env(spec.env, epoch, project, spec.debug)
    _require_sources(spec, project)
    if spec.recipe == "wat":
        sources = [confined(project, s, "[build] sources entry") for s in spec.sources]
        say(f"wat2wasm {' '.join(spec.sources)}")
        recipes.wat_to_wasm(sources, output)
    elif spec.recipe in ("c", "cpp"):
        argv = recipes.recipe_argv(spec, project) or []
        for s in spec.sources:
            confined(project, s, "[build] sources entry")
        say(f"zig {argv[3]} {' '.join(spec.sources)} (the first build on a machine takes about a minute)")
        recipes.run_command(argv, project, env)
    elif spec.command:
        frozen = frozen_host.wanted(spec.deterministic, spec.command)
        if frozen:
            env.update(frozen_host.environment(project, env))
        where = " on a frozen host (clock, entropy, file metadata)" if frozen else ""
        say(f"running {' '.join(spec.command)}{where}")
        recipes.run_command(spec.command, workdir, env, shell=spec.shell, frozen=frozen)
    if not output.is_file():
        raise BuildError(f"the build did not produce {spec.output} (looked for {output})",
                         hint="check [build] output against what the build command writes")
    return output


def _write_package(layout: Layout, model: EnarxToml, module: tuple[Descriptor, wasmcheck.ModuleInfo],
                   epoch: int, source: gitinfo.SourceInfo) -> tuple[Descriptor, str]:
    from enarx_pkg import manifest

    wasm, info = module
    toml = layout.put_bytes(manifest.to_toml(model).encode("utf-8"), MEDIA_ENARX_CONFIG,
                           {ANNOTATION_TITLE: ENARX_TOML_TITLE})
    created = rfc3339(epoch)
    config = layout.put_bytes(canonical.dumps(_wasm_config(model, info, created, [wasm, toml])),
                              MEDIA_WASM_CONFIG)
    image = ImageManifest(config=config, layers=(wasm, toml), annotations=_annotations(model, created, source))
    tag = package_tag(model)
    return layout.add_manifest(image, tag), tag


def _wasm_config(model: EnarxToml, info: wasmcheck.ModuleInfo, created: str,
                 layers: list[Descriptor]) -> dict[str, Any]:
    """The CNCF TAG Runtime wasm OCI artifact config (what wkg and runwasi read)."""
    config: dict[str, Any] = {"created": created, "architecture": "wasm", "os": info.os,
                              "layerDigests": [d.digest for d in layers]}
    if model.package and model.package.authors:
        config["author"] = ", ".join(model.package.authors)
    if info.kind == "component":
        config["component"] = {"exports": list(info.exports), "imports": list(info.imports), "target": None}
    return config


def _annotations(model: EnarxToml, created: str, source: gitinfo.SourceInfo) -> dict[str, str]:
    pkg = model.package
    values = {
        "org.opencontainers.image.title": pkg.name if pkg else "",
        "org.opencontainers.image.version": pkg.version if pkg else "",
        "org.opencontainers.image.description": pkg.description if pkg else "",
        "org.opencontainers.image.licenses": pkg.license if pkg else "",
        "org.opencontainers.image.source": pkg.source if pkg else "",
        "org.opencontainers.image.revision": source.revision or "",
        "org.opencontainers.image.created": created,
    }
    return {k: v for k, v in values.items() if v}


def package_tag(model: EnarxToml) -> str:
    """The OCI tag for the package: its version ('+' is not allowed in tags: '_' as Helm does)."""
    return tag_for_version(model.package.version if model.package else None)


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _build_record(spec: Build, project: Path, module: Path, mod_digest: str, source: gitinfo.SourceInfo,
                  epoch: int, manifest_digest: str) -> dict[str, Any]:
    """What provenance needs later; read by the signing step to fill SLSA provenance."""
    return {
        "builder": {"id": f"enarx-pkg@{__version__}"},
        "buildType": BUILD_TYPE,
        "command": list(spec.command) if spec.command else spec.recipe,
        "recipeCommand": recipes.recipe_argv(spec),
        "shell": spec.shell,
        "frozenHost": frozen_host.wanted(spec.deterministic, spec.command),
        "workdir": spec.workdir,
        "toolchains": recipes.toolchain_versions(spec),
        "source": {"repository": source.repository, "revision": source.revision, "dirty": source.dirty},
        "inputs": gitinfo.input_digests(project, spec, source, {module: mod_digest}),
        "output": {"path": module.relative_to(project).as_posix(), "digest": mod_digest},
        "sourceDateEpoch": epoch,
        "manifestDigest": manifest_digest,
    }
