"""`enarx-pkg build`: the OCI layout it writes, reproducibility, and every refusal."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from enarx_pkg import manifest
from enarx_pkg._cli.main import main
from enarx_pkg.build import build
from enarx_pkg.errors import BuildError, ExitCode, InputError
from enarx_pkg.package import MEDIA_ENARX_CONFIG, MEDIA_WASM, MEDIA_WASM_CONFIG, Layout
from tests.build.helpers import prebuilt_project, wasm, wat_project
from tests.fixtures.examples import copy_example


def test_wat_layout_has_cncf_config_two_layers_and_annotations(wat_layout: Path) -> None:
    layout = Layout.open(wat_layout)
    desc = layout.resolve("0.1.0")
    image = layout.manifest(desc.digest)
    assert image.config.media_type == MEDIA_WASM_CONFIG
    assert [d.media_type for d in image.layers] == [MEDIA_WASM, MEDIA_ENARX_CONFIG]
    config = json.loads(layout.read_blob(image.config.digest))
    assert config["architecture"] == "wasm" and config["os"] == "wasip1"
    assert config["layerDigests"] == [d.digest for d in image.layers]
    assert image.annotations["org.opencontainers.image.title"] == "hello-wat"
    assert image.annotations["org.opencontainers.image.version"] == "0.1.0"
    assert image.annotations["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert image.layers[0].annotations["org.opencontainers.image.title"] == "hello.wasm"
    project = wat_layout.parent.parent
    toml = layout.read_blob(image.layers[1].digest).decode()
    assert toml == manifest.to_toml(manifest.load(project))


def test_skopeo_reads_the_layout(wat_layout: Path) -> None:
    out = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{wat_layout}:0.1.0"],
                         capture_output=True, check=True).stdout
    assert json.loads(out)["config"]["mediaType"] == MEDIA_WASM_CONFIG


def test_build_record_has_what_provenance_needs(wat_layout: Path) -> None:
    record = json.loads((wat_layout / "enarx-build.json").read_bytes())
    digest = Layout.open(wat_layout).resolve("0.1.0").digest
    assert record["manifestDigest"] == digest
    assert record["buildType"] == "https://enarx.dev/enarx-pkg/build/v1"
    assert record["builder"]["id"].startswith("enarx-pkg@")
    assert record["command"] == "wat"
    from importlib import metadata

    assert record["toolchains"]["wasmtime"] == metadata.version("wasmtime")  # read without importlib.metadata
    assert {i["path"] for i in record["inputs"]} == {"Enarx.toml", "hello.wat"}
    assert all(i["digest"].startswith("sha256:") for i in record["inputs"])


@pytest.mark.parametrize("dist", ["wasmtime", "componentize-py", "typer", "not-installed-anywhere"])
def test_toolchain_versions_agree_with_importlib_metadata(dist: str) -> None:
    from importlib import metadata

    from enarx_pkg._internal.recipes import dist_version

    try:
        expected: str | None = metadata.version(dist)
    except metadata.PackageNotFoundError:
        expected = None
    assert dist_version(dist) == expected


def test_building_twice_gives_the_same_digest(tmp_path: Path) -> None:
    project = copy_example("wat", tmp_path / "wat")
    first = build(project).digest
    second = build(project, tmp_path / "other-layout").digest
    assert first == second


def _git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_DATE": "2024-01-02T03:04:05Z", "GIT_COMMITTER_DATE": "2024-01-02T03:04:05Z",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def test_fresh_clone_gives_the_same_digest_and_commit_time(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    repo = copy_example("wat", tmp_path / "repo")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "hello")
    original = build(repo)
    _git(tmp_path, "clone", "-q", str(repo), "clone")
    cloned = build(tmp_path / "clone")
    assert cloned.digest == original.digest
    image = Layout.open(cloned.layout).manifest(cloned.digest)
    assert image.annotations["org.opencontainers.image.created"] == "2024-01-02T03:04:05Z"
    record = json.loads((cloned.layout / "enarx-build.json").read_bytes())
    assert record["source"]["dirty"] is False and len(record["source"]["revision"]) == 40


def test_source_date_epoch_sets_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    result = build(copy_example("wat", tmp_path / "wat"))
    image = Layout.open(result.layout).manifest(result.digest)
    assert image.annotations["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"


def test_cli_json_prints_digest_layout_and_tag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = copy_example("wat", tmp_path / "wat")
    assert main(["build", str(project), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tag"] == "0.1.0" and out["layout"] == str(project / "target" / "oci")
    assert out["digest"] == Layout.open(Path(out["layout"])).resolve("0.1.0").digest


def test_prebuilt_is_packaged_as_is(tmp_path: Path) -> None:
    module = wasm('(module (func (export "_start")))')
    result = build(prebuilt_project(tmp_path / "p", module))
    assert Layout.open(result.layout).read_blob(result.module_digest) == module


# -- refusals: one per bad input ----------------------------------------------------------------

def test_failing_build_command_shows_its_stderr_and_exits_70(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Enarx.toml").write_text(
        '[package]\nname = "t"\nversion = "1.0.0"\n[build]\noutput = "m.wasm"\n'
        'command = ["sh", "-c", "echo compiler exploded: bad token >&2; exit 3"]\n')
    assert main(["build", str(tmp_path)]) == ExitCode.BUILD_FAILED
    err = capsys.readouterr().err
    assert "compiler exploded: bad token" in err and "exit status 3" in err


def test_not_wasm_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="not a WebAssembly binary"):
        build(prebuilt_project(tmp_path, b"#!/bin/sh\necho hi\n"))


def test_truncated_module_is_refused(tmp_path: Path) -> None:
    module = wasm('(module (import "wasi_snapshot_preview1" "proc_exit" (func (param i32))) '
                  '(func (export "_start") (nop)))')
    with pytest.raises(BuildError, match=r"truncated|not a valid"):
        build(prebuilt_project(tmp_path, module[: len(module) - 5]))


def test_non_wasi_import_is_refused_with_the_list(tmp_path: Path) -> None:
    module = wasm('(module (import "env" "evil_syscall" (func)) (import "host" "peek" (func)) '
                  '(func (export "_start")))')
    with pytest.raises(BuildError) as info:
        build(prebuilt_project(tmp_path, module))
    assert "env::evil_syscall" in info.value.message and "host::peek" in info.value.message


def test_component_of_the_wrong_world_is_refused(tmp_path: Path) -> None:
    component = wasm('(component (core module $m (func (export "f"))) (core instance $i (instantiate $m)) '
                     '(func $f (canon lift (core func $i "f"))) (export "hello" (func $f)))')
    with pytest.raises(BuildError, match="wrong world"):
        build(prebuilt_project(tmp_path, component))


def test_output_escaping_the_project_is_refused(tmp_path: Path) -> None:
    # Enarx.toml's loader already refuses "../x"; a symlink inside the project is the sneaky way out
    (tmp_path / "m.wasm").write_bytes(wasm('(module (func (export "_start")))'))
    project = prebuilt_project(tmp_path / "p", wasm("(module)"), output="link/m.wasm")
    (project / "link").symlink_to(tmp_path)
    with pytest.raises(BuildError, match="escapes the project"):
        build(project)


def test_socket_files_with_dirs_are_refused(tmp_path: Path) -> None:
    files = ('[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'
             '[[files]]\nkind = "listen"\nname = "web"\nport = 8080\n')
    (tmp_path / "data").mkdir()
    project = wat_project(tmp_path, '(func (export "_start"))', extra=files,
                          keep='[[keep.dirs]]\nhost = "data"\nguest = "/data"\n')
    with pytest.raises(InputError, match=r"keep\.dirs") as exc:
        build(project)
    assert "web (listen)" in exc.value.message
    assert not (project / "target" / "oci").exists()  # refused before anything was written
