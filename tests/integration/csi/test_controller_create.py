"""CreateVolume over the unix socket: the CSI spec's rules and error codes."""

import threading
import time
from typing import Any

import grpc
import pytest

from provisioner.csi import csi_pb2
from provisioner.csi.heketi_access import HeketiDefaults
from provisioner.volume_naming import csi_volume_name
from testbed.heketi.server import HeketiTestServer
from tests.integration.csi.controller_harness import (
    ADMIN_KEY,
    GIB,
    ControllerHarness,
    Mode,
    capability,
    capacity,
    rpc_error,
    start_harness,
    stop_harness,
    unique_name,
)

Code = grpc.StatusCode


class Contains(str):
    """An expected message of which only this part is fixed (Heketi's text, a URL)."""


def assert_message(details: str, expected: str) -> None:
    if isinstance(expected, Contains):
        assert expected in details
    else:
        assert details == expected


def heketi_volume(heketi: HeketiTestServer, volume_id: str) -> dict[str, Any]:
    return next(v for v in heketi.volumes() if v["id"] == volume_id)


def test_create_returns_heketi_id_capacity_and_the_node_context(
    csi_controller: ControllerHarness,
) -> None:
    name = unique_name("create")
    volume = csi_controller.create(name, capacity_range=capacity(required=GIB + 1))
    raw = heketi_volume(csi_controller.heketi, volume.volume_id)
    assert volume.capacity_bytes == 2 * GIB
    assert raw["name"] == name and raw["size"] == 2
    hosts = raw["mount"]["glusterfs"]["hosts"]
    assert dict(volume.volume_context) == {
        "servers": ",".join(hosts),
        "volume": name,
        "gid": str(raw["gid"]),
    }
    assert 2000 <= raw["gid"] <= 2147483647


def test_create_passes_class_parameters_to_heketi(csi_controller: ControllerHarness) -> None:
    parameters = {"volumetype": "replicate:2", "gidMin": "40000", "gidMax": "40010"}
    volume = csi_controller.create(unique_name("params"), parameters=parameters)
    raw = heketi_volume(csi_controller.heketi, volume.volume_id)
    assert raw["durability"]["replicate"]["replica"] == 2
    assert 40000 <= raw["gid"] <= 40010


def test_each_volume_gets_its_own_gid(csi_controller: ControllerHarness) -> None:
    parameters = {"gidMin": "50000", "gidMax": "50002"}
    ids = [csi_controller.create(unique_name("gid"), parameters=parameters) for _ in range(3)]
    gids = {heketi_volume(csi_controller.heketi, v.volume_id)["gid"] for v in ids}
    assert gids == {50000, 50001, 50002}
    error = rpc_error(
        csi_controller.controller.CreateVolume,
        csi_controller.create_request(unique_name("gid"), parameters=parameters),
    )
    assert error.code() == Code.RESOURCE_EXHAUSTED
    assert "every GID from 50000 to 50002 is in use" in (error.details() or "")


def test_create_without_capacity_range_makes_one_gib(csi_controller: ControllerHarness) -> None:
    assert csi_controller.create(unique_name("nocap")).capacity_bytes == GIB


def test_create_ten_times_gives_the_same_volume(csi_controller: ControllerHarness) -> None:
    name = unique_name("idem")
    answers = [csi_controller.create(name, capacity_range=capacity(3 * GIB)) for _ in range(10)]
    assert all(answer == answers[0] for answer in answers)
    assert [v["name"] for v in csi_controller.heketi.volumes()].count(name) == 1


@pytest.mark.parametrize(
    "name",
    [
        "a" * 128,
        "pvc-" + "0123456789" * 12 + "abcd",
        "Ω" * 64,
        "ns/claim with spaces:and.dots_" + "x" * 98,
        "-" * 128,
    ],
    ids=["128-letters", "128-pvc-style", "64-non-ascii", "128-mixed", "128-dashes"],
)
def test_names_of_128_characters_are_accepted_and_idempotent(
    csi_controller: ControllerHarness, name: str
) -> None:
    first = csi_controller.create(name)
    assert csi_controller.create(name) == first
    assert heketi_volume(csi_controller.heketi, first.volume_id)["name"] == csi_volume_name(name)
    csi_controller.delete(first.volume_id)


def test_names_differing_only_in_the_last_of_128_characters_get_two_volumes(
    csi_controller: ControllerHarness,
) -> None:
    base = "claim." * 21 + "x"
    first, second = (csi_controller.create(base + suffix) for suffix in ("1", "2"))
    assert len(base + "1") == 128
    assert first.volume_id != second.volume_id


