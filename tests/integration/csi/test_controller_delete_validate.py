"""DeleteVolume and ValidateVolumeCapabilities over the unix socket."""

import threading
import time

import grpc
import pytest

from provisioner.csi import csi_pb2
from tests.integration.csi.controller_harness import (
    ControllerHarness,
    Mode,
    capability,
    rpc_error,
    unique_name,
)

Code = grpc.StatusCode
UNKNOWN_ID = "f" * 32


def heketi_ids(harness: ControllerHarness) -> set[str]:
    return {v["id"] for v in harness.heketi.volumes()}


# --- DeleteVolume -------------------------------------------------------------------


def test_delete_removes_the_heketi_volume(csi_controller: ControllerHarness) -> None:
    volume = csi_controller.create(unique_name("del"))
    csi_controller.delete(volume.volume_id)
    assert volume.volume_id not in heketi_ids(csi_controller)


def test_delete_ten_times_is_ok_every_time(csi_controller: ControllerHarness) -> None:
    volume = csi_controller.create(unique_name("del10"))
    for _ in range(10):
        csi_controller.delete(volume.volume_id)
    assert volume.volume_id not in heketi_ids(csi_controller)


@pytest.mark.parametrize(
    "volume_id",
    [UNKNOWN_ID, "not-a-heketi-id", "../../etc", "x" * 128],
    ids=["unknown", "malformed", "path", "128-chars"],
)
def test_delete_of_an_unknown_or_malformed_id_is_ok(
    csi_controller: ControllerHarness, volume_id: str
) -> None:
    before = heketi_ids(csi_controller)
    csi_controller.delete(volume_id)
    assert heketi_ids(csi_controller) == before


def test_delete_without_volume_id_is_invalid_argument(csi_controller: ControllerHarness) -> None:
    error = rpc_error(csi_controller.controller.DeleteVolume, csi_pb2.DeleteVolumeRequest())
    assert (error.code(), error.details()) == (Code.INVALID_ARGUMENT, "volume_id is required")


def test_delete_while_heketi_is_down_is_unavailable_then_succeeds(
    csi_controller: ControllerHarness,
) -> None:
    volume = csi_controller.create(unique_name("del-down"))
    csi_controller.heketi.pause()
    try:
        request = csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id)
        error = rpc_error(csi_controller.controller.DeleteVolume, request)
    finally:
        csi_controller.heketi.resume()
    assert error.code() == Code.UNAVAILABLE
    csi_controller.delete(volume.volume_id)
    assert volume.volume_id not in heketi_ids(csi_controller)


def test_concurrent_delete_of_one_volume_is_aborted(csi_controller: ControllerHarness) -> None:
    volume = csi_controller.create(unique_name("del-busy"))
    heketi = csi_controller.heketi
    seen = len(heketi.requests)
    heketi.set_latency(500)
    first = threading.Thread(target=csi_controller.delete, args=(volume.volume_id,))
    try:
        first.start()
        deadline = time.monotonic() + 10
        while not any(r.method == "DELETE" for r in heketi.requests[seen:]):
            assert time.monotonic() < deadline, "the first DeleteVolume never reached Heketi"
            time.sleep(0.01)
        request = csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id)
        error = rpc_error(csi_controller.controller.DeleteVolume, request)
    finally:
        first.join(timeout=30)
        heketi.set_latency(0)
    assert (error.code(), error.details()) == (
        Code.ABORTED,
        f"an operation on volume {volume.volume_id} is already in progress; retry later",
    )


# --- ValidateVolumeCapabilities -------------------------------------------------------


