"""ListVolumes, GetCapacity, ControllerExpandVolume and the capabilities, over the socket."""

from collections.abc import Iterator

import grpc
import pytest

from provisioner.csi import csi_pb2
from provisioner.csi.heketi_access import HeketiDefaults
from testbed.heketi.placer import space_needed
from testbed.heketi.server import HeketiTestServer
from tests.integration.csi.controller_harness import (
    ADMIN_KEY,
    GIB,
    ControllerHarness,
    capability,
    capacity,
    rpc_error,
    start_harness,
    stop_harness,
    unique_name,
)

Code = grpc.StatusCode
Rpc = csi_pb2.ControllerServiceCapability.RPC
UNKNOWN_ID = "e" * 32
#: Memory-mode Heketi of the list/capacity tests: 3 nodes with one device of this size.
DEVICE_GIB = 100


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerHarness]:
    """A Controller service over an empty Heketi of its own (exact counts and space)."""
    with HeketiTestServer(admin_key=ADMIN_KEY, device_gib=DEVICE_GIB) as heketi:
        harness = start_harness(tmp_path_factory.mktemp("ctl-list"), heketi)
        try:
            yield harness
        finally:
            stop_harness(harness)


# --- ListVolumes ----------------------------------------------------------------------


def list_all(harness: ControllerHarness, max_entries: int) -> list[list[str]]:
    pages: list[list[str]] = []
    token = ""
    for _ in range(100):
        request = csi_pb2.ListVolumesRequest(max_entries=max_entries, starting_token=token)
        response = harness.controller.ListVolumes(request, timeout=30)
        pages.append([entry.volume.volume_id for entry in response.entries])
        token = response.next_token
        if not token:
            return pages
    raise AssertionError("ListVolumes never ended")


def test_pagination_walks_30_volumes_in_pages_of_7(fresh: ControllerHarness) -> None:
    created = {fresh.create(unique_name("list")).volume_id for _ in range(30)}
    pages = list_all(fresh, 7)
    assert [len(page) for page in pages] == [7, 7, 7, 7, 2]
    listed = [volume_id for page in pages for volume_id in page]
    assert len(listed) == len(set(listed)) == 30
    assert set(listed) == created


def test_zero_max_entries_lists_everything_in_one_page(fresh: ControllerHarness) -> None:
    response = fresh.controller.ListVolumes(csi_pb2.ListVolumesRequest(), timeout=30)
    assert len(response.entries) == len(fresh.heketi.volumes())
    assert response.next_token == ""


def test_list_entries_carry_capacity_and_the_create_context(fresh: ControllerHarness) -> None:
    created = fresh.create(unique_name("entry"), capacity_range=capacity(3 * GIB))
    response = fresh.controller.ListVolumes(csi_pb2.ListVolumesRequest(), timeout=30)
    listed = next(e.volume for e in response.entries if e.volume.volume_id == created.volume_id)
    assert listed == created


def test_list_ten_times_gives_the_same_answer(fresh: ControllerHarness) -> None:
    request = csi_pb2.ListVolumesRequest(max_entries=5)
    answers = [fresh.controller.ListVolumes(request, timeout=30) for _ in range(10)]
    assert all(answer == answers[0] for answer in answers)


def test_a_deleted_volume_does_not_break_paging(fresh: ControllerHarness) -> None:
    first = fresh.controller.ListVolumes(csi_pb2.ListVolumesRequest(max_entries=3), timeout=30)
    fresh.delete(first.next_token)
    rest = fresh.controller.ListVolumes(
        csi_pb2.ListVolumesRequest(starting_token=first.next_token), timeout=30
    )
    ids = [e.volume.volume_id for e in (*first.entries, *rest.entries)]
    assert first.next_token not in ids
    assert len(ids) == len(fresh.heketi.volumes())


@pytest.mark.parametrize("token", ["not-a-token", "12", "g" * 32], ids=["word", "short", "hexish"])
def test_an_invalid_starting_token_is_aborted(fresh: ControllerHarness, token: str) -> None:
    error = rpc_error(
        fresh.controller.ListVolumes, csi_pb2.ListVolumesRequest(starting_token=token)
    )
    assert (error.code(), error.details()) == (
        Code.ABORTED,
        f"starting_token {token!r} was not returned by this plugin; list again without a "
        "starting_token",
    )


def test_negative_max_entries_is_invalid_argument(fresh: ControllerHarness) -> None:
    error = rpc_error(fresh.controller.ListVolumes, csi_pb2.ListVolumesRequest(max_entries=-1))
    assert (error.code(), error.details()) == (
        Code.INVALID_ARGUMENT,
        "max_entries must not be negative",
    )


# --- GetCapacity ----------------------------------------------------------------------


