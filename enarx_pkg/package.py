"""The package format: OCI descriptors, image manifests and the OCI image layout on disk (DESIGN §4).

Everything that reads or writes a package (build, sign, publish, pull, deploy, the registry) goes
through these types, so a manifest parsed here is well formed wherever it travels next.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from enarx_pkg._internal import atomic, bounded, canonical, digest
from enarx_pkg.errors import InputError, NotFoundError, UsageError, VerificationError

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_WASM_CONFIG = "application/vnd.wasm.config.v0+json"
MEDIA_WASM = "application/wasm"
MEDIA_ENARX_CONFIG = "application/vnd.enarx.config.v1+toml"
MEDIA_EMPTY = "application/vnd.oci.empty.v1+json"
MEDIA_SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
ENCRYPTED_SUFFIX = "+encrypted"

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_TITLE = "org.opencontainers.image.title"
EMPTY_JSON = b"{}"

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
PROJECT_LAYOUT = Path("target") / "oci"  # where ``build`` writes a project's packages
_TAG_BAD = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None
    platform: Mapping[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = dict(self.platform)
        return out

    @classmethod
    def from_json(cls, obj: Any, where: str = "descriptor") -> Descriptor:
        if not isinstance(obj, dict):
            raise InputError(f"{where}: expected an object, got {type(obj).__name__}")
        mt, dg, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
        if not isinstance(mt, str) or not mt:
            raise InputError(f"{where}.mediaType: expected a media type string")
        if not isinstance(dg, str) or not digest.is_valid(dg):
            digest.parse(str(dg))  # raises the precise error
            raise InputError(f"{where}.digest: malformed digest {dg!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InputError(f"{where}.size: expected a non-negative integer, got {size!r}")
        ann = obj.get("annotations") or {}
        if not isinstance(ann, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in ann.items()):
            raise InputError(f"{where}.annotations: expected an object of strings")
        at = obj.get("artifactType")
        if at is not None and not isinstance(at, str):
            raise InputError(f"{where}.artifactType: expected a string")
        plat = obj.get("platform")
        return cls(mt, dg, size, ann, at, plat if isinstance(plat, dict) else None)


@dataclass(frozen=True)
class ImageManifest:
    """A parsed OCI image manifest (also used for artifacts such as signature referrers)."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None
    artifact_type: str | None = None
    media_type: str = MEDIA_MANIFEST

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.subject:
            out["subject"] = self.subject.to_json()
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    def to_bytes(self) -> bytes:
        return canonical.dumps(self.to_json())

    def find_layer(self, media_type: str) -> Descriptor | None:
        """The one layer of ``media_type`` (plain or ``+encrypted``); None if there is none."""
        found = [d for d in self.layers if d.media_type.removesuffix(ENCRYPTED_SUFFIX) == media_type]
        if len(found) > 1:
            raise InputError(f"package manifest has {len(found)} layers of type {media_type}, expected 1")
        return found[0] if found else None

    def layer(self, media_type: str) -> Descriptor:
        """The one layer of ``media_type`` (plain or ``+encrypted``); refused unless exactly one."""
        found = self.find_layer(media_type)
        if found is None:
            raise InputError(f"package manifest has no {media_type} layer")
        return found

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "manifest") -> ImageManifest:
        obj = load_json(data, where, MAX_MANIFEST_BYTES)
        if obj.get("schemaVersion") != 2:
            raise InputError(f"{where}.schemaVersion: expected 2, got {obj.get('schemaVersion')!r}")
        mt = obj.get("mediaType", MEDIA_MANIFEST)
        if mt != MEDIA_MANIFEST:
            raise InputError(f"{where}.mediaType: expected {MEDIA_MANIFEST}, got {mt!r}")
        layers = obj.get("layers")
        if not isinstance(layers, list):
            raise InputError(f"{where}.layers: expected a list")
        subject = obj.get("subject")
        ann = obj.get("annotations") or {}
        if not isinstance(ann, dict):
            raise InputError(f"{where}.annotations: expected an object")
        return cls(
            config=Descriptor.from_json(obj.get("config"), f"{where}.config"),
            layers=tuple(Descriptor.from_json(x, f"{where}.layers[{i}]") for i, x in enumerate(layers)),
            annotations=ann,
            subject=Descriptor.from_json(subject, f"{where}.subject") if subject is not None else None,
            artifact_type=obj.get("artifactType"),
        )


