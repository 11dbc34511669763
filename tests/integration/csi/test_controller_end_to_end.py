"""End to end with real GlusterFS: `node --controller-service` as one process, called as
external-provisioner, kubelet and external-resizer call it.

CreateVolume (Heketi test server in `gluster` mode: a real volume on the local
glusterd) → NodeStageVolume → NodePublishVolume → write → unpublish → unstage →
ControllerExpandVolume → DeleteVolume.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from provisioner.csi import csi_pb2, csi_pb2_grpc
from testbed.heketi.server import HeketiTestServer
from tests.conftest import GlusterHost
from tests.integration.csi.conftest import (
    STARTUP_DEADLINE,
    Plugin,
    gluster,
    stage_and_publish,
    stop_plugin,
    unmount_everything_under,
)
from tests.integration.csi.controller_harness import ADMIN_KEY, GIB, NAME_PREFIX, capability

pytestmark = pytest.mark.gluster


@dataclass(frozen=True)
class Setup:
    plugin: Plugin
    heketi: HeketiTestServer
    metrics_port: int

    @property
    def controller(self) -> csi_pb2_grpc.ControllerStub:
        return csi_pb2_grpc.ControllerStub(self.plugin.channel)  # type: ignore[no-untyped-call]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_plugin_with_controller(base: Path, heketi_url: str, metrics_port: int) -> Plugin:
    """`glusterfs-provisioner node --controller-service` as a process; wait for Probe."""
    kubelet_dir = base / "kubelet"
    kubelet_dir.mkdir(parents=True)
    endpoint = f"unix://{base}/plugin/csi.sock"
    log_path = base / "plugin.log"
    argv = [
        sys.executable, "-m", "provisioner", "--log-format", "json",
        "node", "--node-id", "e2e-node", "--endpoint", endpoint,
        "--kubelet-dir", str(kubelet_dir), "--mount-log-dir", str(base / "mount-logs"),
        "--shutdown-grace", "20", "--controller-service", "--heketi-url", heketi_url,
        "--metrics-address", f"127.0.0.1:{metrics_port}",
    ]  # fmt: skip
    env = {**os.environ, "HEKETI_KEY": ADMIN_KEY}
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    plugin = Plugin(process, endpoint, kubelet_dir, log_path, grpc.insecure_channel(endpoint))
    deadline = time.monotonic() + STARTUP_DEADLINE
    while True:
        assert process.poll() is None, f"plugin exited early:\n{plugin.log()}"
        try:
            plugin.identity.Probe(csi_pb2.ProbeRequest(), timeout=1)
            return plugin
        except grpc.RpcError:
            assert time.monotonic() < deadline, f"plugin never answered:\n{plugin.log()}"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def setup(gluster_host: GlusterHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("csi-e2e")
    with HeketiTestServer(
        admin_key=ADMIN_KEY, mode="gluster", bricks_dir=str(base / "bricks")
    ) as heketi:
        port = free_port()
        plugin = start_plugin_with_controller(base, heketi.url, port)
        try:
            yield Setup(plugin, heketi, port)
        finally:
            stop_plugin(plugin)
            unmount_everything_under(plugin.kubelet_dir)
            for leftover in heketi.volumes():  # a failed test must not leave volumes behind
                gluster("volume", "stop", leftover["name"], "force")
                gluster("volume", "delete", leftover["name"])


def test_plugin_started_with_the_flag_advertises_the_controller(setup: Setup) -> None:
    plugin_caps = setup.plugin.identity.GetPluginCapabilities(
        csi_pb2.GetPluginCapabilitiesRequest(), timeout=10
    )
    services = {c.service.type for c in plugin_caps.capabilities if c.HasField("service")}
    assert services == {csi_pb2.PluginCapability.Service.CONTROLLER_SERVICE}
    rpcs = setup.controller.ControllerGetCapabilities(
        csi_pb2.ControllerGetCapabilitiesRequest(), timeout=10
    )
    assert len(rpcs.capabilities) == 6


def test_volume_lifecycle_through_real_glusterfs(setup: Setup) -> None:
    name = f"{NAME_PREFIX}e2e-{os.getpid()}"
    secrets = {"key": ADMIN_KEY}
    created = setup.controller.CreateVolume(
        csi_pb2.CreateVolumeRequest(
            name=name,
            capacity_range=csi_pb2.CapacityRange(required_bytes=GIB),
            volume_capabilities=[capability()],
            parameters={"volumetype": "none"},
            secrets=secrets,
        ),
        timeout=120,
    ).volume
    assert created.volume_context["volume"] == name
    assert f"Volume Name: {name}" in gluster("volume", "info", name)

    staging, target = mount_and_write(setup.plugin, created)
    assert not os.path.ismount(staging) and not os.path.ismount(target)

    expanded = setup.controller.ControllerExpandVolume(
        csi_pb2.ControllerExpandVolumeRequest(
            volume_id=created.volume_id,
            capacity_range=csi_pb2.CapacityRange(required_bytes=2 * GIB),
            secrets=secrets,
        ),
        timeout=120,
    )
    assert (expanded.capacity_bytes, expanded.node_expansion_required) == (2 * GIB, False)
    assert "Number of Bricks: 2" in gluster("volume", "info", name)

    delete = csi_pb2.DeleteVolumeRequest(volume_id=created.volume_id, secrets=secrets)
    setup.controller.DeleteVolume(delete, timeout=120)
    setup.controller.DeleteVolume(delete, timeout=120)
    assert name not in gluster("volume", "list").split()


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def test_the_metrics_address_counts_each_rpc_and_each_heketi_route(setup: Setup) -> None:
    gone = csi_pb2.DeleteVolumeRequest(volume_id="0" * 32, secrets={"key": ADMIN_KEY})
    setup.controller.DeleteVolume(gone, timeout=60)  # Heketi 404: already gone, OK
    with pytest.raises(grpc.RpcError) as refused:
        setup.controller.CreateVolume(csi_pb2.CreateVolumeRequest(), timeout=60)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status, text = scrape(setup.metrics_port)
    assert status == 200
    for line in (
        'glusterfs_provisioner_csi_requests_total{code="OK",method="DeleteVolume"}',
        'glusterfs_provisioner_csi_requests_total{code="INVALID_ARGUMENT",method="CreateVolume"}',
        'glusterfs_provisioner_csi_errors_total{code="INVALID_ARGUMENT",method="CreateVolume"}',
        'glusterfs_provisioner_csi_request_duration_seconds_count{method="DeleteVolume"}',
        'glusterfs_provisioner_heketi_route_responses_total{route="DELETE /volumes/{id}",'
        'status="404"}',
        'glusterfs_provisioner_heketi_route_duration_seconds_count{route="DELETE /volumes/{id}"}',
        'glusterfs_provisioner_heketi_responses_total{method="DELETE",status="404"}',
    ):
        assert line in text, line
    assert 'glusterfs_provisioner_csi_errors_total{code="OK"' not in text
    assert scrape(setup.metrics_port, "/healthz") == (200, "ok\n")
    assert scrape(setup.metrics_port, "/nothing")[0] == 404


def mount_and_write(plugin: Plugin, volume: csi_pb2.Volume) -> tuple[Path, Path]:
    """Stage, publish, write and read back, unpublish, unstage; return the two paths."""
    staging = plugin.kubelet_dir / "plugins" / "e2e" / "globalmount"
    target = plugin.kubelet_dir / "pods" / "pod-1" / "mount"
    staging.parent.mkdir(parents=True)
    target.parent.mkdir(parents=True)
    stage_and_publish(
        plugin,
        volume.volume_id,
        dict(volume.volume_context),
        staging=staging,
        target=target,
        capability=capability(),
    )
    (target / "hello.txt").write_text("written through the CSI controller volume\n")
    assert (staging / "hello.txt").read_text() == "written through the CSI controller volume\n"
    plugin.node.NodeUnpublishVolume(
        csi_pb2.NodeUnpublishVolumeRequest(volume_id=volume.volume_id, target_path=str(target)),
        timeout=90,
    )
    plugin.node.NodeUnstageVolume(
        csi_pb2.NodeUnstageVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=str(staging)
        ),
        timeout=90,
    )
    return staging, target
