"""Naming a package: after `version bump` + `build` a project holds two packages, and every command
takes the one of its current version; DIR:TAG, oci:DIR[:TAG], @sha256:... name the others."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from enarx_pkg import keys
from enarx_pkg._cli.main import main
from enarx_pkg.package import LocalPackage, RemotePackage, locate
from tests.build.helpers import wat_project

HELLO = ('(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32))) '
         '(memory (export "memory") 1) (func (export "_start") (call $exit (i32.const {code})))')


@pytest.fixture(scope="module")
def bumped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A project built at 1.0.0, bumped to 1.1.0 (exit status 7) and built again."""
    root = wat_project(tmp_path_factory.mktemp("loop") / "proj", HELLO.format(code=3))
    assert main(["build", str(root)]) == 0
    first = locate(str(root))
    assert main(["version", "bump", "minor", "--dir", str(root)]) == 0
    (root / "m.wat").write_text(f"(module {HELLO.format(code=7)})")
    assert main(["build", str(root)]) == 0
    second = locate(str(root))
    assert isinstance(first, LocalPackage) and isinstance(second, LocalPackage)
    keys.generate(root.parent / "alice", password_env=None)
    return {"root": root, "old": first.digest, "new": second.digest, "key": root.parent / "alice.key",
            "pub": root.parent / "alice.pub"}


def test_layout_holds_both_versions_and_dir_means_the_current_one(bumped: dict[str, Any]) -> None:
    index = json.loads((bumped["root"] / "target" / "oci" / "index.json").read_text())
    tags = {m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]}
    assert tags == {"1.0.0", "1.1.0"} and bumped["old"] != bumped["new"]


@pytest.mark.parametrize("form", ["{root}:1.0.0", "oci:{root}/target/oci:1.0.0", "{root}@{old}",
                                  "oci:{root}/target/oci@{old}"])
def test_every_local_form_names_the_older_package(bumped: dict[str, Any], form: str) -> None:
    found = locate(form.format(**bumped))
    assert isinstance(found, LocalPackage) and found.digest == bumped["old"]


