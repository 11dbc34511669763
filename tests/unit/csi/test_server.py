"""The gRPC server: socket handling, error mapping, call logging, locks, drain."""

import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import structlog

from provisioner import errors
from provisioner.csi import csi_pb2, csi_pb2_grpc, server
from provisioner.csi.identity import IdentityService
from provisioner.names import DRIVER_NAME


class ScriptedNode(csi_pb2_grpc.NodeServicer):
    """A node servicer whose NodeStageVolume raises what the test asks for."""

    def __init__(self) -> None:
        self.error: Exception | None = None
        self.entered = threading.Event()
        self.release = threading.Event()
        self.block = False

    def NodeStageVolume(self, request, context):  # type: ignore[no-untyped-def]
        if self.block:
            self.entered.set()
            self.release.wait(timeout=30)
        if self.error is not None:
            raise self.error
        return csi_pb2.NodeStageVolumeResponse()


@pytest.fixture
def endpoint(tmp_path: Path) -> str:
    return f"unix://{tmp_path}/plugin/csi.sock"


@pytest.fixture
def node() -> ScriptedNode:
    return ScriptedNode()


@pytest.fixture
def running(endpoint: str, node: ScriptedNode) -> Iterator[grpc.Server]:
    srv = server.serve(endpoint, identity=IdentityService(driver_name=DRIVER_NAME), node=node)
    yield srv
    node.release.set()
    srv.stop(None)


@pytest.fixture
def channel(endpoint: str, running: grpc.Server) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(endpoint) as chan:
        yield chan


def stage(channel: grpc.Channel, volume_id: str = "vol-1", **kwargs: object) -> object:
    stub = csi_pb2_grpc.NodeStub(channel)
    request = csi_pb2.NodeStageVolumeRequest(volume_id=volume_id, **kwargs)  # type: ignore[arg-type]
    return stub.NodeStageVolume(request, timeout=10)


def test_socket_is_created_with_mode_0660(endpoint: str, running: grpc.Server) -> None:
    mode = os.stat(server.socket_path(endpoint)).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660


def test_a_stale_socket_file_is_replaced(endpoint: str) -> None:
    path = server.socket_path(endpoint)
    path.parent.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    srv = server.serve(endpoint, identity=IdentityService(driver_name=DRIVER_NAME))
    try:
        with grpc.insecure_channel(endpoint) as chan:
            info = csi_pb2_grpc.IdentityStub(chan).GetPluginInfo(
                csi_pb2.GetPluginInfoRequest(), timeout=10
            )
        assert info.name == DRIVER_NAME
    finally:
        srv.stop(None)


def test_a_regular_file_at_the_socket_path_is_never_deleted(endpoint: str) -> None:
    path = server.socket_path(endpoint)
    path.parent.mkdir(parents=True)
    path.write_text("precious")
    with pytest.raises(errors.FailedPrecondition, match="is not a socket"):
        server.serve(endpoint, identity=IdentityService(driver_name=DRIVER_NAME))
    assert path.read_text() == "precious"


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("tcp://127.0.0.1:10000", "is not supported; use unix:///absolute/path/csi.sock"),
        ("unix://relative/csi.sock", "must name an absolute socket path"),
        ("unix:///csi/", "must name an absolute socket path"),
    ],
    ids=["tcp", "relative", "directory"],
)
def test_unsupported_endpoints_are_refused(endpoint: str, message: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=message):
        server.socket_path(endpoint)


def test_endpoint_forms_unix_colon_and_unix_slashes_name_the_same_path() -> None:
    assert server.socket_path("unix:/csi/csi.sock") == server.socket_path("unix:///csi/csi.sock")


