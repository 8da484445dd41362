"""SLSA provenance v1 inside an in-toto Statement v1, made from what ``build`` recorded.

``build`` writes ``<layout>/enarx-build.json`` (builder, build type, command, workdir, toolchains,
source repository and revision, input digests, SOURCE_DATE_EPOCH, manifest digest). When it is
missing, or describes another manifest, the provenance says only what the manifest itself says
(its source and revision annotations) and names the builder ``unknown``.

``encrypt`` writes the encrypted layout's record (:func:`record_encryption`): the plaintext build's
record re-pointed at the encrypted manifest, plus ``encryption`` naming the plaintext manifest
digest and the digest of the plaintext record, so the encrypted package's provenance shows the real
builder and the statement names the plaintext it was made from.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enarx_pkg import __version__
from enarx_pkg._internal import atomic, canonical, digest
from enarx_pkg.errors import InputError
from enarx_pkg.package import ImageManifest, Layout, load_json

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://enarx.dev/enarx-pkg/build/v1"
BUILD_RECORD = "enarx-build.json"
ANN_SOURCE = "org.opencontainers.image.source"
ANN_REVISION = "org.opencontainers.image.revision"
ANN_TITLE = "org.opencontainers.image.title"
MAX_STATEMENT_BYTES = 4 * 1024 * 1024
PLAINTEXT_URI = "https://enarx.dev/enarx-pkg/plaintext-package"


@dataclass(frozen=True)
class ProvenanceSummary:
    """What ``verify`` reports about how a package was built (from a verified statement)."""

    builder: str
    build_type: str
    command: str | None
    source_repository: str | None
    source_revision: str | None
    inputs: int
    plaintext_digest: str | None = None  # an encrypted package: the manifest it was encrypted from
    source_dirty: bool = False  # built from a checkout with uncommitted changes

    def to_json(self) -> dict[str, Any]:
        return {"builder": self.builder, "buildType": self.build_type, "command": self.command,
                "sourceRepository": self.source_repository, "sourceRevision": self.source_revision,
                "sourceDirty": self.source_dirty, "inputs": self.inputs, "plaintextDigest": self.plaintext_digest}

    def source(self) -> str:
        """The source line ``verify`` prints: ``REPO@REVISION``, the bare revision, or "not recorded"."""
        if not self.source_repository and not self.source_revision:
            return "not recorded"
        text = (f"{self.source_repository}@{self.source_revision or '?'}" if self.source_repository
                else f"git commit {self.source_revision} (no repository URL recorded)")
        return text + (" + uncommitted changes" if self.source_dirty else "")


@dataclass(frozen=True)
class Statement:
    """A parsed in-toto Statement v1: subjects as (name, sha256 digest) and the predicate."""

    subjects: tuple[tuple[str, str], ...]
    predicate_type: str
    predicate: dict[str, Any]


def read_build_record(layout: Layout, manifest_digest: str) -> dict[str, Any] | None:
    """``enarx-build.json`` if present and about ``manifest_digest``; None otherwise."""
    path = Path(layout.path) / BUILD_RECORD
    if not path.is_file():
        return None
    record = load_json(path.read_bytes(), str(path))
    if record.get("manifestDigest") not in (None, manifest_digest):
        return None  # a record of another build must not describe this package
    return record


def record_encryption(src: Layout, plaintext_digest: str, out: Layout, encrypted_digest: str) -> None:
    """Write ``out``'s build record for the manifest encrypted from ``src``'s ``plaintext_digest``."""
    path = Path(src.path) / BUILD_RECORD
    record = read_build_record(src, plaintext_digest)
    encryption = {"plaintextManifestDigest": plaintext_digest}
    if record is not None:
        encryption["buildRecordDigest"] = digest.of_bytes(path.read_bytes())
    new = dict(record or {}) | {"manifestDigest": encrypted_digest, "encryption": encryption}
    atomic.write_bytes(Path(out.path) / BUILD_RECORD, canonical.dumps(new))


def statement(manifest_digest: str, manifest: ImageManifest, record: dict[str, Any] | None,
              name: str) -> bytes:
    """The canonical JSON in-toto Statement v1 with an SLSA provenance v1 predicate."""
    _, hexpart = digest.parse(manifest_digest)
    return canonical.dumps({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": hexpart}}],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": predicate(manifest, record or {}),
    })


def subject_name(manifest: ImageManifest, record: dict[str, Any] | None, fallback: str) -> str:
    """The package name: recorded by build, else the title or source annotation, else ``fallback``."""
    rec = record or {}
    pkg = rec.get("package")
    if isinstance(pkg, dict) and isinstance(pkg.get("name"), str):
        return str(pkg["name"])
    for key in (ANN_TITLE, ANN_SOURCE):
        if manifest.annotations.get(key):
            return manifest.annotations[key]
    return fallback


def predicate(manifest: ImageManifest, rec: dict[str, Any]) -> dict[str, Any]:
    """SLSA provenance v1: buildDefinition (what was run, on what) and runDetails (who ran it)."""
    source = rec.get("source") if isinstance(rec.get("source"), dict) else {}
    assert isinstance(source, dict)
    repo = source.get("repository") or manifest.annotations.get(ANN_SOURCE)
    rev = source.get("revision") or manifest.annotations.get(ANN_REVISION)
    deps = _source_dependency(repo, rev, bool(source.get("dirty")))
    for item in rec.get("inputs") or []:
        if isinstance(item, dict) and digest.is_valid(str(item.get("digest"))):
            deps.append({"name": str(item.get("path")), "digest": {"sha256": str(item["digest"])[7:]}})
    deps += _plaintext_dependency(rec)
    builder = rec.get("builder") if isinstance(rec.get("builder"), dict) else {}
    assert isinstance(builder, dict)
    internal: dict[str, Any] = {"toolchains": rec.get("toolchains") or {}}
    if isinstance(rec.get("sourceDateEpoch"), int):
        internal["sourceDateEpoch"] = rec["sourceDateEpoch"]  # builder-chosen: belongs with internals
    return {
        "buildDefinition": {
            "buildType": rec.get("buildType") or BUILD_TYPE,
            "externalParameters": {"command": rec.get("command"), "workdir": rec.get("workdir")},
            "internalParameters": internal,
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {"id": builder.get("id") or "unknown", "version": {"enarx-pkg": __version__}},
            "metadata": {},
        },
    }


def _source_dependency(repo: Any, rev: Any, dirty: bool) -> list[dict[str, Any]]:
    """The source checkout as an SLSA resolved dependency: ``git+REPO@REV``, or the bare commit when the
    checkout has no origin URL (a local repository), so ``verify`` can still name the revision."""
    if not repo and not rev:
        return []
    dep: dict[str, Any] = {"uri": f"git+{repo}@{rev}" if rev else f"git+{repo}"} if repo else {}
    if rev:
        dep["digest"] = {"gitCommit": rev}
    if dirty:
        dep["annotations"] = {"dirty": True}
    return [dep]


def _plaintext_dependency(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """The plaintext package an encrypted one was made from, as an SLSA resolved dependency."""
    enc = rec.get("encryption")
    plain = enc.get("plaintextManifestDigest") if isinstance(enc, dict) else None
    if not isinstance(plain, str) or not digest.is_valid(plain):
        return []
    assert isinstance(enc, dict)
    dep: dict[str, Any] = {"uri": PLAINTEXT_URI, "digest": {"sha256": plain[7:]}}
    if digest.is_valid(str(enc.get("buildRecordDigest"))):
        dep["annotations"] = {"buildRecord": enc["buildRecordDigest"]}
    return [dep]


def parse_statement(payload: bytes, where: str = "statement") -> Statement:
    """Parse a (signature-verified) in-toto Statement v1; malformed ones raise :class:`InputError`."""
    obj = load_json(payload, where, MAX_STATEMENT_BYTES)
    if obj.get("_type") != STATEMENT_TYPE:
        raise InputError(f"{where}._type: expected {STATEMENT_TYPE}, got {obj.get('_type')!r}")
    subjects = obj.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise InputError(f"{where}.subject: expected a non-empty list")
    parsed = []
    for i, s in enumerate(subjects):
        dg = s.get("digest") if isinstance(s, dict) else None
        if not isinstance(dg, dict) or not isinstance(dg.get("sha256"), str):
            raise InputError(f"{where}.subject[{i}].digest.sha256: expected a hex string")
        parsed.append((str(s.get("name", "")), "sha256:" + dg["sha256"]))
    pred = obj.get("predicate")
    return Statement(tuple(parsed), str(obj.get("predicateType")), pred if isinstance(pred, dict) else {})


def summarize(st: Statement) -> ProvenanceSummary | None:
    """The provenance summary of an SLSA v1 statement (None for other predicate types)."""
    if st.predicate_type != SLSA_PROVENANCE_V1:
        return None
    bd, rd = _obj(st.predicate.get("buildDefinition")), _obj(st.predicate.get("runDetails"))
    ext = _obj(bd.get("externalParameters"))
    deps = bd.get("resolvedDependencies") if isinstance(bd.get("resolvedDependencies"), list) else []
    assert isinstance(deps, list)
    repo, rev, dirty = _source_of(deps)
    command = ext.get("command")
    return ProvenanceSummary(
        builder=str(_obj(rd.get("builder")).get("id", "unknown")),
        build_type=str(bd.get("buildType", "")),
        command=_command(command),
        source_repository=repo, source_revision=rev,
        inputs=sum(1 for d in deps if isinstance(d, dict) and "name" in d),
        plaintext_digest=_plaintext_of(deps), source_dirty=dirty,
    )


def _source_of(deps: list[Any]) -> tuple[str | None, str | None, bool]:
    """(repository, revision, dirty) of the first git dependency: ``git+REPO[@REV]`` or a bare gitCommit."""
    for dep in map(_obj, deps):
        uri, rev = dep.get("uri"), _obj(dep.get("digest")).get("gitCommit")
        rev = rev if isinstance(rev, str) else None
        if isinstance(uri, str) and uri.startswith("git+"):
            repo = uri[4:].removesuffix(f"@{rev}") if rev else uri[4:]
        elif rev and uri is None and "name" not in dep:
            repo = None
        else:
            continue
        return repo, rev, _obj(dep.get("annotations")).get("dirty") is True
    return None, None, False


def _plaintext_of(deps: list[Any]) -> str | None:
    for dep in deps:
        sha = _obj(_obj(dep).get("digest")).get("sha256")
        if _obj(dep).get("uri") == PLAINTEXT_URI and isinstance(sha, str):
            return "sha256:" + sha
    return None


def _command(command: Any) -> str | None:
    if isinstance(command, list) and all(isinstance(c, str) for c in command):
        return shlex.join(command)
    return command if isinstance(command, str) else None


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