def test_bare_digest_means_the_current_directory(bumped: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(bumped["root"])
    found = locate(f"@{bumped['old']}")
    assert isinstance(found, LocalPackage) and found.digest == bumped["old"]


def test_registry_reference_is_not_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert locate("127.0.0.1:5000/team/app:1.0") == RemotePackage("127.0.0.1:5000/team/app:1.0")
    assert locate("registry.example/app@sha256:" + "a" * 64) == RemotePackage("registry.example/app@sha256:" + "a" * 64)


def test_run_sign_verify_inspect_take_the_current_version(bumped: dict[str, Any],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    root = str(bumped["root"])
    assert main(["run", root]) == 7
    assert main(["run", f"{root}:1.0.0"]) == 3
    assert main(["sign", "--key", str(bumped["key"]), root]) == 0
    assert main(["verify", "--key", str(bumped["pub"]), root]) == 0
    assert main(["verify", "--key", str(bumped["pub"]), f"{root}:1.0.0"]) == 77  # only 1.1.0 was signed
    capsys.readouterr()
    assert main(["inspect", "--json", f"{root}:1.0.0"]) == 0
    assert json.loads(capsys.readouterr().out)["digest"] == bumped["old"]


def test_publish_takes_the_current_version(bumped: dict[str, Any], docker_registry: Any,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = str(bumped["root"])
    assert main(["publish", "--registry", docker_registry.host, "--repository", "loop/app", "--json", root]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tag"] == "1.1.0" and out["reference"].endswith(bumped["new"])
    assert main(["publish", "--registry", docker_registry.host, "--repository", "loop/app", "--tag", "old",
                 "--json", f"{root}:1.0.0"]) == 0
    assert json.loads(capsys.readouterr().out)["reference"].endswith(bumped["old"])


def test_publish_of_an_older_version_tags_it_with_its_own_version(bumped: dict[str, Any], docker_registry: Any,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """DIR:1.0.0 after the project moved on to 1.1.0 goes out as 1.0.0, not under the Enarx.toml's 1.1.0."""
    root = str(bumped["root"])
    assert main(["publish", "--registry", docker_registry.host, "--repository", "loop/older", "--json",
                 f"{root}:1.0.0"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["tag"] == "1.0.0" and json.loads(out)["reference"].endswith(bumped["old"])
    assert f"WARNING: published without a signature: `deploy` refuses unsigned packages; sign it (enarx-pkg sign " \
           f"{root}:1.0.0 --key KEY) and publish again" in err
    assert main(["inspect", "--json", f"{docker_registry.host}/loop/older:1.0.0"]) == 0
    assert json.loads(capsys.readouterr().out)["digest"] == bumped["old"]
    assert main(["inspect", f"{docker_registry.host}/loop/older:1.1.0"]) == 66  # nothing under the newer tag


def test_unbuilt_version_says_build(bumped: dict[str, Any], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    proj = tmp_path / "p"
    proj.mkdir()
    for name in ("Enarx.toml", "m.wat"):
        (proj / name).write_text((bumped["root"] / name).read_text())
    assert main(["run", str(proj)]) == 66
    assert "has not been built yet" in capsys.readouterr().err
    assert main(["build", str(proj)]) == 0
    assert main(["version", "bump", "patch", "--dir", str(proj)]) == 0
    capsys.readouterr()
    assert main(["run", str(proj)]) == 66
    err = capsys.readouterr().err
    assert "holds no build of version 1.1.1 (it holds: 1.1.0)" in err and "enarx-pkg build" in err


def test_missing_path_is_not_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "nope")]) == 66
    assert main(["inspect", str(tmp_path / "nope")]) == 66
    assert "no such package directory" in capsys.readouterr().err


def test_signing_after_an_unsigned_publish_and_publishing_again_adds_the_signature(
        bumped: dict[str, Any], docker_registry: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """What the unsigned-publish warning advises works: the same tag and digest, now with a signature."""
    root, repo = str(bumped["root"]), f"{docker_registry.host}/loop/late"
    publish = ["publish", "--registry", docker_registry.host, "--repository", "loop/late", "--json", f"{root}:1.0.0"]
    assert main(publish) == 0
    assert main(["verify", "--key", str(bumped["pub"]), f"{repo}:1.0.0"]) == 77
    assert "hint: sign it with `enarx-pkg sign` before `enarx-pkg publish`" in capsys.readouterr().err
    assert main(["sign", "--key", str(bumped["key"]), f"{root}:1.0.0"]) == 0
    capsys.readouterr()
    assert main(publish) == 0
    out, err = capsys.readouterr()
    assert len(json.loads(out)["referrers"]) == 1 and "WARNING" not in err
    assert main(["verify", "--key", str(bumped["pub"]), f"{repo}:1.0.0"]) == 0


def test_sign_and_verify_default_to_the_current_directory(bumped: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Like build, run, inspect and publish: `enarx-pkg sign --key K` in a project signs its current version."""
    monkeypatch.chdir(bumped["root"])
    assert main(["sign", "--key", str(bumped["key"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["manifestDigest"] == bumped["new"]
    assert main(["verify", "--key", str(bumped["pub"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["manifestDigest"] == bumped["new"]


@pytest.mark.parametrize(("form", "tag"), [("{root}", "1.1.0"), ("{root}:1.0.0", "1.0.0")])
def test_encrypt_names_its_package_like_every_other_command(bumped: dict[str, Any], tmp_path: Path, form: str,
                                                            tag: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`encrypt hello` (a project, as the README shows it) encrypts the build of its current version."""
    out = tmp_path / "enc"
    assert main(["encrypt", form.format(**bumped), "--recipient", str(bumped["pub"]), "-o", str(out), "--json"]) == 0
    index = json.loads((out / "index.json").read_text())
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == [tag]
    assert json.loads(capsys.readouterr().out)["digest"] == index["manifests"][0]["digest"]


def test_no_package_named_outside_a_project_says_what_to_give(bumped: dict[str, Any], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["verify", "--key", str(bumped["pub"])]) == 66
    err = capsys.readouterr().err
    assert ". is neither an OCI image layout nor a project directory with Enarx.toml" in err
    assert "hint: give a project directory, an OCI layout (oci:DIR[:TAG]) or registry/repository[:tag]" in err