def test_a_controller_servicer_requires_an_identity_that_advertises_it(endpoint: str) -> None:
    with pytest.raises(ValueError, match="controller_service"):
        server.serve(
            endpoint,
            identity=IdentityService(driver_name=DRIVER_NAME),
            controller=csi_pb2_grpc.ControllerServicer(),
        )


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InvalidArgument("bad"), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.NotFound("bad"), grpc.StatusCode.NOT_FOUND),
        (errors.AlreadyExists("bad"), grpc.StatusCode.ALREADY_EXISTS),
        (errors.OutOfRange("bad"), grpc.StatusCode.OUT_OF_RANGE),
        (errors.ResourceExhausted("bad"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.PermissionDenied("bad"), grpc.StatusCode.PERMISSION_DENIED),
        (errors.Aborted("bad"), grpc.StatusCode.ABORTED),
        (errors.Unavailable("bad"), grpc.StatusCode.UNAVAILABLE),
        (errors.FailedPrecondition("bad"), grpc.StatusCode.FAILED_PRECONDITION),
        (errors.DeadlineExceeded("bad"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (errors.Internal("bad"), grpc.StatusCode.INTERNAL),
        (errors.ProvisionerError("bad"), grpc.StatusCode.INTERNAL),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else value.name,
)
def test_domain_errors_become_their_grpc_codes_with_the_message(
    channel: grpc.Channel, node: ScriptedNode, error: Exception, code: grpc.StatusCode
) -> None:
    node.error = error
    with pytest.raises(grpc.RpcError) as raised:
        stage(channel)
    assert (raised.value.code(), raised.value.details()) == (code, "bad")


def test_an_unexpected_exception_is_internal_without_its_details(
    channel: grpc.Channel, node: ScriptedNode
) -> None:
    node.error = KeyError("secret-looking-detail")
    with pytest.raises(grpc.RpcError) as raised:
        stage(channel)
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert raised.value.details() == "internal error in NodeStageVolume: KeyError"


def test_a_method_the_plugin_lacks_is_unimplemented(channel: grpc.Channel) -> None:
    stub = csi_pb2_grpc.NodeStub(channel)
    with pytest.raises(grpc.RpcError) as raised:
        stub.NodeExpandVolume(csi_pb2.NodeExpandVolumeRequest(volume_id="v"), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_each_call_is_logged_once_with_method_volume_and_code_but_no_secrets(
    channel: grpc.Channel, node: ScriptedNode
) -> None:
    node.error = errors.NotFound("gone")
    with structlog.testing.capture_logs() as logs, pytest.raises(grpc.RpcError):
        stage(
            channel,
            volume_id="vol-7",
            secrets={"key": "s3cr3t"},
            volume_context={"servers": "h1", "volume": "v"},
        )
    calls = [entry for entry in logs if entry.get("method") == "NodeStageVolume"]
    assert len(calls) == 1
    entry = calls[0]
    assert (entry["volume_id"], entry["code"], entry["error"]) == ("vol-7", "NOT_FOUND", "gone")
    assert "duration_ms" in entry
    assert "s3cr3t" not in repr(logs) and "volume_context" not in repr(logs)


def test_a_second_holder_of_a_volume_lock_is_aborted() -> None:
    locks = server.VolumeLocks()
    with locks.hold("vol-1"):
        busy = pytest.raises(errors.Aborted, match="vol-1 is already in progress")
        with busy, locks.hold("vol-1"):
            pass
        with locks.hold("vol-2"):  # another volume is not blocked
            pass
    with locks.hold("vol-1"):  # released at the end of the block
        pass


def wait_until_refusing_new_calls(endpoint: str, *, deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            with grpc.insecure_channel(endpoint) as probe:
                csi_pb2_grpc.IdentityStub(probe).Probe(csi_pb2.ProbeRequest(), timeout=1)
        except grpc.RpcError:
            return
    raise AssertionError("the server kept accepting new calls while stopping")


def test_stop_lets_an_in_flight_call_finish_and_removes_the_socket(
    endpoint: str, node: ScriptedNode
) -> None:
    srv = server.serve(endpoint, identity=IdentityService(driver_name=DRIVER_NAME), node=node)
    node.block = True
    with grpc.insecure_channel(endpoint) as chan, futures.ThreadPoolExecutor(2) as pool:
        in_flight = pool.submit(stage, chan)
        assert node.entered.wait(timeout=10)
        stopping = pool.submit(server.stop, srv, endpoint=endpoint, grace=30)
        wait_until_refusing_new_calls(endpoint)
        node.release.set()
        in_flight.result(timeout=30)
        stopping.result(timeout=30)
    assert not server.socket_path(endpoint).exists()


def test_liveness_sees_a_plugin_that_answers_probe(endpoint: str, running: grpc.Server) -> None:
    assert server.answers_probe(endpoint)


def test_liveness_sees_a_plugin_that_answers_not_ready_as_alive(endpoint: str) -> None:
    """Not ready (no mount.glusterfs) is Probe's answer: a restart would not cure it."""
    identity = IdentityService(driver_name=DRIVER_NAME, readiness_checks=[lambda: "no client"])
    srv = server.serve(endpoint, identity=identity)
    try:
        assert server.answers_probe(endpoint)
    finally:
        srv.stop(None)


def test_liveness_fails_when_nothing_answers_on_the_socket(endpoint: str) -> None:
    assert not server.answers_probe(endpoint, timeout=0.5)