def free_raw_gib(harness: ControllerHarness) -> int:
    """Free device space as Heketi accounts it: each brick with its thin pool's metadata."""
    used = sum(
        space_needed(b["size"], v["snapshot"]["factor"])
        for v in harness.heketi.volumes()
        for b in v["bricks"]
    )
    return (3 * DEVICE_GIB * 1024 * 1024 - used) // (1024 * 1024)


@pytest.mark.parametrize(
    ("parameters", "divisor"),
    [({}, 3), ({"volumetype": "replicate:2"}, 2), ({"volumetype": "none"}, 1),
     ({"volumetype": "replicate:3", "snapfactor": "2"}, 6)],
    ids=["default-replica-3", "replica-2", "distribute", "replica-3-snapshots-x2"],
)  # fmt: skip
def test_capacity_is_free_device_space_divided_by_the_copies(
    fresh: ControllerHarness, parameters: dict[str, str], divisor: int
) -> None:
    request = csi_pb2.GetCapacityRequest(volume_capabilities=[capability()], parameters=parameters)
    response = fresh.controller.GetCapacity(request, timeout=30)
    assert response.available_capacity == (free_raw_gib(fresh) // divisor) * GIB
    assert response.minimum_volume_size.value == GIB


def test_capacity_shrinks_as_volumes_are_created(fresh: ControllerHarness) -> None:
    request = csi_pb2.GetCapacityRequest()
    before = fresh.controller.GetCapacity(request, timeout=30).available_capacity
    fresh.create(unique_name("space"), capacity_range=capacity(4 * GIB))
    after = fresh.controller.GetCapacity(request, timeout=30).available_capacity
    assert before - after == 4 * GIB


def test_capacity_for_block_volumes_is_zero(fresh: ControllerHarness) -> None:
    request = csi_pb2.GetCapacityRequest(volume_capabilities=[capability(block=True)])
    assert fresh.controller.GetCapacity(request, timeout=30).available_capacity == 0


def test_capacity_with_a_bad_parameter_is_invalid_argument(fresh: ControllerHarness) -> None:
    request = csi_pb2.GetCapacityRequest(parameters={"volumetype": "replicate:x"})
    error = rpc_error(fresh.controller.GetCapacity, request)
    assert error.code() == Code.INVALID_ARGUMENT


# --- ControllerExpandVolume -------------------------------------------------------------


def expand_request(
    volume_id: str, required: int, limit: int = 0
) -> csi_pb2.ControllerExpandVolumeRequest:
    return csi_pb2.ControllerExpandVolumeRequest(
        volume_id=volume_id,
        capacity_range=capacity(required, limit),
        secrets={"key": ADMIN_KEY},
        volume_capability=capability(),
    )


def heketi_size(harness: ControllerHarness, volume_id: str) -> int:
    size: int = next(v["size"] for v in harness.heketi.volumes() if v["id"] == volume_id)
    return size


def test_expand_grows_the_volume_online_without_a_node_step(
    csi_controller: ControllerHarness,
) -> None:
    volume = csi_controller.create(unique_name("grow"), capacity_range=capacity(GIB))
    request = expand_request(volume.volume_id, 3 * GIB - 5)
    response = csi_controller.controller.ControllerExpandVolume(request, timeout=30)
    assert (response.capacity_bytes, response.node_expansion_required) == (3 * GIB, False)
    assert heketi_size(csi_controller, volume.volume_id) == 3


def test_expand_ten_times_grows_once_and_answers_the_same(
    csi_controller: ControllerHarness,
) -> None:
    volume = csi_controller.create(unique_name("grow10"))
    seen = len(csi_controller.heketi.requests)
    request = expand_request(volume.volume_id, 2 * GIB)
    answers = [
        csi_controller.controller.ControllerExpandVolume(request, timeout=30) for _ in range(10)
    ]
    assert all(answer == answers[0] for answer in answers)
    expands = [r for r in csi_controller.heketi.requests[seen:] if r.path.endswith("/expand")]
    assert len(expands) == 1


def test_expand_to_a_smaller_size_keeps_the_volume_as_it_is(
    csi_controller: ControllerHarness,
) -> None:
    volume = csi_controller.create(unique_name("nosh"), capacity_range=capacity(3 * GIB))
    request = expand_request(volume.volume_id, GIB)
    response = csi_controller.controller.ControllerExpandVolume(request, timeout=30)
    assert response.capacity_bytes == 3 * GIB


def test_expand_beyond_limit_of_a_bigger_volume_is_out_of_range(
    csi_controller: ControllerHarness,
) -> None:
    volume = csi_controller.create(unique_name("limit"), capacity_range=capacity(3 * GIB))
    error = rpc_error(
        csi_controller.controller.ControllerExpandVolume,
        expand_request(volume.volume_id, GIB, 2 * GIB),
    )
    assert (error.code(), error.details()) == (
        Code.OUT_OF_RANGE,
        f"volume {volume.volume_id} already has 3 GiB, more than capacity_range.limit_bytes "
        f"({2 * GIB}); volumes cannot shrink",
    )


@pytest.mark.parametrize("volume_id", [UNKNOWN_ID, "nonsense"], ids=["unknown", "malformed"])
def test_expand_of_an_unknown_volume_is_not_found(
    csi_controller: ControllerHarness, volume_id: str
) -> None:
    error = rpc_error(
        csi_controller.controller.ControllerExpandVolume, expand_request(volume_id, 2 * GIB)
    )
    assert error.code() == Code.NOT_FOUND


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (csi_pb2.ControllerExpandVolumeRequest(capacity_range=capacity(GIB)),
         "volume_id is required"),
        (csi_pb2.ControllerExpandVolumeRequest(volume_id=UNKNOWN_ID), "capacity_range is required"),
        (csi_pb2.ControllerExpandVolumeRequest(volume_id=UNKNOWN_ID, capacity_range=capacity(-1)),
         "capacity_range.required_bytes must not be negative"),
        (csi_pb2.ControllerExpandVolumeRequest(
            volume_id=UNKNOWN_ID, capacity_range=capacity(GIB),
            volume_capability=capability(block=True)),
         "volume_capability: block access is not supported; GlusterFS volumes are filesystems "
         "(use access type mount / volumeMode: Filesystem)"),
    ],
    ids=["volume-id-missing", "capacity-missing", "negative", "block"],
)  # fmt: skip
def test_bad_expand_requests_are_invalid_argument(
    csi_controller: ControllerHarness,
    request_: csi_pb2.ControllerExpandVolumeRequest,
    message: str,
) -> None:
    error = rpc_error(csi_controller.controller.ControllerExpandVolume, request_)
    assert (error.code(), error.details()) == (Code.INVALID_ARGUMENT, message)