def load_json(data: bytes, where: str, limit: int = MAX_MANIFEST_BYTES) -> dict[str, Any]:
    """Parse untrusted JSON into an object, with a size limit and a clear error."""
    return bounded.json_object(data, where, limit)


class Layout:
    """An OCI image layout directory: ``oci-layout``, ``index.json``, ``blobs/sha256/...``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # Manifests are content-addressed: once one has been read and re-hashed, the parsed form
        # can be reused for the life of this object (a changed file would have a new digest).
        self._manifests: dict[str, ImageManifest] = {}

    @classmethod
    def create(cls, path: Path) -> Layout:
        path = Path(path)
        (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(path / "oci-layout", canonical.dumps({"imageLayoutVersion": "1.0.0"}))
        if not (path / "index.json").exists():
            atomic.write_bytes(path / "index.json", canonical.dumps(_empty_index()))
        return cls(path)

    @classmethod
    def open(cls, path: Path) -> Layout:
        path = Path(path)
        marker = path / "oci-layout"
        if not marker.is_file():
            raise NotFoundError(f"{path} is not an OCI image layout (no oci-layout file)")
        obj = load_json(marker.read_bytes(), f"{marker}")
        if obj.get("imageLayoutVersion") != "1.0.0":
            raise InputError(f"{marker}: unsupported imageLayoutVersion {obj.get('imageLayoutVersion')!r}")
        return cls(path)

    # -- blobs ---------------------------------------------------------------------------------
    def blob_path(self, dg: str) -> Path:
        _, hexpart = digest.parse(dg)
        return self.path / "blobs" / "sha256" / hexpart

    def has_blob(self, dg: str) -> bool:
        return self.blob_path(dg).is_file()

    def put_bytes(self, data: bytes, media_type: str, annotations: Mapping[str, str] | None = None) -> Descriptor:
        dg = digest.of_bytes(data)
        target = self.blob_path(dg)
        if not target.exists():
            atomic.write_bytes(target, data)
        return Descriptor(media_type, dg, len(data), dict(annotations or {}))

    def put_stream(self, stream: BinaryIO, media_type: str, expected: str | None = None,
                   annotations: Mapping[str, str] | None = None) -> Descriptor:
        """Copy a stream into the layout, hashing as it goes; visible only once complete (and verified)."""
        import tempfile  # not at the top: `enarx-pkg run` only reads layouts (bench/run.py)

        blobs = self.path / "blobs" / "sha256"
        blobs.mkdir(parents=True, exist_ok=True)
        hasher = digest.Hasher()
        fd, tmp = tempfile.mkstemp(prefix=".upload.", dir=blobs)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in iter(lambda: stream.read(digest.CHUNK), b""):
                    hasher.update(chunk)
                    out.write(chunk)
            if expected is not None:
                hasher.verify(expected)
            os.replace(tmp, self.blob_path(hasher.digest))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return Descriptor(media_type, hasher.digest, hasher.size, dict(annotations or {}))

    def put_file(self, src: Path, media_type: str, annotations: Mapping[str, str] | None = None) -> Descriptor:
        with open(src, "rb") as f:
            return self.put_stream(f, media_type, annotations=annotations)

    def read_blob(self, dg: str, limit: int | None = None) -> bytes:
        path = self.blob_path(dg)
        if not path.is_file():
            raise NotFoundError(f"blob {dg} is not in {self.path}")
        if limit is not None and path.stat().st_size > limit:
            raise InputError(f"blob {dg} is over the {limit}-byte limit")
        data = path.read_bytes()
        digest.check(data, dg, f"blob {dg} in {self.path}")
        return data

    def open_blob(self, dg: str) -> BinaryIO:
        path = self.blob_path(dg)
        if not path.is_file():
            raise NotFoundError(f"blob {dg} is not in {self.path}")
        return open(path, "rb")

    # -- index ---------------------------------------------------------------------------------
    def index(self) -> list[Descriptor]:
        path = self.path / "index.json"
        if not path.is_file():
            raise NotFoundError(f"{self.path} has no index.json")
        obj = load_json(path.read_bytes(), str(path))
        manifests = obj.get("manifests", [])
        if not isinstance(manifests, list):
            raise InputError(f"{path}.manifests: expected a list")
        return [Descriptor.from_json(m, f"{path}.manifests[{i}]") for i, m in enumerate(manifests)]

    def _write_index(self, manifests: list[Descriptor]) -> None:
        idx = _empty_index()
        idx["manifests"] = [m.to_json() for m in manifests]
        atomic.write_bytes(self.path / "index.json", canonical.dumps(idx))

    def add_manifest(self, manifest: ImageManifest | bytes, tag: str | None = None) -> Descriptor:
        """Store a manifest blob and list it in index.json (a tag moves from any older manifest)."""
        data = manifest.to_bytes() if isinstance(manifest, ImageManifest) else manifest
        parsed = manifest if isinstance(manifest, ImageManifest) else ImageManifest.from_bytes(data)
        ann = {ANNOTATION_REF_NAME: tag} if tag else {}
        desc = self.put_bytes(data, MEDIA_MANIFEST, ann)
        desc = Descriptor(desc.media_type, desc.digest, desc.size, ann, parsed.artifact_type)
        kept = []
        for m in self.index():
            if m.digest == desc.digest and not m.annotations.get(ANNOTATION_REF_NAME):
                continue
            if tag and m.annotations.get(ANNOTATION_REF_NAME) == tag:
                continue
            kept.append(m)
        if not any(m.digest == desc.digest and m.annotations == desc.annotations for m in kept):
            kept.append(desc)
        self._write_index(kept)
        return desc

    def resolve(self, ref: str | None = None) -> Descriptor:
        """Find a manifest by tag or digest; with no ref, the one package manifest in the layout."""
        entries = self.index()
        if ref is None:
            mains = {m.digest: m for m in entries if m.artifact_type != MEDIA_SIGSTORE_BUNDLE}
            mains = {d: m for d, m in mains.items() if not self._is_referrer(m)}
            if len(mains) != 1:
                tags = sorted(t for m in mains.values() if (t := m.annotations.get(ANNOTATION_REF_NAME)))
                raise NotFoundError(f"{self.path} holds {len(mains)} package manifests; name one by tag or digest",
                                    hint=f"e.g. oci:{self.path}:{tags[-1]} (tags: {', '.join(tags)})"
                                    if tags else None)
            return next(iter(mains.values()))
        for m in entries:
            if m.digest == ref or m.annotations.get(ANNOTATION_REF_NAME) == ref:
                return m
        if digest.is_valid(ref) and self.has_blob(ref):
            data = self.read_blob(ref, MAX_MANIFEST_BYTES)
            parsed = ImageManifest.from_bytes(data)
            return Descriptor(MEDIA_MANIFEST, ref, len(data), {}, parsed.artifact_type)
        raise NotFoundError(f"no manifest {ref!r} in {self.path}")

    def _is_referrer(self, desc: Descriptor) -> bool:
        return self.manifest(desc.digest).subject is not None

    def manifest(self, dg: str) -> ImageManifest:
        cached = self._manifests.get(dg)
        if cached is None:
            cached = ImageManifest.from_bytes(self.read_blob(dg, MAX_MANIFEST_BYTES), f"manifest {dg}")
            self._manifests[dg] = cached
        return cached

    def referrers(self, subject: str, artifact_type: str | None = None) -> list[Descriptor]:
        """Manifests in this layout whose ``subject`` is ``subject`` (signatures, attestations)."""
        out = []
        for m in self.index():
            man = self.manifest(m.digest)
            if man.subject is None or man.subject.digest != subject:
                continue
            if artifact_type and man.artifact_type != artifact_type:
                continue
            out.append(Descriptor(m.media_type, m.digest, m.size, dict(man.annotations), man.artifact_type))
        return out

    def copy_blob_to(self, dg: str, other: Layout) -> None:
        if other.has_blob(dg):
            return
        with self.open_blob(dg) as src:
            other.put_stream(src, "application/octet-stream", expected=dg)


def _empty_index() -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": []}


def verify_layout_blob(layout: Layout, desc: Descriptor) -> None:
    """Re-hash a blob from disk (cached content is re-hashed before it is trusted)."""
    dg, size = digest.of_file(layout.blob_path(desc.digest))
    if dg != desc.digest or size != desc.size:
        raise VerificationError(f"blob {desc.digest} in {layout.path} does not match its descriptor")


# -- naming a package on the command line ---------------------------------------------------------
def tag_for_version(version: str | None) -> str:
    """The OCI tag of a package version ('+' is not allowed in tags: '_' as Helm does)."""
    return _TAG_BAD.sub("_", version)[:128] if version else "latest"


@dataclass(frozen=True)
class LocalPackage:
    """One package manifest in a layout on this machine (pulled there, for a registry reference)."""

    layout: Layout
    descriptor: Descriptor
    project: Path | None = None  # the directory holding Enarx.toml, when given one
    remote: str | None = None  # the registry reference it was pulled from, when given one

    @property
    def digest(self) -> str:
        return self.descriptor.digest

    @property
    def manifest(self) -> ImageManifest:
        return self.layout.manifest(self.descriptor.digest)


@dataclass(frozen=True)
class RemotePackage:
    """A registry reference (``registry/repository[:tag][@sha256:...]``), not fetched."""

    reference: str


def locate(text: str, ref: str | None = None) -> LocalPackage | RemotePackage:
    """The package ``text`` names, the same way for every command.

    ``DIR`` (a project: its ``target/oci`` package of the current ``[package] version``; or an OCI
    layout: its one package), ``DIR:TAG``, ``DIR@sha256:...``, ``@sha256:...`` (in ``.``),
    ``oci:DIR[:TAG]`` (skopeo's form) or a registry reference. ``ref`` (a ``--ref`` option) is
    another way to give the tag or digest.
    """
    explicit = text.startswith("oci:")
    base, selector = _split_selector(text.removeprefix("oci:"), explicit)
    if ref is not None and selector is not None and ref != selector:
        raise UsageError(f"{text} already names {selector}; --ref {ref} contradicts it")
    selector = selector or ref
    if base is None:
        return RemotePackage(text)
    path = Path(base)
    if (path / "oci-layout").is_file():
        layout = Layout.open(path)
        return LocalPackage(layout, layout.resolve(selector))
    if (path / "Enarx.toml").is_file():
        return _project_package(path, selector)
    hint = "give a project directory, an OCI layout (oci:DIR[:TAG]) or registry/repository[:tag]"
    if path.is_dir():
        raise NotFoundError(f"{path} is neither an OCI image layout nor a project directory with Enarx.toml",
                            hint=hint if text in (".", "") else None)
    raise NotFoundError(f"{text}: no such package directory" + ("" if explicit else ", nor a registry reference"),
                        hint=hint)


def locate_local(text: str, ref: str | None = None, *, command: str) -> LocalPackage:
    """:func:`locate`, refusing a registry reference (for commands that act on local packages)."""
    found = locate(text, ref)
    if isinstance(found, RemotePackage):
        raise UsageError(f"{command} takes a local package; {text} is a registry reference",
                         hint="give a project directory or an OCI layout (oci:DIR[:TAG])")
    return found


def require_published(text: str, command: str) -> None:
    """Refuse a local project or layout where only a registry reference will do (``deploy``)."""
    base, _ = _split_selector(text.removeprefix("oci:"), text.startswith("oci:"))  # DIR:TAG as locate reads it
    path = Path(base or text)
    if text.startswith("oci:") or (path / "Enarx.toml").is_file() or (path / "oci-layout").is_file():
        raise UsageError(f"{command} needs a published package; {text} is a local "
                         + ("project" if (path / "Enarx.toml").is_file() else "OCI layout"),
                         hint=f"publish it first (enarx-pkg publish {text}), then {command} "
                              "REGISTRY/REPOSITORY:TAG")


@contextlib.contextmanager
def opened(text: str, ref: str | None = None) -> Iterator[LocalPackage]:
    """:func:`locate`, pulling a registry reference (with its referrers) into a temporary layout."""
    found = locate(text, ref)
    if isinstance(found, LocalPackage):
        yield found
        return
    import tempfile

    from enarx_pkg.pull import pull

    with tempfile.TemporaryDirectory(prefix="enarx-pkg-pull.") as tmp:
        result = pull(found.reference, Path(tmp) / "layout")
        layout = Layout.open(Path(tmp) / "layout")
        yield LocalPackage(layout, layout.resolve(result.manifest_digest), None, found.reference)


def _split_selector(text: str, local: bool) -> tuple[str | None, str | None]:
    """(directory, tag or digest) for a local name; (None, None) for a registry reference."""
    if "@" in text:
        head, _, dg = text.rpartition("@")
        if digest.is_valid(dg) and (local or head == "" or Path(head).exists()):
            return head or ".", dg
    if local or Path(text).exists():
        if Path(text).exists() or ":" not in text:
            return text or ".", None
        head, _, tag = text.rpartition(":")
        return head or ".", tag
    head, sep, tag = text.rpartition(":")
    if sep and "/" not in tag and head and Path(head).exists():
        return head, tag
    looks_remote = "/" in text and not text.startswith((".", "/", "~"))
    return (None, None) if looks_remote else (text, None)


def _project_package(project: Path, selector: str | None) -> LocalPackage:
    layout_dir = project / PROJECT_LAYOUT
    if not (layout_dir / "oci-layout").is_file():
        raise NotFoundError(f"{project} has not been built yet (no {layout_dir})",
                            hint=f"run: enarx-pkg build {project}")
    layout = Layout.open(layout_dir)
    version = _project_version(project / "Enarx.toml")
    tag = selector or (tag_for_version(version) if version else None)  # no [package]: its one package
    if tag is None:
        return LocalPackage(layout, layout.resolve(None), project.resolve())
    try:
        desc = layout.resolve(tag)
    except NotFoundError:
        held = sorted({t for m in layout.index() if (t := m.annotations.get(ANNOTATION_REF_NAME))})
        what = f"version {tag}" if selector is None else repr(tag)
        raise NotFoundError(f"{layout_dir} holds no build of {what} (it holds: {', '.join(held) or 'nothing'})",
                            hint=f"run: enarx-pkg build {project}" if selector is None else
                            f"name one of the tags it holds, e.g. {project}:{held[-1]}" if held else None) from None
    return LocalPackage(layout, desc, project.resolve())


def _project_version(enarx_toml: Path) -> str | None:
    """``[package] version`` as written (the full Enarx.toml check is ``validate``'s and ``build``'s)."""
    import tomllib

    try:
        doc = tomllib.loads(enarx_toml.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{enarx_toml}: cannot read [package] version ({exc})") from None
    pkg = doc.get("package")
    version = pkg.get("version") if isinstance(pkg, dict) else None
    return version if isinstance(version, str) else None
