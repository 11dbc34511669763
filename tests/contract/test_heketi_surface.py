"""The client's whole surface on Heketi v10.4.1's own routes, on any Heketi."""

import inspect
from collections.abc import Callable, Iterator

import pytest

from provisioner.heketi import Durability, HeketiClient, VolumeCreateRequest
from provisioner.heketi.errors import HeketiNotFound, HeketiOutcomeUnknown
from provisioner.heketi.name_cache import VolumeNameMap
from testbed.controller_world import Target
from testbed.heketi import routes
from testbed.heketi.server import HeketiTestServer
from tests.contract.conftest import (
    TESTBED_KEY,
    RecordingSession,
    remove_our_volumes,
    unique,
)

REPLICA_3 = Durability(type="replicate", replica=3)
NO_QUEUE_ENTRY = "/queue/" + "0" * 32
NO_VOLUME = "0" * 32


def request(name: str, size_gib: int = 1) -> VolumeCreateRequest:
    return VolumeCreateRequest(size_gib=size_gib, name=name, durability=REPLICA_3)


@pytest.fixture
def session(target: Target) -> RecordingSession:
    return RecordingSession(target.config())


@pytest.fixture
def client(target: Target, session: RecordingSession) -> Iterator[HeketiClient]:
    heketi = HeketiClient(target.config(), session=session)
    yield heketi
    remove_our_volumes(HeketiClient(target.config()))


def public_methods() -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(HeketiClient, inspect.isfunction)
        if not name.startswith("_")
    }


def walk(client: HeketiClient) -> set[str]:
    """Call every public method (error paths too); the names of those called."""
    name = unique("walk")
    (cluster, *_) = client.list_clusters()
    steps: list[tuple[str, Callable[[], object]]] = [
        ("hello", client.hello),
        ("list_clusters", client.list_clusters),
        ("cluster_info", lambda: client.cluster_info(cluster)),
        ("free_space_gib", lambda: (client.free_space_gib(), client.free_space_gib([cluster]))),
        ("placement_domains", lambda: client.placement_domains([cluster], zones=True)),
        ("find_volume_by_name", lambda: client.find_volume_by_name(name)),
        ("create_volume", lambda: client.create_volume(request(name))),
    ]
    for _, step in steps:
        step()
    volume = client.find_volume_by_name(name)
    assert volume is not None
    more: list[tuple[str, Callable[[], object]]] = [
        ("get_volume", lambda: client.get_volume(volume.id)),
        ("get_volumes", lambda: client.get_volumes([volume.id, NO_VOLUME])),
        ("list_volume_ids", client.list_volume_ids),
        ("list_volumes", client.list_volumes),
        ("volume_identities", client.volume_identities),
        ("expand_volume", lambda: client.expand_volume(volume.id, add_gib=1)),
        ("poll_expand", lambda: _raises(HeketiOutcomeUnknown, client.poll_expand, NO_QUEUE_ENTRY)),
        ("operations_pending", client.operations_pending),
        # an unknown source only: real Heketi's mock executor panics on a clone it runs
        ("clone_volume", lambda: _raises(HeketiNotFound, _clone_as(client, name), NO_VOLUME)),
        ("delete_volume", lambda: client.delete_volume(volume.id)),
        ("delete_volume", lambda: _raises(HeketiNotFound, client.delete_volume, volume.id)),
        ("close", client.close),
    ]
    for _, step in more:
        step()
    return {n for n, _ in steps + more}


def _clone_as(client: HeketiClient, name: str) -> Callable[[str], object]:
    return lambda volume_id: client.clone_volume(volume_id, name=f"{name}-clone")


def _raises(error: type[Exception], call: Callable[[str], object], arg: str) -> None:
    with pytest.raises(error):
        call(arg)


def test_the_walk_calls_every_public_method_of_the_client(
    client: HeketiClient, session: RecordingSession
) -> None:
    assert walk(client) == public_methods()


def test_every_request_of_the_client_is_a_route_of_heketi_v10_4_1(
    client: HeketiClient, session: RecordingSession
) -> None:
    walk(client)
    off_table = [(c.method, c.path) for c in session.calls if not routes.route_of(c.method, c.path)]
    refused = [c for c in session.calls if c.status == 405 or "Invalid path" in c.text]
    assert session.calls and off_table == [] and refused == []


def test_a_cold_lookup_lists_once_and_reads_each_volume_a_warm_one_lists_only(
    target: Target, client: HeketiClient
) -> None:
    names = [unique("lookup") for _ in range(3)]
    for name in names:
        client.create_volume(request(name))
    session = RecordingSession(target.config())
    cold = HeketiClient(target.config(), session=session, names=VolumeNameMap())
    assert cold.find_volume_by_name(unique("absent")) is None
    listed = len(cold.list_volume_ids())
    session.calls.clear()
    assert cold.find_volume_by_name(unique("absent")) is None
    assert [(c.method, c.path) for c in session.calls] == [("GET", "/volumes")]
    assert listed >= 3


def test_a_warm_lookup_reads_only_the_new_volume(target: Target, client: HeketiClient) -> None:
    session = RecordingSession(target.config())
    warm = HeketiClient(target.config(), session=session)
    warm.find_volume_by_name(unique("absent"))
    made = client.create_volume(request(unique("new")))
    session.calls.clear()
    assert warm.find_volume_by_name(made.name) == made
    assert [(c.method, c.path) for c in session.calls] == [
        ("GET", "/volumes"),
        ("GET", f"/volumes/{made.id}"),
    ]


def test_free_space_of_a_cluster_shrinks_by_the_raw_size_of_a_volume(
    client: HeketiClient,
) -> None:
    (cluster, *_) = client.list_clusters()
    before = client.free_space_gib([cluster])
    client.create_volume(request(unique("space"), 5))
    # a real Heketi also counts each brick's metadata space: up to 1 GiB more
    assert 15 <= before - client.free_space_gib([cluster]) <= 16


def test_the_test_server_serves_only_routes_of_the_table() -> None:
    served = HeketiTestServer(admin_key=TESTBED_KEY).served_routes()
    assert served and served <= {r.name for r in routes.ROUTES}
