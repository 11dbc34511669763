"""The CSI Controller service on a real unix socket, against the Heketi test server.

The servicer runs in-process behind the real gRPC server (`csi.server.serve`, with
its error-mapping interceptor); tests call it through generated stubs exactly as
external-provisioner does. The Heketi client is the real one over HTTP, with
short retry budgets so outage tests stay fast.
"""

import dataclasses
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from provisioner.csi import csi_pb2, csi_pb2_grpc, server
from provisioner.csi.controller import ControllerService
from provisioner.csi.heketi_access import HeketiDefaults
from provisioner.csi.identity import IdentityService
from provisioner.heketi.client import HeketiClient
from provisioner.heketi.config import HeketiConfig
from provisioner.heketi.registry import HeketiClients
from provisioner.volumes import VolumeService
from testbed.heketi.server import HeketiTestServer

ADMIN_KEY = "admin-secret"
#: Every volume name these tests use starts with this.
NAME_PREFIX = "tcsi-"
GIB = 1 << 30
#: Retry and poll settings that keep failure paths to about a second.
FAST: Mapping[str, Any] = {
    "retry_attempts": 2,
    "retry_base": 0.05,
    "retry_cap": 0.1,
    "retry_budget": 1.0,
    "request_timeout": 5.0,
    "connect_timeout": 1.0,
    "operation_deadline": 30.0,
    "poll_initial": 0.01,
    "poll_max": 0.2,
}

Mode = csi_pb2.VolumeCapability.AccessMode.Mode
_names = itertools.count()


#: The test process's Heketi clients (as the node plugin owns one for its process).
_CLIENTS = HeketiClients()


def fast_client(config: HeketiConfig) -> HeketiClient:
    return _CLIENTS(dataclasses.replace(config, **FAST))


def unique_name(label: str) -> str:
    return f"{NAME_PREFIX}{label}-{next(_names)}"


def capability(
    mode: int = Mode.MULTI_NODE_MULTI_WRITER, *, block: bool = False, fs_type: str = ""
) -> csi_pb2.VolumeCapability:
    access = csi_pb2.VolumeCapability.AccessMode(mode=mode)  # type: ignore[arg-type]
    if block:
        return csi_pb2.VolumeCapability(
            block=csi_pb2.VolumeCapability.BlockVolume(), access_mode=access
        )
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(fs_type=fs_type), access_mode=access
    )


def capacity(required: int = 0, limit: int = 0) -> csi_pb2.CapacityRange:
    return csi_pb2.CapacityRange(required_bytes=required, limit_bytes=limit)


@dataclass
class ControllerHarness:
    """A running Controller service and the Heketi behind it."""

    heketi: HeketiTestServer
    endpoint: str
    grpc_server: grpc.Server
    channel: grpc.Channel
    secrets: dict[str, str]

    @property
    def controller(self) -> csi_pb2_grpc.ControllerStub:
        return csi_pb2_grpc.ControllerStub(self.channel)  # type: ignore[no-untyped-call]

    @property
    def identity(self) -> csi_pb2_grpc.IdentityStub:
        return csi_pb2_grpc.IdentityStub(self.channel)  # type: ignore[no-untyped-call]

    def create_request(
        self,
        name: str,
        *,
        capacity_range: csi_pb2.CapacityRange | None = None,
        parameters: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        capabilities: list[csi_pb2.VolumeCapability] | None = None,
    ) -> csi_pb2.CreateVolumeRequest:
        request = csi_pb2.CreateVolumeRequest(
            name=name,
            volume_capabilities=capabilities if capabilities is not None else [capability()],
            parameters=dict(parameters or {}),
            secrets=dict(self.secrets if secrets is None else secrets),
        )
        if capacity_range is not None:
            request.capacity_range.CopyFrom(capacity_range)
        return request

    def create(self, name: str, **kwargs: Any) -> csi_pb2.Volume:
        response = self.controller.CreateVolume(self.create_request(name, **kwargs), timeout=30)
        volume: csi_pb2.Volume = response.volume
        return volume

    def delete(self, volume_id: str) -> None:
        request = csi_pb2.DeleteVolumeRequest(volume_id=volume_id, secrets=self.secrets)
        self.controller.DeleteVolume(request, timeout=30)


def start_harness(
    base: Path, heketi: HeketiTestServer, *, defaults: HeketiDefaults | None = None
) -> ControllerHarness:
    """Serve Identity + Controller on `base`/csi.sock."""
    endpoint = f"unix://{base}/csi.sock"
    if defaults is None:
        defaults = HeketiDefaults(url=heketi.url, key=ADMIN_KEY)
    service = ControllerService(volumes=VolumeService(clients=fast_client), heketi=defaults)
    identity = IdentityService(driver_name="glusterfs.csi.heketi.io", controller_service=True)
    grpc_server = server.serve(endpoint, identity=identity, controller=service, max_workers=8)
    channel = grpc.insecure_channel(endpoint)
    grpc.channel_ready_future(channel).result(timeout=10)
    return ControllerHarness(heketi, endpoint, grpc_server, channel, {"key": ADMIN_KEY})


def stop_harness(harness: ControllerHarness) -> None:
    harness.channel.close()
    server.stop(harness.grpc_server, endpoint=harness.endpoint, grace=1.0)


@pytest.fixture(scope="session")
def controller_heketi() -> Iterator[HeketiTestServer]:
    """A memory-mode Heketi (3 nodes) shared by the controller tests."""
    with HeketiTestServer(admin_key=ADMIN_KEY) as heketi:
        yield heketi


@pytest.fixture(scope="session")
def csi_controller(
    controller_heketi: HeketiTestServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControllerHarness]:
    """The Controller service with --heketi-url pointing at `controller_heketi`."""
    harness = start_harness(tmp_path_factory.mktemp("csi-ctl"), controller_heketi)
    try:
        yield harness
    finally:
        stop_harness(harness)


def rpc_error(call: Any, request: Any) -> grpc.RpcError:
    """The RpcError a call fails with (fails the test if it succeeds)."""
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=30)
    return caught.value
