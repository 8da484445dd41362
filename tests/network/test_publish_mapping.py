"""The explicit port mapping (``deploy --detach --publish HOSTPORT:LISTEN``) as the keep applies it: parsing,
and binding real loopback sockets where it says, inside the host's publish range, or refusing."""

from __future__ import annotations

import socket

import pytest

from enarx_pkg.errors import InputError, UsageError
from enarx_pkg.manifest.model import File
from enarx_pkg.network import Limits, NetworkError, Publish, open_sockets, parse_mapping
from tests.network.detached import free_range

STDIO = (File("stdin", "stdin"), File("stdout", "stdout"), File("stderr", "stderr"))
WEB = File("listen", "web", addr="127.0.0.1", port=8080, prot="tcp")
ADMIN = File("listen", "admin", addr="127.0.0.1", port=9090, prot="tcp")


def test_parse_takes_docker_order_and_names_or_ports() -> None:
    assert parse_mapping(["20080:web", "20081:9090"]) == (("web", 20080), ("9090", 20081))


@pytest.mark.parametrize("item", ["web:20080", "20080", "20080:", ":web", "0:web", "70000:web", "20080:we b",
                                  "20080:web:x"])
def test_parse_refuses_what_is_not_hostport_listen(item: str) -> None:
    with pytest.raises(UsageError, match="expected HOSTPORT:LISTEN"):
        parse_mapping([item])


@pytest.mark.parametrize(("items", "twice"), [(["20080:web", "20080:admin"], "host port 20080"),
                                              (["20080:web", "20081:web"], "listen file web")])
def test_parse_refuses_a_port_or_file_mapped_twice(items: list[str], twice: str) -> None:
    with pytest.raises(UsageError, match=f"{twice} is mapped twice"):
        parse_mapping(items)


def bound(publish: Publish, *files: File) -> list[dict[str, object]]:
    reported: list[dict[str, object]] = []
    publish = Publish(publish.host, publish.low, publish.high, reported.extend, publish.fixed)
    with open_sockets([*STDIO, *files], Limits(), publish):
        pass
    return reported


def test_mapped_files_bind_their_port_and_the_others_skip_it() -> None:
    low = free_range(3)
    got = bound(Publish(low=low, high=low + 2, fixed=(("web", low + 1),)), WEB, ADMIN)
    assert got == [{"name": "web", "port": 8080, "address": f"127.0.0.1:{low + 1}"},
                   {"name": "admin", "port": 9090, "address": f"127.0.0.1:{low}"}]
    got = bound(Publish(low=low, high=low + 2, fixed=(("8080", low + 2), ("admin", low))), WEB, ADMIN)
    assert [e["address"] for e in got] == [f"127.0.0.1:{low + 2}", f"127.0.0.1:{low}"]


def test_a_mapping_of_an_undeclared_listen_file_binds_nothing() -> None:
    low = free_range(2)
    with pytest.raises(InputError, match=r"the port mapping \d+:db is no listen file of this workload "
                                         r"\(declared: web \(8080\)\)"):
        bound(Publish(low=low, high=low + 1, fixed=(("db", low),)), WEB)
    with socket.socket() as s:  # nothing was bound, not even the declared file
        s.bind(("127.0.0.1", low))


def test_a_mapped_port_outside_the_range_or_in_use_is_refused() -> None:
    low = free_range(2)
    with pytest.raises(NetworkError, match=f"port {low + 5} is outside this host's publish range {low}-{low + 1}"):
        bound(Publish(low=low, high=low + 1, fixed=(("web", low + 5),)), WEB)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", low + 1))
        squatter.listen(1)
        with pytest.raises(NetworkError, match=f"127.0.0.1:{low + 1} is already in use"):
            bound(Publish(low=low, high=low + 1, fixed=(("web", low + 1),)), WEB)