def validate_request(
    volume: csi_pb2.Volume, *capabilities: csi_pb2.VolumeCapability, **fields: object
) -> csi_pb2.ValidateVolumeCapabilitiesRequest:
    return csi_pb2.ValidateVolumeCapabilitiesRequest(
        volume_id=volume.volume_id,
        volume_capabilities=list(capabilities) or [capability()],
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def validated_volume(csi_controller: ControllerHarness) -> csi_pb2.Volume:
    return csi_controller.create(unique_name("validate"))


@pytest.mark.parametrize(
    "mode",
    [Mode.SINGLE_NODE_WRITER, Mode.MULTI_NODE_MULTI_WRITER, Mode.MULTI_NODE_READER_ONLY],
    ids=lambda mode: Mode.Name(mode),
)
def test_supported_capabilities_are_confirmed_as_asked(
    csi_controller: ControllerHarness, validated_volume: csi_pb2.Volume, mode: int
) -> None:
    request = validate_request(
        validated_volume,
        capability(mode),
        volume_context=validated_volume.volume_context,
        parameters={"volumetype": "replicate:3"},
    )
    response = csi_controller.controller.ValidateVolumeCapabilities(request, timeout=30)
    assert response.confirmed.volume_capabilities == request.volume_capabilities
    assert response.confirmed.volume_context == validated_volume.volume_context
    assert response.confirmed.parameters == request.parameters
    assert response.message == ""


def test_volume_context_keys_a_co_adds_are_ignored_when_validating(
    csi_controller: ControllerHarness, validated_volume: csi_pb2.Volume
) -> None:
    # external-provisioner (v5.3.0) writes its identity into every PV's volumeAttributes.
    context = {
        **validated_volume.volume_context,
        "storage.kubernetes.io/csiProvisionerIdentity": "1733400000000-8081-org.gluster.glusterfs",
    }
    request = validate_request(validated_volume, volume_context=context)
    response = csi_controller.controller.ValidateVolumeCapabilities(request, timeout=30)
    assert response.message == ""
    assert response.confirmed.volume_context == context


def test_validate_ten_times_gives_the_same_answer(
    csi_controller: ControllerHarness, validated_volume: csi_pb2.Volume
) -> None:
    request = validate_request(validated_volume)
    answers = [
        csi_controller.controller.ValidateVolumeCapabilities(request, timeout=30) for _ in range(10)
    ]
    assert all(answer == answers[0] and answer.HasField("confirmed") for answer in answers)


@pytest.mark.parametrize(
    ("capabilities", "fields", "message"),
    [
        (
            [capability(block=True)],
            {},
            "volume_capability: block access is not supported; GlusterFS volumes are "
            "filesystems (use access type mount / volumeMode: Filesystem)",
        ),
        (
            [capability(), capability(fs_type="xfs")],
            {},
            "volume_capability.mount.fs_type 'xfs' is not supported; use 'glusterfs' or leave "
            "it empty",
        ),
        (
            [capability()],
            {"parameters": {"volumetype": "none"}},
            "is replicate:3, the parameters ask for none",
        ),
        (
            [capability()],
            {"parameters": {"gidMin": "1"}},
            "StorageClass parameter 'gidMin' must be an integer from 2000 to 2147483647; got '1'",
        ),
        (
            [capability()],
            {"volume_context": {"volume": "some-other-volume"}},
            "volume_context does not match volume",
        ),
        (
            [capability()],
            {"mutable_parameters": {"iops": "5"}},
            "mutable_parameters are not supported by this plugin",
        ),
    ],
    ids=["block", "fs-type", "durability", "bad-parameter", "context", "mutable"],
)
def test_unsupported_requests_are_not_confirmed_and_say_why(
    csi_controller: ControllerHarness,
    validated_volume: csi_pb2.Volume,
    capabilities: list[csi_pb2.VolumeCapability],
    fields: dict[str, object],
    message: str,
) -> None:
    request = validate_request(validated_volume, *capabilities, **fields)
    response = csi_controller.controller.ValidateVolumeCapabilities(request, timeout=30)
    assert not response.HasField("confirmed")
    assert message in response.message


@pytest.mark.parametrize("volume_id", [UNKNOWN_ID, "not-a-heketi-id"], ids=["unknown", "malformed"])
def test_validate_of_an_unknown_volume_is_not_found(
    csi_controller: ControllerHarness, volume_id: str
) -> None:
    request = csi_pb2.ValidateVolumeCapabilitiesRequest(
        volume_id=volume_id, volume_capabilities=[capability()]
    )
    error = rpc_error(csi_controller.controller.ValidateVolumeCapabilities, request)
    assert error.code() == Code.NOT_FOUND


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"volume_capabilities": [capability()]}, "volume_id is required"),
        ({"volume_id": UNKNOWN_ID}, "volume_capabilities is required"),
    ],
    ids=["volume-id-missing", "capabilities-missing"],
)
def test_validate_without_required_fields_is_invalid_argument(
    csi_controller: ControllerHarness, request_fields: dict[str, object], message: str
) -> None:
    request = csi_pb2.ValidateVolumeCapabilitiesRequest(**request_fields)  # type: ignore[arg-type]
    error = rpc_error(csi_controller.controller.ValidateVolumeCapabilities, request)
    assert (error.code(), error.details()) == (Code.INVALID_ARGUMENT, message)