@pytest.mark.parametrize(
    ("required", "limit", "gib"),
    [
        (1, 0, 1),
        (GIB, GIB, 1),
        (GIB, 0, 1),
        (GIB + 1, 3 * GIB, 2),
        (0, 5 * GIB, 1),
        (5 * GIB - 1, 5 * GIB, 5),
    ],
    ids=["one-byte", "exact-1GiB", "1GiB-no-limit", "rounded-within-limit", "limit-only",
         "rounds-up-to-limit"],
)  # fmt: skip
def test_capacity_is_rounded_up_to_whole_gib_within_the_limit(
    csi_controller: ControllerHarness, required: int, limit: int, gib: int
) -> None:
    volume = csi_controller.create(unique_name("cap"), capacity_range=capacity(required, limit))
    assert volume.capacity_bytes == gib * GIB


def test_existing_volume_with_compatible_capacity_is_returned(
    csi_controller: ControllerHarness,
) -> None:
    name = unique_name("compat")
    first = csi_controller.create(name, capacity_range=capacity(2 * GIB))
    again = csi_controller.create(name, capacity_range=capacity(GIB, 2 * GIB))
    assert again == first


@pytest.mark.parametrize(
    ("second_range", "fragment"),
    [
        (capacity(3 * GIB), "already exists with 2 GiB, outside the requested capacity range"),
        (capacity(GIB, GIB), "already exists with 2 GiB, outside the requested capacity range"),
    ],
    ids=["needs-more", "limit-below"],
)
def test_existing_volume_with_incompatible_capacity_is_already_exists(
    csi_controller: ControllerHarness, second_range: csi_pb2.CapacityRange, fragment: str
) -> None:
    name = unique_name("incompat")
    csi_controller.create(name, capacity_range=capacity(2 * GIB))
    error = rpc_error(
        csi_controller.controller.CreateVolume,
        csi_controller.create_request(name, capacity_range=second_range),
    )
    assert error.code() == Code.ALREADY_EXISTS
    assert fragment in (error.details() or "")


def test_existing_volume_with_other_durability_is_already_exists(
    csi_controller: ControllerHarness,
) -> None:
    name = unique_name("durability")
    csi_controller.create(name)
    request = csi_controller.create_request(name, parameters={"volumetype": "replicate:2"})
    error = rpc_error(csi_controller.controller.CreateVolume, request)
    assert error.code() == Code.ALREADY_EXISTS
    assert error.details() == (
        f"volume {name!r} already exists as replicate:3, the request asks for replicate:2"
    )


@pytest.mark.parametrize(
    "mode",
    [
        Mode.SINGLE_NODE_WRITER,
        Mode.SINGLE_NODE_READER_ONLY,
        Mode.MULTI_NODE_READER_ONLY,
        Mode.MULTI_NODE_SINGLE_WRITER,
        Mode.MULTI_NODE_MULTI_WRITER,
        Mode.SINGLE_NODE_SINGLE_WRITER,
        Mode.SINGLE_NODE_MULTI_WRITER,
    ],
    ids=lambda mode: Mode.Name(mode),
)
def test_every_access_mode_is_supported(csi_controller: ControllerHarness, mode: int) -> None:
    assert csi_controller.create(unique_name("mode"), capabilities=[capability(mode)]).volume_id


