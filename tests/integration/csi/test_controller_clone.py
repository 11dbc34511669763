"""CreateVolume with `volume_content_source.volume` over the unix socket: clones through
Heketi's `POST /volumes/{id}/clone`, with the CSI spec's codes."""

from typing import Any

import grpc
import pytest

from provisioner.csi import csi_pb2
from tests.integration.csi.controller_harness import (
    GIB,
    ControllerHarness,
    capacity,
    rpc_error,
    unique_name,
)

Code = grpc.StatusCode
_Rpc = csi_pb2.ControllerServiceCapability.RPC


def heketi_volume(harness: ControllerHarness, volume_id: str) -> dict[str, Any]:
    return next(v for v in harness.heketi.volumes() if v["id"] == volume_id)


def clone_request(
    harness: ControllerHarness, source_id: str, name: str | None = None, **kwargs: Any
) -> csi_pb2.CreateVolumeRequest:
    request = harness.create_request(name or unique_name("clone"), **kwargs)
    request.volume_content_source.volume.volume_id = source_id
    return request


def clone(
    harness: ControllerHarness, source_id: str, name: str | None = None, **kwargs: Any
) -> csi_pb2.Volume:
    request = clone_request(harness, source_id, name, **kwargs)
    volume: csi_pb2.Volume = harness.controller.CreateVolume(request, timeout=30).volume
    return volume


def clone_posts(harness: ControllerHarness) -> int:
    return sum(
        1 for r in harness.heketi.requests if r.method == "POST" and r.path.endswith("/clone")
    )


def test_clone_volume_is_advertised(csi_controller: ControllerHarness) -> None:
    answer = csi_controller.controller.ControllerGetCapabilities(
        csi_pb2.ControllerGetCapabilitiesRequest(), timeout=10
    )
    assert _Rpc.CLONE_VOLUME in [c.rpc.type for c in answer.capabilities]


def test_a_clone_has_its_sources_size_gid_and_names_its_source(
    csi_controller: ControllerHarness,
) -> None:
    source = csi_controller.create(unique_name("src"), capacity_range=capacity(required=2 * GIB))

    copy = clone(csi_controller, source.volume_id)

    raw, raw_source = (heketi_volume(csi_controller, v.volume_id) for v in (copy, source))
    assert copy.volume_id != source.volume_id and copy.capacity_bytes == 2 * GIB
    assert copy.content_source.volume.volume_id == source.volume_id
    assert raw["gid"] == raw_source["gid"]
    assert copy.volume_context["gid"] == str(raw_source["gid"])
    assert copy.volume_context["clone-of"] == source.volume_id
    assert copy.volume_context["volume"] == raw["name"] != raw_source["name"]


def test_a_repeated_clone_returns_the_same_volume_and_clones_once(
    csi_controller: ControllerHarness,
) -> None:
    source = csi_controller.create(unique_name("src"))
    name = unique_name("clone")
    before = clone_posts(csi_controller)

    answers = [clone(csi_controller, source.volume_id, name) for _ in range(3)]

    assert len({a.volume_id for a in answers}) == 1
    assert clone_posts(csi_controller) == before + 1


def test_a_clone_larger_than_its_source_is_expanded_to_the_request(
    csi_controller: ControllerHarness,
) -> None:
    source = csi_controller.create(unique_name("src"))

    copy = clone(csi_controller, source.volume_id, capacity_range=capacity(required=3 * GIB))

    assert copy.capacity_bytes == 3 * GIB
    assert heketi_volume(csi_controller, copy.volume_id)["size"] == 3
    assert heketi_volume(csi_controller, source.volume_id)["size"] == 1


def test_a_clone_whose_answer_was_lost_is_found_by_name_on_the_retry(
    csi_controller: ControllerHarness,
) -> None:
    source = csi_controller.create(unique_name("src"))
    name = unique_name("clone")
    csi_controller.heketi.drop_next("volume_clone", after_commit=True)
    before = clone_posts(csi_controller)

    try:
        first: str | None = clone(csi_controller, source.volume_id, name).volume_id
    except grpc.RpcError as error:
        assert error.code() == Code.DEADLINE_EXCEEDED
        first = None
    second = clone(csi_controller, source.volume_id, name)

    assert first in (None, second.volume_id)
    assert clone_posts(csi_controller) == before + 1
    assert [v["name"] for v in csi_controller.heketi.volumes()].count(
        heketi_volume(csi_controller, second.volume_id)["name"]
    ) == 1


@pytest.mark.parametrize(
    ("kwargs", "code", "message"),
    [
        pytest.param(
            {"capacity_range": capacity(required=GIB)},
            Code.OUT_OF_RANGE,
            "more than capacity_range.required_bytes",
            id="required-below-source",
        ),
        pytest.param(
            {"capacity_range": capacity(limit=GIB)},
            Code.OUT_OF_RANGE,
            "more than capacity_range.limit_bytes",
            id="limit-below-source",
        ),
        pytest.param(
            {"parameters": {"volumetype": "replicate:2"}},
            Code.INVALID_ARGUMENT,
            "is replicate:3, the StorageClass asks for replicate:2",
            id="other-volumetype",
        ),
        pytest.param(
            {"parameters": {"clusterid": "f" * 32}},
            Code.INVALID_ARGUMENT,
            "a clone stays on its source's cluster",
            id="other-cluster",
        ),
    ],
)
def test_a_clone_that_cannot_be_what_is_asked_is_refused_before_heketi_clones(
    csi_controller: ControllerHarness, kwargs: dict[str, Any], code: Code, message: str
) -> None:
    source = csi_controller.create(unique_name("src"), capacity_range=capacity(required=2 * GIB))
    before = clone_posts(csi_controller)

    error = rpc_error(
        csi_controller.controller.CreateVolume,
        clone_request(csi_controller, source.volume_id, **kwargs),
    )

    assert error.code() == code
    assert message in (error.details() or "")
    assert clone_posts(csi_controller) == before


@pytest.mark.parametrize(
    "source_id", ["ab" * 16, "not-a-heketi-id"], ids=["unknown-id", "malformed-id"]
)
def test_a_clone_of_a_volume_that_does_not_exist_is_not_found(
    csi_controller: ControllerHarness, source_id: str
) -> None:
    error = rpc_error(
        csi_controller.controller.CreateVolume, clone_request(csi_controller, source_id)
    )

    assert error.code() == Code.NOT_FOUND


def test_a_snapshot_source_is_an_invalid_argument(csi_controller: ControllerHarness) -> None:
    request = csi_controller.create_request(unique_name("snap"))
    request.volume_content_source.snapshot.snapshot_id = "snap-1"

    error = rpc_error(csi_controller.controller.CreateVolume, request)

    assert error.code() == Code.INVALID_ARGUMENT
    assert error.details() == (
        "volume_content_source: only a volume can be cloned; this plugin has no snapshots"
    )


def test_a_volume_source_without_an_id_is_an_invalid_argument(
    csi_controller: ControllerHarness,
) -> None:
    error = rpc_error(csi_controller.controller.CreateVolume, clone_request(csi_controller, ""))

    assert error.code() == Code.INVALID_ARGUMENT
    assert error.details() == "volume_content_source.volume.volume_id is required"
