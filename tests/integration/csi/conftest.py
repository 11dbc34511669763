"""The node plugin as a subprocess on a unix socket, and real Gluster volumes for it."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from provisioner.csi import csi_pb2, csi_pb2_grpc, mounter
from tests.conftest import GlusterHost
from tests.integration.csi.controller_harness import (  # noqa: F401 - fixtures of test_controller_*
    controller_heketi,
    csi_controller,
)

#: Every Gluster volume these tests create starts with this.
VOLUME_PREFIX = "tnode-"
#: Deadline for the plugin to answer Probe after it was started.
STARTUP_DEADLINE = 20.0
#: Deadline for one gluster CLI call including retries on glusterd's global lock.
GLUSTER_DEADLINE = 60.0


@dataclass(frozen=True)
class Plugin:
    """A running node plugin."""

    process: subprocess.Popen[bytes]
    endpoint: str
    kubelet_dir: Path
    log_path: Path
    channel: grpc.Channel

    @property
    def node(self) -> csi_pb2_grpc.NodeStub:
        return csi_pb2_grpc.NodeStub(self.channel)

    @property
    def identity(self) -> csi_pb2_grpc.IdentityStub:
        return csi_pb2_grpc.IdentityStub(self.channel)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_plugin(base: Path, *, node_id: str = "test-node", extra: Sequence[str] = ()) -> Plugin:
    """Start `glusterfs-provisioner node` on a socket under `base`; wait for Probe."""
    kubelet_dir = base / "kubelet"
    kubelet_dir.mkdir(parents=True, exist_ok=True)
    endpoint = f"unix://{base}/plugin/csi.sock"
    log_path = base / "plugin.log"
    argv = [
        sys.executable, "-m", "provisioner", "--log-format", "json", "--log-level", "debug",
        "node", "--node-id", node_id, "--endpoint", endpoint,
        "--kubelet-dir", str(kubelet_dir), "--mount-log-dir", str(base / "mount-logs"),
        "--shutdown-grace", "20", *extra,
    ]  # fmt: skip
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT)
    channel = grpc.insecure_channel(endpoint)
    plugin = Plugin(process, endpoint, kubelet_dir, log_path, channel)
    _wait_ready(plugin)
    return plugin


def _wait_ready(plugin: Plugin) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE
    while time.monotonic() < deadline:
        if plugin.process.poll() is not None:
            raise AssertionError(f"node plugin exited early:\n{plugin.log()}")
        try:
            plugin.identity.Probe(csi_pb2.ProbeRequest(), timeout=1)
            return
        except grpc.RpcError:
            time.sleep(0.05)
    raise AssertionError(f"node plugin did not answer within {STARTUP_DEADLINE}s:\n{plugin.log()}")


def stop_plugin(plugin: Plugin) -> int:
    """SIGTERM the plugin and wait for it; return its exit code."""
    plugin.channel.close()
    if plugin.process.poll() is None:
        plugin.process.terminate()
    try:
        return plugin.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        plugin.process.kill()
        return plugin.process.wait(timeout=10)


def stage_and_publish(
    plugin: Plugin,
    volume_id: str,
    context: dict[str, str],
    *,
    staging: Path,
    target: Path,
    capability: csi_pb2.VolumeCapability,
) -> None:
    """NodeStageVolume then NodePublishVolume, as kubelet calls them for one pod."""
    plugin.node.NodeStageVolume(
        csi_pb2.NodeStageVolumeRequest(
            volume_id=volume_id,
            staging_target_path=str(staging),
            volume_capability=capability,
            volume_context=context,
        ),
        timeout=120,
    )
    plugin.node.NodePublishVolume(
        csi_pb2.NodePublishVolumeRequest(
            volume_id=volume_id,
            staging_target_path=str(staging),
            target_path=str(target),
            volume_capability=capability,
            volume_context=context,
        ),
        timeout=120,
    )


def unmount_everything_under(directory: Path) -> None:
    """Test cleanup: unmount every mount below `directory`, deepest and newest first."""
    mounts = mounter.SystemMounter().table().entries
    inside = [m for m in mounts if m.mount_point.startswith(f"{directory}/")]
    for mount in reversed(inside):
        subprocess.run(["umount", mount.mount_point], capture_output=True, timeout=30, check=False)


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plugin]:
    """A node plugin for the module, with everything it mounted cleaned up afterwards."""
    base = tmp_path_factory.mktemp("csi-node")
    running = start_plugin(base)
    try:
        yield running
    finally:
        stop_plugin(running)
        unmount_everything_under(running.kubelet_dir)


def gluster(*args: str) -> str:
    """Run a gluster CLI command; retry while glusterd's global lock is held elsewhere."""
    deadline = time.monotonic() + GLUSTER_DEADLINE
    while True:
        done = subprocess.run(
            ["gluster", "--mode=script", *args],
            capture_output=True, text=True, timeout=GLUSTER_DEADLINE, check=False,
        )  # fmt: skip
        output = (done.stdout + done.stderr).strip()
        if done.returncode == 0:
            return output
        busy = "Another transaction is in progress" in output or "Locking failed" in output
        if not busy or time.monotonic() > deadline:
            raise AssertionError(f"gluster {' '.join(args)} failed: {output}")
        time.sleep(0.2)


@dataclass(frozen=True)
class GlusterVolume:
    name: str
    volume_context: dict[str, str]


def create_volume(name: str, bricks: list[str], *, replica: int = 0) -> None:
    layout = ["replica", str(replica)] if replica else []
    gluster("volume", "create", name, *layout, *bricks, "force")
    gluster("volume", "start", name)


def delete_volume(name: str) -> None:
    """Stop and delete a test volume; quiet if it is already gone."""
    for action in (("volume", "stop", name, "force"), ("volume", "delete", name)):
        try:
            gluster(*action)
        except AssertionError as error:
            if "does not exist" not in str(error):
                raise


@pytest.fixture(scope="module")
def gluster_volumes(
    gluster_host: GlusterHost, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, GlusterVolume]]:
    """One single-brick volume and one replica-3 volume on directory bricks.

    The volume_context lists the mount address first and the brick host second,
    so the mount command carries a real backup-volfile-servers option.
    """
    host, mount_host = gluster_host.brick_host, gluster_host.mount_host
    bricks = tmp_path_factory.mktemp("tnode-bricks")
    layouts = {"single": 0, "replica3": 3}
    attempted: list[str] = []
    volumes: dict[str, GlusterVolume] = {}
    try:
        for label, replica in layouts.items():
            name = f"{VOLUME_PREFIX}{label}-{os.getpid()}"
            attempted.append(name)
            paths = [f"{host}:{bricks}/{label}-{n}" for n in range(max(replica, 1))]
            create_volume(name, paths, replica=replica)
            volumes[label] = GlusterVolume(
                name, {"servers": f"{mount_host},{host}", "volume": name}
            )
        yield volumes
    finally:
        for name in attempted:
            delete_volume(name)
