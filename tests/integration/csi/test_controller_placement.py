"""Classes that ask Heketi for a placement (arbiter, device tags, strict zones), over the
socket: GetCapacity counts what such a volume really takes, per tag; CreateVolume
reports a placement no topology can satisfy as FAILED_PRECONDITION quoting Heketi."""

from collections.abc import Iterator

import grpc
import pytest

from provisioner.csi import csi_pb2
from testbed.heketi.server import HeketiTestServer
from tests.integration.csi.controller_harness import (
    ADMIN_KEY,
    ControllerHarness,
    capability,
    capacity,
    start_harness,
    stop_harness,
    unique_name,
)

GIB = 1 << 30
DEVICE_GIB = 100
#: Three nodes in zones 1-3, each with an SSD and an HDD of 100 GiB.
TIERED = {
    "clusters": [
        {
            "nodes": [
                {
                    "node": {
                        "hostnames": {"manage": [f"node-{i}"], "storage": [f"127.0.0.{i}"]},
                        "zone": i,
                    },
                    "devices": [
                        {"name": "/dev/sdb", "tags": {"disktype": "ssd"}},
                        {"name": "/dev/sdc", "tags": {"disktype": "hdd"}},
                    ],
                }
                for i in (1, 2, 3)
            ]
        }
    ]
}
ARBITER = "user.heketi.arbiter true"
SSD = "user.heketi.device-tag-match disktype=ssd"


@pytest.fixture
def tiered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerHarness]:
    with HeketiTestServer(admin_key=ADMIN_KEY, topology=TIERED, device_gib=DEVICE_GIB) as heketi:
        harness = start_harness(tmp_path_factory.mktemp("ctl-place"), heketi)
        try:
            yield harness
        finally:
            stop_harness(harness)


def available(harness: ControllerHarness, parameters: dict[str, str]) -> int:
    request = csi_pb2.GetCapacityRequest(volume_capabilities=[capability()], parameters=parameters)
    return int(harness.controller.GetCapacity(request, timeout=30).available_capacity)


@pytest.mark.parametrize(
    ("parameters", "gib"),
    [
        ({}, 600 // 3),
        ({"volumeoptions": SSD}, 300 // 3),
        (
            {"volumetype": "none", "volumeoptions": "user.heketi.device-tag-match disktype!=ssd"},
            300,
        ),
        ({"volumeoptions": "user.heketi.device-tag-match disktype=nvme"}, 0),
        # two copies and a KiB of arbiter brick per 64 KiB file
        ({"volumeoptions": ARBITER}, int(600 / (2 + 1 / 64))),
        (
            {"volumeoptions": f"{ARBITER}, user.heketi.average-file-size 16"},
            int(600 / (2 + 1 / 16)),
        ),
        ({"volumeoptions": f"{ARBITER}, {SSD}"}, int(300 / (2 + 1 / 64))),
        ({"volumeoptions": "user.heketi.device-tag-match =ssd"}, 0),  # Heketi refuses them all
    ],
    ids=[
        "all",
        "ssd",
        "not-ssd",
        "no-such-tag",
        "arbiter",
        "arbiter-16k",
        "arbiter-ssd",
        "bad-rule",
    ],
)
def test_capacity_counts_the_devices_and_the_footprint_the_class_asks_for(
    tiered: ControllerHarness, parameters: dict[str, str], gib: int
) -> None:
    assert available(tiered, parameters) == gib * GIB


def test_an_arbiter_volume_takes_its_size_of_an_arbiter_classs_capacity_not_three_times(
    tiered: ControllerHarness,
) -> None:
    arbiter_class = {"volumeoptions": ARBITER}
    replica_3 = available(tiered, {})
    before = available(tiered, arbiter_class)
    tiered.create(unique_name("arb"), capacity_range=capacity(64 * GIB), parameters=arbiter_class)
    assert before - available(tiered, arbiter_class) == 64 * GIB
    # a replica-3 class sees the raw space it took: 2 x 64 GiB + a 1 GiB arbiter + thin-pool
    # metadata = 129.7 GiB of 600 (470 free: 156 GiB of replica-3 volume instead of 200)
    assert replica_3 - available(tiered, {}) == 44 * GIB
    (volume,) = tiered.heketi.volumes()
    assert sorted(b["size"] for b in volume["bricks"]) == [1024 * 1024, 64 * 1024**2, 64 * 1024**2]


def test_a_placement_no_topology_satisfies_is_failed_precondition_quoting_heketi(
    tiered: ControllerHarness,
) -> None:
    request = tiered.create_request(
        unique_name("nvme"),
        parameters={"volumeoptions": "user.heketi.device-tag-match disktype=nvme"},
    )
    with pytest.raises(grpc.RpcError) as raised:
        tiered.controller.CreateVolume(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert raised.value.details() == (
        "Failed to allocate new volume: No space: a brick set needs 3 nodes with devices "
        "tagged disktype=nvme, no cluster has more than 0; tag more devices or add nodes, "
        "or use a class that asks for less"
    )


def test_no_space_for_a_placement_the_topology_can_hold_stays_resource_exhausted(
    tiered: ControllerHarness,
) -> None:
    request = tiered.create_request(
        unique_name("big"),
        capacity_range=capacity(200 * GIB),
        parameters={"volumeoptions": f"user.heketi.zone-checking strict, {SSD}"},
    )
    with pytest.raises(grpc.RpcError) as raised:
        tiered.controller.CreateVolume(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert raised.value.details() == "Failed to allocate new volume: No space"


def test_a_malformed_tag_rule_is_failed_precondition_with_heketis_words(
    tiered: ControllerHarness,
) -> None:
    request = tiered.create_request(
        unique_name("badrule"), parameters={"volumeoptions": "user.heketi.device-tag-match ssd"}
    )
    with pytest.raises(grpc.RpcError) as raised:
        tiered.controller.CreateVolume(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert raised.value.details() == (
        "Failed to allocate new volume: Invalid tag matching rule: Invalid tag match rule: ssd"
    )