def test_expand_beyond_free_space_is_resource_exhausted(fresh: ControllerHarness) -> None:
    volume = fresh.create(unique_name("huge"))
    error = rpc_error(
        fresh.controller.ControllerExpandVolume, expand_request(volume.volume_id, 1000 * GIB)
    )
    assert error.code() == Code.RESOURCE_EXHAUSTED


# --- capabilities ---------------------------------------------------------------------------


def controller_rpcs(harness: ControllerHarness) -> set[int]:
    response = harness.controller.ControllerGetCapabilities(
        csi_pb2.ControllerGetCapabilitiesRequest(), timeout=30
    )
    return {capability.rpc.type for capability in response.capabilities}


def test_controller_capabilities_with_the_plugins_own_heketi(
    csi_controller: ControllerHarness,
) -> None:
    assert controller_rpcs(csi_controller) == {
        Rpc.CREATE_DELETE_VOLUME,
        Rpc.EXPAND_VOLUME,
        Rpc.SINGLE_NODE_MULTI_WRITER,
        Rpc.CLONE_VOLUME,
        Rpc.LIST_VOLUMES,
        Rpc.GET_CAPACITY,
    }


def test_without_heketi_url_list_and_capacity_are_not_offered(
    controller_heketi: HeketiTestServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    harness = start_harness(
        tmp_path_factory.mktemp("ctl-caps"), controller_heketi, defaults=HeketiDefaults()
    )
    try:
        rpcs = controller_rpcs(harness)
        error = rpc_error(harness.controller.ListVolumes, csi_pb2.ListVolumesRequest())
    finally:
        stop_harness(harness)
    assert rpcs == {
        Rpc.CREATE_DELETE_VOLUME,
        Rpc.EXPAND_VOLUME,
        Rpc.SINGLE_NODE_MULTI_WRITER,
        Rpc.CLONE_VOLUME,
    }
    assert (error.code(), error.details()) == (
        Code.FAILED_PRECONDITION,
        "ListVolumes needs the plugin's own Heketi: start it with --heketi-url",
    )


def test_plugin_capabilities_advertise_the_controller_and_online_expansion(
    csi_controller: ControllerHarness,
) -> None:
    response = csi_controller.identity.GetPluginCapabilities(
        csi_pb2.GetPluginCapabilitiesRequest(), timeout=30
    )
    kinds = {
        (c.service.type if c.HasField("service") else None,
         c.volume_expansion.type if c.HasField("volume_expansion") else None)
        for c in response.capabilities
    }  # fmt: skip
    assert kinds == {
        (csi_pb2.PluginCapability.Service.CONTROLLER_SERVICE, None),
        (None, csi_pb2.PluginCapability.VolumeExpansion.ONLINE),
    }


@pytest.mark.parametrize(
    "method",
    [
        "ControllerPublishVolume",
        "ControllerUnpublishVolume",
        "CreateSnapshot",
        "ControllerGetVolume",
    ],
)
def test_unadvertised_rpcs_are_unimplemented(
    csi_controller: ControllerHarness, method: str
) -> None:
    request_type = getattr(csi_pb2, f"{method}Request")
    error = rpc_error(getattr(csi_controller.controller, method), request_type())
    assert error.code() == Code.UNIMPLEMENTED
