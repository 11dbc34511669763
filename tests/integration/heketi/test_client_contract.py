"""The Heketi client against the Heketi test server over real HTTP: every operation."""

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from provisioner.heketi import (
    Durability,
    HeketiAuthError,
    HeketiClient,
    HeketiConflict,
    HeketiError,
    HeketiInvalidRequest,
    HeketiNameInUse,
    HeketiNoSpace,
    HeketiNotFound,
    HeketiOperationFailed,
    HeketiOutcomeUnknown,
    Volume,
    VolumeCreateRequest,
)
from provisioner.heketi.volume_names import VolumeNameMap
from testbed.heketi.server import HeketiTestServer
from tests.integration.heketi.conftest import ADMIN_KEY, USER_KEY, fast_config
from tests.integration.test_servers.heketi_http import call, token

REPLICA_3 = Durability(type="replicate", replica=3)


def request(name: str, size_gib: int = 1, **fields: object) -> VolumeCreateRequest:
    return VolumeCreateRequest(size_gib=size_gib, name=name, durability=REPLICA_3, **fields)  # type: ignore[arg-type]


def ensure(client: HeketiClient, name: str) -> Volume:
    """The caller's recipe from the client's guarantees (what VolumeService does):
    look up, create, and on an unknown outcome or a name still in flight, back off
    and look up again."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = client.find_volume_by_name(name)
        if found is not None:
            return found
        try:
            return client.create_volume(request(name))
        except (HeketiOutcomeUnknown, HeketiNameInUse):
            time.sleep(0.05)
    raise AssertionError(f"could not settle {name}")


def test_hello_answers(client: HeketiClient) -> None:
    client.hello()


def test_list_clusters_names_the_servers_cluster(
    client: HeketiClient, server: HeketiTestServer
) -> None:
    (cluster,) = client.list_clusters()
    assert client.create_volume(request("in-cluster")).cluster == cluster


def test_cluster_info_lists_its_nodes_and_complete_volumes(client: HeketiClient) -> None:
    (cluster_id,) = client.list_clusters()
    volume = client.create_volume(request("listed-in-cluster"))
    cluster = client.cluster_info(cluster_id)
    assert cluster.id == cluster_id
    assert len(cluster.nodes) == 3
    assert volume.id in cluster.volumes
    assert cluster.file


def test_cluster_info_of_an_unknown_cluster_is_not_found(client: HeketiClient) -> None:
    with pytest.raises(HeketiNotFound):
        client.cluster_info("0" * 32)


def test_cluster_info_refuses_a_malformed_id_without_asking_heketi(
    client: HeketiClient, server: HeketiTestServer
) -> None:
    before = len(server.requests)
    with pytest.raises(HeketiInvalidRequest, match="not a valid Heketi cluster id"):
        client.cluster_info("../volumes")
    assert len(server.requests) == before


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("cluster_list", "{}"),
        ("cluster_list", '{"clusters": null}'),
        ("volume_list", "[]"),
        ("volume_list", '{"volumes": "abc"}'),
    ],
    ids=["clusters-missing", "clusters-null", "volumes-not-an-object", "volumes-a-string"],
)
def test_an_id_listing_without_its_list_is_a_clear_failure(
    client: HeketiClient, server: HeketiTestServer, kind: str, body: str
) -> None:
    server.fail_next(kind, status=200, message=body)
    listing = client.list_clusters if kind == "cluster_list" else client.list_volume_ids
    with pytest.raises(HeketiOperationFailed, match="without a list of"):
        listing()


@pytest.mark.parametrize(
    "body",
    [
        "[]",
        '{"devices": {"id": "d"}}',
        '{"devices": ["d"]}',
        '{"devices": [{"storage": null}]}',
        '{"devices": [{"storage": {"free": "lots"}}]}',
    ],
    ids=["not-an-object", "devices-an-object", "device-a-string", "storage-null", "free-text"],
)
def test_free_space_of_a_malformed_node_is_a_clear_failure(
    client: HeketiClient, server: HeketiTestServer, body: str
) -> None:
    server.fail_next("node_get", status=200, message=body)
    with pytest.raises(HeketiOperationFailed, match="malformed node"):
        client.free_space_gib()


def test_listing_volumes_with_a_malformed_volume_is_a_clear_failure(
    client: HeketiClient, server: HeketiTestServer
) -> None:
    client.create_volume(request("pvc-listed"))
    server.fail_next("volume_get", status=200, message='{"name": 3}')
    with pytest.raises(HeketiOperationFailed, match="malformed volume"):
        client.list_volumes()


def _node_ids(client: HeketiClient) -> list[str]:
    (cluster,) = client.list_clusters()
    return list(client.cluster_info(cluster).nodes)


def test_free_space_counts_only_online_nodes(
    client: HeketiClient, server: HeketiTestServer
) -> None:
    before = client.free_space_gib()
    server.set_node_state(_node_ids(client)[0], "offline")
    assert client.free_space_gib() == before * 2 // 3


def test_free_space_counts_only_online_devices(
    client: HeketiClient, server: HeketiTestServer
) -> None:
    before = client.free_space_gib()
    node = _node_ids(client)[1]
    header = f"bearer {token('GET', f'/nodes/{node}', key=ADMIN_KEY)}"
    (device,) = call(server.url, "GET", f"/nodes/{node}", authorization=header).json()["devices"]
    server.set_device_state(device["id"], "failed")
    assert client.free_space_gib() == before * 2 // 3


def test_free_space_reads_only_clusters_nodes_and_node_routes(
    client: HeketiClient, server: HeketiTestServer
) -> None:
    client.free_space_gib()
    paths = [r.path.rsplit("/", 1)[0] if r.path.count("/") > 1 else r.path for r in server.requests]
    assert paths == ["/clusters", "/clusters", "/nodes", "/nodes", "/nodes"]


def test_free_space_shrinks_by_the_raw_size_of_a_volume(client: HeketiClient) -> None:
    before = client.free_space_gib()
    client.create_volume(request("space", 5))
    # three 5 GiB bricks and their thin-pool metadata (0.5 %): 15.08 GiB, in whole GiB
    assert before - client.free_space_gib() in (15, 16)
    assert client.free_space_gib(["0" * 32]) == 0


def test_create_returns_the_complete_typed_volume(client: HeketiClient) -> None:
    volume = client.create_volume(
        request("pvc-typed", 2, gid=2001, gluster_volume_options=("performance.rda on",))
    )
    assert (volume.name, volume.size_gib, volume.gid) == ("pvc-typed", 2, 2001)
    assert volume.durability == REPLICA_3
    assert volume.options == ("performance.rda on",)
    assert len(volume.id) == 32
    assert volume.device == f"{volume.hosts[0]}:pvc-typed"
    assert volume.backup_volfile_servers == volume.hosts[1:]
    assert len(volume.hosts) == 3


@pytest.mark.parametrize(
    "durability",
    [
        Durability(type="none"),
        Durability(type="replicate", replica=2),
        Durability(type="disperse", data=2, redundancy=1),
    ],
    ids=["none", "replica-2", "disperse-2+1"],
)
def test_create_keeps_the_requested_durability(
    client: HeketiClient, durability: Durability
) -> None:
    made = client.create_volume(VolumeCreateRequest(size_gib=2, name="d", durability=durability))
    assert made.durability == durability


def test_create_with_snapshot_factor_reserves_more_space(
    client: HeketiClient, server: HeketiTestServer
) -> None:
    before = client.free_space_gib()
    client.create_volume(request("snappy", 2, snapshot_factor=1.5))
    # three 3 GiB thin pools and their metadata: 9.05 GiB, in whole GiB
    assert before - client.free_space_gib() in (9, 10)
    assert server.volumes()[0]["snapshot"] == {"enable": True, "factor": 1.5}


def test_get_list_and_find_agree_with_create(client: HeketiClient) -> None:
    made = client.create_volume(request("pvc-find"))
    assert client.get_volume(made.id) == made
    assert client.list_volume_ids() == [made.id]
    assert client.list_volumes() == [made]
    assert client.find_volume_by_name("pvc-find") == made
    assert client.find_volume_by_name("pvc-absent") is None


def test_expand_adds_the_requested_gib(client: HeketiClient) -> None:
    made = client.create_volume(request("pvc-grow", 2))
    grown = client.expand_volume(made.id, add_gib=3)
    assert (grown.id, grown.size_gib) == (made.id, 5)


def test_delete_removes_the_volume(client: HeketiClient) -> None:
    made = client.create_volume(request("pvc-gone"))
    client.delete_volume(made.id)
    with pytest.raises(HeketiNotFound, match="Id not found"):
        client.get_volume(made.id)


def test_delete_of_an_unknown_volume_is_not_found(client: HeketiClient) -> None:
    with pytest.raises(HeketiNotFound):
        client.delete_volume("f" * 32)


def test_delete_resent_while_the_first_runs_is_a_conflict(
    server: HeketiTestServer, client: HeketiClient
) -> None:
    made = client.create_volume(request("pvc-twice"))
    server.set_latency(1500)
    first = threading.Thread(target=client.delete_volume, args=(made.id,))
    first.start()
    deadline = time.monotonic() + 5
    while server.inflight() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(HeketiConflict, match="is in use"):
        client.delete_volume(made.id)
    first.join(timeout=10)
    assert server.volumes() == []


def test_pending_operations_count_what_heketi_still_runs(
    server: HeketiTestServer, client: HeketiClient
) -> None:
    assert client.operations_pending() == 0
    made = client.create_volume(request("pvc-pending"))
    server.set_latency(3000)
    deleting = threading.Thread(target=client.delete_volume, args=(made.id,))
    deleting.start()
    deadline = time.monotonic() + 10
    while server.inflight() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.operations_pending() == 1
    deleting.join(timeout=60)
    assert client.operations_pending() == 0


FAILURES: list[tuple[str, Callable[[HeketiClient], object], type[HeketiError], str]] = [
    (
        "name-in-use",
        lambda c: c.create_volume(request("dup")),
        HeketiNameInUse,
        "Failed to allocate new volume: Volume name 'dup' already in use",
    ),
    (
        "no-space",
        lambda c: c.create_volume(request("huge", 1000)),
        HeketiNoSpace,
        "Failed to allocate new volume: No space",
    ),
    (
        "replica-4",
        lambda c: c.create_volume(
            VolumeCreateRequest(
                size_gib=1, name="r4", durability=Durability(type="replicate", replica=4)
            )
        ),
        HeketiInvalidRequest,
        "Invalid replica value",
    ),
    (
        "bad-name",
        lambda c: c.create_volume(request("bad name!")),
        HeketiInvalidRequest,
        "validation failed: name: must be in a valid format.",
    ),
    (
        "expand-unknown",
        lambda c: c.expand_volume("f" * 32, add_gib=1),
        HeketiNotFound,
        "Id not found",
    ),
    (
        "bad-id",
        lambda c: c.get_volume("../topology"),
        HeketiInvalidRequest,
        "'../topology' is not a valid Heketi volume id",
    ),
]


@pytest.mark.parametrize(
    ("action", "kind", "message"), [pytest.param(*f[1:], id=f[0]) for f in FAILURES]
)
def test_refusals_raise_typed_errors_with_heketis_message(
    client: HeketiClient,
    action: Callable[[HeketiClient], object],
    kind: type[HeketiError],
    message: str,
) -> None:
    client.create_volume(request("dup"))
    with pytest.raises(kind) as caught:
        action(client)
    assert str(caught.value) == message


def test_failure_while_running_raises_operation_failed_and_creates_nothing(
    client: HeketiClient,
    server: HeketiTestServer,
) -> None:
    server.fail_next("volume_create", message="Unable to execute command on host", in_queue=True)
    with pytest.raises(HeketiOperationFailed, match="Unable to execute command on host"):
        client.create_volume(request("pvc-fails"))
    assert server.volumes() == []


def test_no_space_while_running_is_typed_as_no_space(
    client: HeketiClient, server: HeketiTestServer
) -> None:
    server.fail_next("volume_create", message="No space", in_queue=True)
    with pytest.raises(HeketiNoSpace):
        client.create_volume(request("pvc-late-full"))


def test_lost_queue_answer_is_outcome_unknown_and_name_lookup_resolves_it(
    client: HeketiClient,
    server: HeketiTestServer,
) -> None:
    server.drop_next("queue_get", after_commit=True)
    server.set_latency(0)
    with pytest.raises(HeketiOutcomeUnknown, match="look the volume up"):
        client.create_volume(request("pvc-lost-answer"))
    found = client.find_volume_by_name("pvc-lost-answer")
    assert found is not None and found.name == "pvc-lost-answer"


def test_restart_during_create_is_outcome_unknown_and_the_name_is_free_once_cleaned(
    client: HeketiClient,
    server: HeketiTestServer,
) -> None:
    server.set_latency(300)
    failure: list[BaseException] = []

    def create() -> None:
        try:
            client.create_volume(request("pvc-restart"))
        except HeketiError as exc:
            failure.append(exc)

    worker = threading.Thread(target=create)
    worker.start()
    while server.count_status(202) == 0:
        threading.Event().wait(0.01)
    server.restart()  # as real Heketi: the create stays pending, its name taken
    worker.join(timeout=20)
    assert [type(f) for f in failure] == [HeketiOutcomeUnknown]
    assert client.find_volume_by_name("pvc-restart") is None
    with pytest.raises(HeketiNameInUse):
        client.create_volume(request("pvc-restart"))
    server.clean_stale_operations()  # Heketi's background cleaner rolls it back
    assert ensure(client, "pvc-restart").name == "pvc-restart"
    assert [v["name"] for v in server.volumes()] == ["pvc-restart"]


@pytest.mark.parametrize("after_commit", [False, True], ids=["before-commit", "after-commit"])
def test_create_retried_after_a_dropped_answer_makes_exactly_one_volume(
    client: HeketiClient,
    server: HeketiTestServer,
    after_commit: bool,
) -> None:
    server.drop_next("volume_create", after_commit=after_commit)
    with pytest.raises(HeketiOutcomeUnknown):
        client.create_volume(request("pvc-dropped"))
    volume = ensure(client, "pvc-dropped")
    assert [v["id"] for v in server.volumes()] == [volume.id]


def test_wrong_key_is_an_auth_error_without_the_secret(server: HeketiTestServer) -> None:
    secret = "the-wrong-secret-value-0123456789abcdef"
    heketi = HeketiClient(fast_config(server.url, key=secret))
    with pytest.raises(HeketiAuthError) as caught:
        heketi.create_volume(request("pvc-auth"))
    text = f"{caught.value} {caught.value!r} {caught.value.args}"
    assert str(caught.value) == (
        "Invalid JWT token: signature is invalid (client and server secrets may not match)"
    )
    assert secret not in text and "eyJ" not in text
    assert server.count_status(401) == 1  # never retried
    assert secret not in repr(heketi.config)


def test_clock_skew_beyond_the_leeway_is_an_auth_error_naming_clocks() -> None:
    with HeketiTestServer(admin_key=ADMIN_KEY, clock_offset=-300) as srv:
        heketi = HeketiClient(fast_config(srv.url))
        with pytest.raises(HeketiAuthError, match="client and server clocks may differ") as caught:
            heketi.list_volume_ids()
        assert ADMIN_KEY not in str(caught.value)


def test_user_role_may_list_but_not_follow_the_queue(server: HeketiTestServer) -> None:
    heketi = HeketiClient(fast_config(server.url, user="user", key=USER_KEY))
    assert heketi.list_volume_ids() == []
    with pytest.raises(HeketiAuthError, match="Administrator access required"):
        heketi.create_volume(request("pvc-user"))


def test_client_without_auth_talks_to_a_server_without_auth() -> None:
    with HeketiTestServer(auth=False) as srv:
        heketi = HeketiClient(fast_config(srv.url, auth_enabled=False))
        assert heketi.create_volume(request("pvc-open")).name == "pvc-open"


# -- name lookups: GET /volumes plus the volumes not seen before ------------------------


def reads(server: HeketiTestServer, since: int = 0) -> list[str]:
    """The GETs since request number `since`, ids shown as {id}."""
    return [
        "GET /volumes/{id}" if r.path.startswith("/volumes/") else f"GET {r.path}"
        for r in server.requests[since:]
        if r.method == "GET"
    ]


def test_a_cold_lookup_reads_every_volume_once_and_a_warm_one_only_the_list(
    server: HeketiTestServer,
) -> None:
    maker = HeketiClient(fast_config(server.url))
    for i in range(5):
        maker.create_volume(request(f"pvc-{i}"))
    heketi = HeketiClient(fast_config(server.url))
    start = len(server.requests)
    assert heketi.find_volume_by_name("pvc-absent") is None
    assert reads(server, start) == ["GET /volumes"] + ["GET /volumes/{id}"] * 5
    start = len(server.requests)
    assert heketi.find_volume_by_name("pvc-absent") is None
    assert reads(server, start) == ["GET /volumes"]


def test_a_warm_lookup_reads_only_the_volumes_created_since(server: HeketiTestServer) -> None:
    heketi = HeketiClient(fast_config(server.url))
    other = HeketiClient(fast_config(server.url))
    assert heketi.find_volume_by_name("pvc-elsewhere") is None
    made = other.create_volume(request("pvc-elsewhere"))
    start = len(server.requests)
    assert heketi.find_volume_by_name("pvc-elsewhere") == made
    assert reads(server, start) == ["GET /volumes", "GET /volumes/{id}"]


def test_a_hit_on_a_known_id_reads_the_volume_as_it_is_now(server: HeketiTestServer) -> None:
    heketi = HeketiClient(fast_config(server.url))
    made = heketi.create_volume(request("pvc-growing", 1))
    HeketiClient(fast_config(server.url)).expand_volume(made.id, add_gib=2)
    found = heketi.find_volume_by_name("pvc-growing")
    assert found is not None and found.size_gib == 3


def test_a_volume_deleted_elsewhere_is_forgotten(server: HeketiTestServer) -> None:
    heketi = HeketiClient(fast_config(server.url))
    made = heketi.create_volume(request("pvc-vanishing"))
    HeketiClient(fast_config(server.url)).delete_volume(made.id)
    assert heketi.find_volume_by_name("pvc-vanishing") is None
    assert heketi.volume_identities() == {}


def test_a_volume_listed_then_gone_before_its_read_is_left_out(server: HeketiTestServer) -> None:
    heketi = HeketiClient(fast_config(server.url))
    heketi.create_volume(request("pvc-racing"))
    cold = HeketiClient(fast_config(server.url))
    server.fail_next("volume_get", status=404, message="Id not found")
    assert cold.find_volume_by_name("pvc-racing") is None
    assert cold.list_volumes() != []  # it is still there: the next lookup learns it


def test_clients_sharing_a_name_map_learn_each_volume_once(server: HeketiTestServer) -> None:
    HeketiClient(fast_config(server.url)).create_volume(request("pvc-shared"))
    names = VolumeNameMap()
    first = HeketiClient(fast_config(server.url), names=names)
    second = HeketiClient(fast_config(server.url, key=ADMIN_KEY), names=names)
    first.find_volume_by_name("pvc-shared")
    start = len(server.requests)
    assert second.find_volume_by_name("pvc-shared") is not None
    assert reads(server, start) == ["GET /volumes", "GET /volumes/{id}"]  # the hit, confirmed


def test_concurrent_lookups_share_listings(server: HeketiTestServer) -> None:
    heketi = HeketiClient(fast_config(server.url))
    HeketiClient(fast_config(server.url)).create_volume(request("pvc-crowd"))
    with ThreadPoolExecutor(max_workers=16) as pool:
        found = list(pool.map(lambda _: heketi.find_volume_by_name("pvc-crowd"), range(32)))
    assert all(v is not None and v.name == "pvc-crowd" for v in found)
    assert reads(server).count("GET /volumes") < 32


def test_a_bounded_map_still_finds_names_beyond_its_bound(server: HeketiTestServer) -> None:
    maker = HeketiClient(fast_config(server.url))
    for i in range(3):
        maker.create_volume(request(f"pvc-b{i}"))
    heketi = HeketiClient(fast_config(server.url), names=VolumeNameMap(max_entries=1))
    assert {heketi.find_volume_by_name(f"pvc-b{i}").name for i in range(3)} == {  # type: ignore[union-attr]
        "pvc-b0",
        "pvc-b1",
        "pvc-b2",
    }
