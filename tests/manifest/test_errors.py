"""Every mistake names file:line:col, the key path, what was found and what is allowed. One test each."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from enarx_pkg import manifest
from enarx_pkg.errors import ExitCode, NotFoundError
from enarx_pkg.manifest import ManifestError, Problem

PKG = '[package]\nname = "demo"\nversion = "0.1.0"\n'


def problems(text: str | bytes, path: str = "Enarx.toml") -> list[Problem]:
    with pytest.raises(ManifestError) as info:
        manifest.loads(text, path=path)
    assert info.value.exit_code == ExitCode.INVALID_INPUT
    assert info.value.problems, "a ManifestError always lists its problems"
    return list(info.value.problems)


def one(text: str | bytes) -> Problem:
    found = problems(text)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


def test_port_out_of_range_has_the_documented_format() -> None:
    text = PKG + '[[files]]\nkind = "listen"\nname = "api"\nport = 70000\n'
    p = one(text)
    assert str(p) == "Enarx.toml:7:8: files[0].port: 70000 is out of range (expected 1..65535)"


def test_wrong_type() -> None:
    p = one(PKG + '[[files]]\nkind = "listen"\nname = "api"\nport = "443"\n')
    assert (p.key, p.line, p.column) == ("files[0].port", 7, 8)
    assert p.message == '"443" is a string' and p.expected == "an integer"


def test_unknown_key_suggests_the_closest() -> None:
    p = one(PKG + '[pakage]\nname = "x"\n')
    assert (p.key, p.line, p.column) == ("pakage", 4, 1)
    assert p.suggestion == "package" and "did you mean 'package'?" in str(p)


def test_unknown_nested_key_suggests_the_closest() -> None:
    p = one(PKG + '[keep]\nmemory_md = 64\n')
    assert (p.key, p.line, p.column, p.suggestion) == ("keep.memory_md", 5, 1, "memory_mb")


def test_bad_semver() -> None:
    p = one('[package]\nname = "demo"\nversion = "1.2"\n')
    assert (p.key, p.line, p.column) == ("package.version", 3, 11)
    assert "semantic version" in (p.expected or "")


def test_name_containing_colon() -> None:
    p = one('[[files]]\nkind = "null"\nname = "a:b"\n')
    assert (p.key, p.line) == ("files[0].name", 3) and "':'" in (p.expected or "")


def test_port_zero_in_network_table_key() -> None:
    p = one("[network.incoming.0]\n")
    assert p.key == "network.incoming.0" and p.expected == "1..65535"


def test_duplicate_fd_name() -> None:
    p = one('[[files]]\nkind = "listen"\nname = "api"\n[[files]]\nkind = "connect"\nhost = "h"\nname = "api"\n')
    assert (p.key, p.line, p.column) == ("files[1].name", 7, 8)
    assert p.message == 'duplicate file name "api" (also files[0])'


def test_duplicate_fd_name_against_a_default_name() -> None:
    found = problems('[[files]]\nkind = "stdout"\n[[files]]\nkind = "listen"\nname = "stdout"\n')
    assert [p.key for p in found] == ["files[1].name"]


def test_listen_without_name() -> None:
    p = one('[[files]]\nkind = "listen"\nport = 8080\n')
    assert (p.key, p.line, p.column) == ("files[0]", 1, 1)
    assert "missing key 'name'" in p.message


def test_connect_without_host() -> None:
    p = one('[[files]]\nkind = "connect"\nname = "db"\n')
    assert p.key == "files[0]" and "missing key 'host'" in p.message


def test_unknown_kind() -> None:
    p = one('[[files]]\nkind = "socket"\n')
    assert (p.key, p.line, p.column) == ("files[0].kind", 2, 8)
    assert '"listen"' in (p.expected or "")


def test_unknown_prot() -> None:
    p = one('[[files]]\nkind = "listen"\nname = "a"\nprot = "udp"\n')
    assert p.key == "files[0].prot" and p.expected == 'one of "tls", "tcp"'


def test_key_that_does_not_apply_to_the_kind() -> None:
    p = one('[[files]]\nkind = "listen"\nname = "a"\nhost = "example.com"\n')
    assert p.key == "files[0].host" and "does not apply to a listen file" in p.message


def test_secret_literal_value_is_refused_and_not_echoed() -> None:
    text = PKG + '[secrets]\nAPI_TOKEN = "hunter2-very-secret"\n'
    p = one(text)
    assert p.message == "secret given as a literal value"
    assert (p.key, p.line) == ("secrets.API_TOKEN", 5)
    with pytest.raises(ManifestError) as info:
        manifest.loads(text)
    everything = info.value.diagnostics() + info.value.message + repr(info.value.to_dict())
    assert "hunter2" not in everything


def test_secret_with_both_env_and_file() -> None:
    p = one('[secrets]\nTOKEN = { env = "T", file = "t.txt" }\n')
    assert p.key == "secrets.TOKEN" and "exactly one of" in (p.expected or "")


def test_secret_mount_must_be_absolute() -> None:
    p = one('[secrets]\nTOKEN = { env = "T", mount = "run/token" }\n')
    assert (p.key, p.line, p.column) == ("secrets.TOKEN.mount", 2, 30)


def test_malformed_toml_reports_its_position() -> None:
    p = one('[package]\nname = "demo"\nversion = 1.2.3\n')
    assert (p.line, p.column) == (3, 14) and p.message.startswith("invalid TOML")


def test_empty_file() -> None:
    p = one(b"")
    assert "no settings" in p.message


def test_comment_only_file_is_empty_too() -> None:
    assert "no settings" in one("# nothing here\n\n").message


def test_non_utf8_bytes() -> None:
    p = one(b'[package]\nname = "d\xffmo"\n')
    assert (p.line, p.column) == (2, 10) and "not UTF-8" in p.message


def test_ten_megabytes_are_refused_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "Enarx.toml"
    big.write_bytes(b"# " + b"x" * (10 * 1024 * 1024) + b"\n[")  # would be a syntax error if parsed
    start = time.perf_counter()
    with pytest.raises(ManifestError) as info:
        manifest.load(big)
    elapsed = time.perf_counter() - start
    assert "too large" in info.value.problems[0].message
    assert elapsed < 1.0, f"took {elapsed:.2f}s: the file was read or parsed"
    p = one(b"x" * (manifest.MAX_BYTES + 1))
    assert "too large" in p.message


def test_shell_string_without_shell_true() -> None:
    p = one(PKG + '[build]\ncommand = "make all"\noutput = "app.wasm"\n')
    assert (p.key, p.line, p.column) == ("build.command", 5, 11)
    assert "shell = true" in p.message


def test_shell_string_with_shell_true_is_fine() -> None:
    model = manifest.loads(PKG + '[build]\ncommand = "make all"\nshell = true\noutput = "app.wasm"\n')
    assert model.build is not None and model.build.command == ("make all",) and model.build.shell


@pytest.mark.parametrize("output", ["../x.wasm", "/tmp/x.wasm", "out/../../x.wasm", "C:/x.wasm"])
def test_output_path_escaping_the_project(output: str) -> None:
    p = one(PKG + f'[build]\ncommand = ["make"]\noutput = "{output}"\n')
    assert p.key == "build.output" and "escapes the project directory" in p.message


def test_unknown_backend() -> None:
    p = one('[keep]\nbackends = ["snp", "sev"]\n')
    assert (p.key, p.line, p.column) == ("keep.backends[1]", 2, 20)


def test_memory_must_be_positive() -> None:
    for value in ("0", "-5"):
        p = one(f"[keep]\nmemory_mb = {value}\n")
        assert p.key == "keep.memory_mb" and "out of range" in p.message


def test_time_limit_must_be_finite() -> None:
    p = one("[keep]\ntime_limit_s = inf\n")
    assert p.key == "keep.time_limit_s"


def test_both_dialects_mixed() -> None:
    p = one('[[files]]\nkind = "stdin"\n\n[stdout]\nkind = "host"\n')
    assert (p.key, p.line, p.column) == ("stdout", 4, 1) and "mixed" in p.message


def test_build_without_command_or_recipe() -> None:
    p = one('[build]\noutput = "a.wasm"\n')
    assert p.key == "build" and "nothing says how to build" in p.message


def test_recipe_without_sources() -> None:
    p = one('[build]\nrecipe = "c"\noutput = "a.wasm"\n')
    assert "needs sources" in p.message


def test_signing_key_and_identity_are_exclusive() -> None:
    p = one('[signing]\nkey = "cosign.pub"\nidentity = "me@example.com"\nissuer = "https://accounts.example"\n')
    assert p.key == "signing.identity"


def test_signing_identity_needs_issuer() -> None:
    p = one('[signing]\nidentity = "me@example.com"\n')
    assert p.key == "signing" and "issuer" in p.message


def test_signing_regexp_must_compile() -> None:
    p = one('[signing]\nidentity_regexp = "(unclosed"\nissuer = "https://issuer"\n')
    assert p.key == "signing.identity_regexp" and "regular expression" in p.message


def test_ipv6_connect_gets_a_default_name_without_colons() -> None:
    model = manifest.loads('[[files]]\nkind = "connect"\nhost = "2001:db8::1"\n')
    assert model.files[-1].name == "2001-db8--1" and model.files[-1].host == "2001:db8::1"
    # enarx-config's own documented example (the full file is among the test vectors)
    legacy = manifest.loads('[network.outgoing."[2001:db8::1:0:0:1]:5000"]\nprot = "tls"\n')
    assert [f.name for f in legacy.files if f.kind == "connect"] == ["2001-db8--1-0-0-1"]
    assert manifest.loads(manifest.to_toml(legacy)).files == legacy.files


def test_env_value_must_be_a_string() -> None:
    p = one("[env]\nPORT = 8080\n")
    assert (p.key, p.line, p.column) == ("env.PORT", 2, 8)


def test_steward_must_be_a_url() -> None:
    p = one('steward = "attest.example.com"\n')
    assert p.key == "steward" and p.expected == "an http(s) URL"


def test_package_name_must_be_lowercase() -> None:
    p = one('[package]\nname = "My App"\nversion = "1.0.0"\n')
    assert p.key == "package.name"


def test_guest_dir_preopened_twice() -> None:
    text = '[[keep.dirs]]\nhost = "a"\nguest = "/data"\n[[keep.dirs]]\nhost = "b"\nguest = "/data/"\n'
    found = problems(text)
    assert [p.key for p in found] == ["keep.dirs[0].guest", "keep.dirs[1].guest"]
    assert found[1].line == 6


def test_secret_shadowing_env() -> None:
    p = one('[env]\nTOKEN = "x"\n[secrets]\nTOKEN = { env = "TOKEN" }\n')
    assert p.key == "secrets.TOKEN" and "overwrite env.TOKEN" in p.message


def test_too_deep_nesting() -> None:
    text = "a = " + "[" * 5000 + "]" * 5000 + "\n"
    assert "nested too deeply" in one(text).message


def test_every_problem_is_listed_not_only_the_first() -> None:
    text = ('[package]\nname = "demo"\nversion = "one"\n[[files]]\nkind = "listen"\nport = 0\n'
            '[keep]\nbackends = ["nope"]\n[secrets]\nX = "value"\n')
    keys = [p.key for p in problems(text)]
    assert keys == ["package.version", "files[0]", "files[0].port", "keep.backends[0]", "secrets.X"]


def test_diagnostics_print_one_line_per_problem() -> None:
    with pytest.raises(ManifestError) as info:
        manifest.loads('[keep]\nmemory_mb = 0\nfuel = 0\n', path="app/Enarx.toml")
    lines = info.value.diagnostics().splitlines()
    assert lines == ["app/Enarx.toml:2:13: keep.memory_mb: 0 is out of range (expected 1..65536)",
                     "app/Enarx.toml:3:8: keep.fuel: 0 is out of range (expected >= 1)"]


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        manifest.load(tmp_path / "Enarx.toml")


def test_unicode_digits_are_not_a_port() -> None:
    for key in ("²", "١٢"):
        model_or_problem = problems(f'[network.outgoing."h:{key}"]\n')
        assert model_or_problem[0].key.startswith("network.outgoing")
