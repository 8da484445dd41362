"""Shared test set-up: where the real test vectors are, free loopback ports, session fixtures.

Servers and example builds are session fixtures (started once per run) in ``tests/fixtures/``.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
TESTVECTORS = SHARED / "testvectors"

pytest_plugins = [
    "tests.fixtures.examples",
    "tests.fixtures.registry",
    "tests.fixtures.distribution",
    "tests.fixtures.hosts",
    "tests.fixtures.swift",
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def testvectors() -> Path:
    if not TESTVECTORS.is_dir():
        pytest.skip(f"real test vectors not found at {TESTVECTORS}")
    return TESTVECTORS