BAD_REQUESTS = [
    pytest.param(
        {"name": ""}, Code.INVALID_ARGUMENT, "name is required", id="name-missing"
    ),
    pytest.param(
        {"capabilities": []}, Code.INVALID_ARGUMENT, "volume_capabilities is required",
        id="capabilities-missing",
    ),
    pytest.param(
        {"capabilities": [capability(block=True)]},
        Code.INVALID_ARGUMENT,
        "volume_capability: block access is not supported; GlusterFS volumes are filesystems "
        "(use access type mount / volumeMode: Filesystem)",
        id="block",
    ),
    pytest.param(
        {"capabilities": [capability(), capability(block=True)]},
        Code.INVALID_ARGUMENT,
        "volume_capability: block access is not supported; GlusterFS volumes are filesystems "
        "(use access type mount / volumeMode: Filesystem)",
        id="block-among-others",
    ),
    pytest.param(
        {"capabilities": [capability(Mode.UNKNOWN)]},
        Code.INVALID_ARGUMENT,
        "volume_capability.access_mode.mode is required",
        id="access-mode-unknown",
    ),
    pytest.param(
        {"capabilities": [csi_pb2.VolumeCapability(access_mode={"mode": Mode.SINGLE_NODE_WRITER})]},
        Code.INVALID_ARGUMENT,
        "volume_capability: access type mount is required",
        id="access-type-missing",
    ),
    pytest.param(
        {"capabilities": [capability(fs_type="ext4")]},
        Code.INVALID_ARGUMENT,
        "volume_capability.mount.fs_type 'ext4' is not supported; use 'glusterfs' or leave it "
        "empty",
        id="fs-type-ext4",
    ),
    pytest.param(
        {"capacity_range": capacity(-1)},
        Code.INVALID_ARGUMENT,
        "capacity_range.required_bytes must not be negative",
        id="required-negative",
    ),
    pytest.param(
        {"capacity_range": capacity(0, -1)},
        Code.INVALID_ARGUMENT,
        "capacity_range.limit_bytes must not be negative",
        id="limit-negative",
    ),
    pytest.param(
        {"capacity_range": capacity(2 * GIB, GIB)},
        Code.INVALID_ARGUMENT,
        f"capacity_range.required_bytes ({2 * GIB}) must not exceed capacity_range.limit_bytes "
        f"({GIB})",
        id="required-above-limit",
    ),
    pytest.param(
        {"capacity_range": capacity(GIB + 1, GIB + 2)},
        Code.OUT_OF_RANGE,
        f"Heketi allocates whole GiB: the smallest volume of at least {GIB + 1} bytes is 2 GiB "
        f"({2 * GIB} bytes), more than capacity_range.limit_bytes ({GIB + 2})",
        id="limit-below-rounded-size",
    ),
    pytest.param(
        {"capacity_range": capacity(0, GIB - 1)},
        Code.OUT_OF_RANGE,
        f"Heketi allocates whole GiB: the smallest volume of at least 0 bytes is 1 GiB "
        f"({GIB} bytes), more than capacity_range.limit_bytes ({GIB - 1})",
        id="limit-below-one-gib",
    ),
    pytest.param(
        {"parameters": {"volumetype": "mirror"}},
        Code.INVALID_ARGUMENT,
        "StorageClass parameter 'volumetype' must be 'replicate:<replicas>' (e.g. replicate:3), "
        "'disperse:<data>:<redundancy>' (e.g. disperse:4:2) or 'none'; got 'mirror'",
        id="bad-class-parameter",
    ),
    pytest.param(
        {"parameters": {"colour": "blue"}},
        Code.INVALID_ARGUMENT,
        Contains("unknown StorageClass parameter 'colour'; supported parameters: resturl, "),
        id="unknown-class-parameter",
    ),
    pytest.param(
        {"parameters": {"resturl": "http://other-heketi:8080"}},
        Code.INVALID_ARGUMENT,
        Contains(
            "StorageClass 'resturl' http://other-heketi:8080 differs from the Heketi URL "
            "DeleteVolume will use"
        ),
        id="resturl-not-reachable-by-delete",
    ),
    pytest.param(
        {"secrets": {"key": "wrong"}},
        Code.PERMISSION_DENIED,
        "Invalid JWT token: signature is invalid (client and server secrets may not match)",
        id="wrong-key",
    ),
    pytest.param(
        {"capacity_range": capacity(100_000 * GIB)},
        Code.RESOURCE_EXHAUSTED,
        "Failed to allocate new volume: No space",
        id="no-space",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "code", "message"), BAD_REQUESTS)
def test_bad_create_requests_fail_with_the_spec_code_and_an_exact_message(
    csi_controller: ControllerHarness,
    overrides: dict[str, Any],
    code: grpc.StatusCode,
    message: str,
) -> None:
    name = overrides.pop("name", unique_name("bad"))
    request = csi_controller.create_request(name, **overrides)
    before = len(csi_controller.heketi.volumes())
    error = rpc_error(csi_controller.controller.CreateVolume, request)
    assert error.code() == code
    details = error.details() or ""
    assert_message(details, message)
    assert len(csi_controller.heketi.volumes()) == before
    assert "wrong" not in details and ADMIN_KEY not in details


def test_mutable_parameters_are_not_supported(csi_controller: ControllerHarness) -> None:
    request = csi_controller.create_request(unique_name("mutable"))
    request.mutable_parameters["iops"] = "100"
    error = rpc_error(csi_controller.controller.CreateVolume, request)
    assert (error.code(), error.details()) == (
        Code.INVALID_ARGUMENT,
        "mutable_parameters are not supported by this plugin",
    )


def test_sidecar_parameters_are_ignored_and_name_the_claim_with_a_prefix(
    csi_controller: ControllerHarness,
) -> None:
    name = unique_name("prefixed")
    parameters = {
        "volumenameprefix": "team",
        "csi.storage.k8s.io/pvc/name": "data",
        "csi.storage.k8s.io/pvc/namespace": "shop",
        "csi.storage.k8s.io/pv/name": name,
    }
    volume = csi_controller.create(name, parameters=parameters)
    raw = heketi_volume(csi_controller.heketi, volume.volume_id)
    assert raw["name"] == f"team_shop_data_{name}"
    assert volume.volume_context["volume"] == raw["name"]


