"""Both Enarx dialects load and normalise to one model, with Enarx's own defaults."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from enarx_pkg import manifest
from enarx_pkg.manifest.model import File
from tests.conftest import TESTVECTORS

DATA = Path(__file__).parent / "data"
VECTORS = sorted((TESTVECTORS / "enarx-toml").glob("*.toml"))


def _same(a: manifest.EnarxToml, b: manifest.EnarxToml) -> bool:
    return dataclasses.replace(a, path=None) == dataclasses.replace(b, path=None)


def test_files_and_network_dialects_normalise_to_the_same_model() -> None:
    files = manifest.load(DATA / "service-files.toml")
    network = manifest.load(DATA / "service-network.toml")
    assert _same(files, network)
    assert manifest.to_toml(files) == manifest.to_toml(network)
    assert files.fd_names == "null:stdout:stderr:api:metrics:db:v6"
    assert files.fd_count == 7


def test_network_dialect_values() -> None:
    model = manifest.load(DATA / "service-network.toml")
    assert model.files[3] == File("listen", "api", addr="::", port=8443, prot="tls")
    assert model.files[4] == File("listen", "metrics", addr="::", port=9000, prot="tcp")
    # the outgoing `default` entry gives db its prot; v6 overrides it
    assert model.files[5] == File("connect", "db", host="db.example.com", port=5432, prot="tcp")
    assert model.files[6] == File("connect", "v6", host="2001:db8::1", port=443, prot="tls")


def test_no_files_means_stdin_stdout_stderr() -> None:
    model = manifest.load(DATA / "minimal.toml")
    assert [(f.kind, f.name) for f in model.files] == [("stdin", "stdin"), ("stdout", "stdout"), ("stderr", "stderr")]
    assert model.fd_names == "stdin:stdout:stderr"
    assert model.package is None and model.build is None


def test_enarx_template_defaults() -> None:
    model = manifest.load(DATA / "enarx-template.toml")
    assert model.steward == "https://steward.example.com"
    assert model.args == ("--argument1", "--argument2=foo")
    assert dict(model.env) == {"VAR1": "var1", "VAR2": "var2"}
    assert model.files[3] == File("listen", "LISTEN", addr="::", port=12345, prot="tls")
    assert model.files[4] == File("connect", "CONNECT", host="127.0.0.1", port=23456, prot="tcp")
    assert [f.name for f in model.socket_files] == ["LISTEN", "CONNECT"]


def test_listen_and_connect_defaults_follow_enarx() -> None:
    model = manifest.loads('[[files]]\nkind = "listen"\nname = "L"\n[[files]]\nkind = "connect"\nhost = "h.example"\n'
                           '[[files]]\nkind = "null"\n')
    assert model.files == (File("listen", "L", addr="::", port=443, prot="tls"),
                           File("connect", "h.example", host="h.example", port=443, prot="tls"),
                           File("null", "null"))


def test_enarx_documentation_network_example() -> None:
    model = manifest.load(DATA / "enarx-network-doc.toml")
    assert [f.kind for f in model.files[:3]] == ["null", "stdout", "stderr"]
    incoming = [f for f in model.files if f.kind == "listen"]
    assert [(f.name, f.port, f.prot) for f in incoming] == [("12345", 12345, "tls"), ("9001", 9001, "tcp")]
    outgoing = [f for f in model.files if f.kind == "connect"]
    assert [(f.name, f.host, f.port, f.prot) for f in outgoing] == [
        ("127.0.0.1", "127.0.0.1", 23456, "tcp"), ("example.com", "example.com", 443, "tls")]


def test_networking_alias_from_enarx_docs() -> None:
    model = manifest.loads('[networking.incoming.12345]\nprot = "tls"\n')
    assert model.files[3] == File("listen", "12345", addr="::", port=12345, prot="tls")


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in sorted(DATA.glob("*.toml"))])
def test_normalised_toml_reloads_to_the_same_model(path: Path) -> None:
    model = manifest.load(path)
    text = manifest.to_toml(model)
    again = manifest.loads(text)
    assert _same(model, again)
    assert manifest.to_toml(again) == text  # a fixed point: byte-identical


@pytest.mark.skipif(not VECTORS, reason=f"no Enarx.toml test vectors at {TESTVECTORS / 'enarx-toml'}")
@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in VECTORS])
def test_every_real_enarx_toml_loads_unchanged(path: Path) -> None:
    model = manifest.load(path)
    assert model.fd_count == len(model.files) >= 1
    assert _same(manifest.loads(manifest.to_toml(model)), model)


def test_the_dialect_pair_shown_in_docs_manifest_md() -> None:
    old = ('[stdin]\nkind = "null"\n\n[network.incoming.8443]\nname = "api"\n\n'
           '[network.outgoing."db.example.com:5432"]\nname = "db"\nprot = "tcp"\n')
    new = ('[[files]]\nkind = "null"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'
           '[[files]]\nkind = "listen"\nname = "api"\nport = 8443\n'
           '[[files]]\nkind = "connect"\nname = "db"\nhost = "db.example.com"\nport = 5432\nprot = "tcp"\n')
    assert manifest.to_toml(manifest.loads(old)) == manifest.to_toml(manifest.loads(new))


@pytest.mark.skipif(not VECTORS, reason=f"no Enarx.toml test vectors at {TESTVECTORS / 'enarx-toml'}")
def test_real_vectors_normalise_as_their_readme_says() -> None:
    """paperback.toml: fds in file order (0 null, 1 stdout, 2 stdin, 3 stderr); every real `listen`
    without an addr listens on all addresses."""
    paper = manifest.load(TESTVECTORS / "enarx-toml" / "paperback.toml")
    assert [f.kind for f in paper.files] == ["null", "stdout", "stdin", "stderr"]
    assert paper.fd_names == "null:stdout:stdin:stderr"
    listens = [f for p in VECTORS for f in manifest.load(p).files if f.kind == "listen"]
    assert len(listens) >= 7 and {f.addr for f in listens} == {"::"}
