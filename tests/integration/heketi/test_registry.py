"""The process's Heketi clients (`HeketiClients`): one per config, limits and paces shared
per URL, a rotated key's old session closed, nothing kept after `evict` or `close`."""

from collections.abc import Iterator
from dataclasses import replace

import pytest

from provisioner.heketi import HeketiClients
from provisioner.heketi.session import route_of
from provisioner.heketi.volume_names import VolumeIdentity
from testbed.heketi.server import HeketiTestServer
from tests.integration.heketi.conftest import fast_config


@pytest.fixture
def clients() -> Iterator[HeketiClients]:
    registry = HeketiClients()
    yield registry
    registry.close()


def _client_connections(port: int) -> int:
    """ESTABLISHED TCP connections of this process to `port` (the client side), read
    from /proc (both ends of a loopback connection live in this process)."""
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table, encoding="ascii") as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                count += remote_port == port and fields[3] == "01"
    return count


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_one_config_gets_one_client(clients: HeketiClients) -> None:
    config = fast_config("http://heketi.test:8080")
    assert clients(config) is clients(config)
    assert len(clients) == 1


def test_clients_of_one_url_and_size_share_a_limit_and_a_pace(clients: HeketiClients) -> None:
    first = clients(fast_config("http://heketi.test:8080", request_timeout=5.0))
    second = clients(fast_config("http://heketi.test:8080", request_timeout=6.0))
    assert first is not second
    assert first._limit is second._limit
    assert first._pace is second._pace


@pytest.mark.parametrize(
    ("change", "shared"),
    [
        ({"max_inflight": 2}, "pace"),
        ({"poll_initial": 0.5}, "limit"),
        ({"url": "http://other.test:8080"}, None),
    ],
    ids=["other-limit-size", "other-initial-pace", "other-url"],
)
def test_a_client_asking_for_another_limit_or_pace_gets_its_own(
    clients: HeketiClients, change: dict[str, object], shared: str | None
) -> None:
    first = clients(fast_config("http://heketi.test:8080"))
    second = clients(replace(fast_config("http://heketi.test:8080"), **change))  # type: ignore[arg-type]
    assert (first._limit is second._limit) == (shared == "limit")
    assert (first._pace is second._pace) == (shared == "pace")


def test_clients_of_one_url_share_its_name_map_until_its_last_client_goes(
    clients: HeketiClients,
) -> None:
    first = clients(fast_config("http://a.test:8080", request_timeout=5.0))
    second = clients(fast_config("http://a.test:8080", request_timeout=6.0))
    other = clients(fast_config("http://b.test:8080"))
    assert first._names is second._names
    assert other._names is not first._names
    first._names.remember("0" * 32, VolumeIdentity("pvc-x", 0))
    clients.close()
    assert len(first._names) == 0
    again = clients(fast_config("http://a.test:8080", request_timeout=5.0))
    assert again._names is not first._names


def test_a_rotated_key_replaces_the_client_and_closes_the_old_session(
    server: HeketiTestServer, clients: HeketiClients
) -> None:
    old_config = fast_config(server.url)
    old = clients(old_config)
    old.hello()
    assert _client_connections(_port(server.url)) == 1
    new = clients(fast_config(server.url, key="rotated-key-0123456789abcdef0123"))
    assert new is not old
    assert old_config not in clients
    assert len(clients) == 1
    assert _client_connections(_port(server.url)) == 0
    assert new._limit is old._limit


def test_close_closes_every_session(server: HeketiTestServer) -> None:
    registry = HeketiClients()
    for timeout in (5.0, 6.0, 7.0):
        registry(fast_config(server.url, request_timeout=timeout)).hello()
    assert _client_connections(_port(server.url)) == 3
    registry.close()
    assert len(registry) == 0
    assert _client_connections(_port(server.url)) == 0


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/volumes", "/volumes"),
        ("/volumes/0123456789abcdef0123456789abcdef/expand", "/volumes/{id}/expand"),
        ("/queue/0123456789abcdef0123456789abcdef", "/queue/{id}"),
        ("/clusters/abc123?x=1", "/clusters/{id}"),
        ("/", "/"),
    ],
    ids=["collection", "expand", "queue", "query-dropped", "root"],
)
def test_routes_show_ids_as_placeholders(path: str, route: str) -> None:
    assert route_of(path) == route