def test_heketi_unreachable_is_unavailable(
    controller_heketi: HeketiTestServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    dead_url = "http://127.0.0.1:9"  # discard port: connection refused
    harness = start_harness(
        tmp_path_factory.mktemp("ctl-dead"),
        controller_heketi,
        defaults=HeketiDefaults(url=dead_url, key=ADMIN_KEY),
    )
    try:
        error = rpc_error(harness.controller.CreateVolume, harness.create_request("tcsi-dead"))
        assert error.code() == Code.UNAVAILABLE
    finally:
        stop_harness(harness)


def test_no_heketi_url_anywhere_is_invalid_argument(
    controller_heketi: HeketiTestServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    harness = start_harness(
        tmp_path_factory.mktemp("ctl-nourl"), controller_heketi, defaults=HeketiDefaults()
    )
    try:
        error = rpc_error(harness.controller.CreateVolume, harness.create_request("tcsi-nourl"))
        assert error.code() == Code.INVALID_ARGUMENT
        assert (error.details() or "").startswith("no Heketi URL for this volume: put 'resturl'")
    finally:
        stop_harness(harness)


def test_in_tree_secret_reference_without_a_key_explains_the_csi_secret_parameters(
    controller_heketi: HeketiTestServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    harness = start_harness(
        tmp_path_factory.mktemp("ctl-nokey"),
        controller_heketi,
        defaults=HeketiDefaults(url=controller_heketi.url),
    )
    parameters = {"secretName": "heketi", "secretNamespace": "storage"}
    try:
        request = harness.create_request("tcsi-nokey", parameters=parameters, secrets={})
        error = rpc_error(harness.controller.CreateVolume, request)
    finally:
        stop_harness(harness)
    assert error.code() == Code.INVALID_ARGUMENT
    assert error.details() == (
        "StorageClass parameters 'secretNamespace'/'secretName' are read only by the "
        "glusterfs-provisioner controller; with the CSI sidecars add "
        "csi.storage.k8s.io/provisioner-secret-name: heketi and "
        "csi.storage.k8s.io/provisioner-secret-namespace: storage to the class so the key "
        "arrives with the request"
    )


def test_url_and_key_from_the_secret_work_without_plugin_defaults(
    controller_heketi: HeketiTestServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    harness = start_harness(
        tmp_path_factory.mktemp("ctl-secret"), controller_heketi, defaults=HeketiDefaults()
    )
    secrets = {"resturl": controller_heketi.url, "key": ADMIN_KEY, "restuser": "admin"}
    try:
        volume = harness.create("tcsi-secret-only", secrets=secrets)
        request = csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id, secrets=secrets)
        harness.controller.DeleteVolume(request, timeout=30)
        assert all(v["id"] != volume.volume_id for v in controller_heketi.volumes())
    finally:
        stop_harness(harness)


def test_concurrent_create_of_one_name_is_aborted(csi_controller: ControllerHarness) -> None:
    name = unique_name("busy")
    heketi = csi_controller.heketi
    heketi.set_latency(500)
    results: list[Any] = []
    seen = len(heketi.requests)
    first = threading.Thread(target=lambda: results.append(csi_controller.create(name)))
    try:
        first.start()
        deadline = time.monotonic() + 10
        while not any(r.method == "POST" for r in heketi.requests[seen:]):
            assert time.monotonic() < deadline, "the first CreateVolume never reached Heketi"
            time.sleep(0.01)
        error = rpc_error(
            csi_controller.controller.CreateVolume, csi_controller.create_request(name)
        )
    finally:
        first.join(timeout=30)
        heketi.set_latency(0)
    assert error.code() == Code.ABORTED
    assert error.details() == (f"an operation on volume {name} is already in progress; retry later")
    assert csi_controller.create(name) == results[0]


def test_a_new_volume_costs_one_listing_of_heketi_volumes(
    csi_controller: ControllerHarness,
) -> None:
    before = len(csi_controller.heketi.requests)
    csi_controller.create(unique_name("one-listing"))
    sent = csi_controller.heketi.requests[before:]
    listings = [r for r in sent if (r.method, r.path) == ("GET", "/volumes")]
    creates = [r for r in sent if (r.method, r.path) == ("POST", "/volumes")]
    assert (len(listings), len(creates)) == (1, 1)


def test_a_repeated_create_finds_its_volume_without_a_second_create(
    csi_controller: ControllerHarness,
) -> None:
    name = unique_name("again")
    first = csi_controller.create(name)
    before = len(csi_controller.heketi.requests)
    assert csi_controller.create(name).volume_id == first.volume_id
    sent = csi_controller.heketi.requests[before:]
    assert not [r for r in sent if (r.method, r.path) == ("POST", "/volumes")]
