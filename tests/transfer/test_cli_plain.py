"""The typer-free route for plain ``publish``/``pull`` command lines hands over what typer would."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import typer.main

from enarx_pkg._cli import main as cli_main
from enarx_pkg._cli import transfer_plain
from enarx_pkg._cli.root import app

SAME = [
    ["publish"],
    ["publish", "pkg", "--registry", "127.0.0.1:5000", "--repository", "a/b", "--tag", "1.0.0"],
    ["publish", "--registry=r.example", "pkg", "--repository=a", "--json", "--plain-http"],
    ["publish", "--https", "--mount-from", "lib/base", "--tag", "t", "--tag", "u", "dir"],
    ["publish", "--encrypt", "--recipient", "a.pem", "--recipient=b.pem", "--sign-key", "k.pem", "--", "x"],
    ["pull", "127.0.0.1:5000/a/b:1"],
    ["pull", "-o", "out", "127.0.0.1:5000/a/b@sha256:" + "0" * 64, "--json"],
    ["pull", "--output=o", "--plain-http", "r/x:1", "--https"],
    ["pull", "--", "r/x:1"],
]
TYPER_ONLY = [
    ["publish", "--help"], ["publish", "-h"], ["publish", "--nope"], ["publish", "--registry"],
    ["publish", "--registry", "--json"], ["publish", "--tag="], ["publish", "a", "b"], ["publish", "--json=1"],
    ["pull"], ["pull", "a", "b"], ["pull", "-ofoo", "r/x"], ["pull", ""], ["pull", "-o", "-", "r/x"],
]


def _record(monkeypatch: pytest.MonkeyPatch, name: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    real = getattr(transfer_plain, name)

    def fake(*args: Any, **kwargs: Any) -> None:
        bound = inspect.signature(real).bind(*args, **kwargs).arguments
        calls.append({k: list(v) if k == "recipient" else v for k, v in bound.items()})
    monkeypatch.setattr(transfer_plain, name, fake)
    return calls


@pytest.mark.parametrize("argv", SAME, ids=" ".join)
def test_plain_route_matches_typer(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _record(monkeypatch, argv[0])
    typer.main.get_command(app).main(args=argv, prog_name="enarx-pkg", standalone_mode=False)
    opts = transfer_plain.parse(argv[0], argv[1:])
    assert opts is not None
    assert cli_main.main(argv) == 0  # through main: the plain route, same call
    assert len(calls) == 2 and calls[0] == calls[1] == opts


@pytest.mark.parametrize("argv", TYPER_ONLY, ids=" ".join)
def test_anything_else_goes_through_typer(argv: list[str]) -> None:
    assert transfer_plain.parse(argv[0], argv[1:]) is None


def test_paths_are_paths() -> None:
    opts = transfer_plain.parse("publish", ["--recipient", "a.pem", "--sign-key", "k"])
    assert opts is not None and opts["recipient"] == [Path("a.pem")] and opts["sign_key"] == Path("k")
    assert opts["source"] == Path(".")
