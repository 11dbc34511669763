"""Scenario `node`: the CSI node plugin staging and publishing a real Gluster volume."""

import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import grpc

from bench import gluster, procs
from bench.hosts import BenchError
from provisioner.core import annotations
from provisioner.csi.mount_table import parse_mountinfo
from testbed.processes import stop_process

#: Pods that publish the one staged volume.
PODS = 20
#: Seconds one CSI call may take (a first FUSE mount takes about a second).
CALL_TIMEOUT = 60.0
#: Seconds the plugin may take to answer on its socket.
START_TIMEOUT = 30.0
#: Seconds a SIGTERM may take to drain.
STOP_TIMEOUT = 20.0


def _csi() -> tuple[Any, Any]:
    from provisioner.csi import csi_pb2, csi_pb2_grpc

    return csi_pb2, csi_pb2_grpc


class NodePlugin:
    """`glusterfs-provisioner node` on a unix socket under `workdir`."""

    def __init__(self, *, workdir: Path) -> None:
        self.socket = workdir / "csi.sock"
        self.kubelet_dir = workdir / "kubelet"
        self.log_path = workdir / "node.log"
        #: GlusterFS client logs stay in the work dir, not in /var/log/glusterfs/csi.
        self.mount_logs = workdir / "mount-logs"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self.kubelet_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        argv = [
            sys.executable, "-m", "provisioner", "--log-format", "json", "node",
            "--endpoint", f"unix://{self.socket}", "--node-id", "bench-node",
            "--kubelet-dir", str(self.kubelet_dir),
            "--mount-log-dir", str(self.mount_logs),
        ]  # fmt: skip
        self._process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        if self._process is None:
            raise BenchError("node plugin not started")
        return self._process.pid

    def stop(self) -> None:
        process, self._process = self._process, None
        stop_process(process, timeout=STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()

    def log_tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _timed(call: Callable[..., object], *args: object) -> float:
    """Milliseconds `call(*args)` took."""
    started = time.perf_counter()
    call(*args)
    return 1000 * (time.perf_counter() - started)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Kubelet:
    """Calls the node plugin the way kubelet does for one volume and many pods."""

    def __init__(self, channel: grpc.Channel, *, kubelet_dir: Path, volume: str) -> None:
        self.pb, stubs = _csi()
        self.node = stubs.NodeStub(channel)
        self.volume_id = uuid.uuid4().hex
        self.volume = volume
        driver_dir = kubelet_dir / "plugins" / "kubernetes.io" / "csi" / annotations.DRIVER_NAME
        self.staging = driver_dir / self.volume_id / "globalmount"
        self.pods_dir = kubelet_dir / "pods"
        self.pv_name = f"pvc-{uuid.uuid4()}"

    def capability(self) -> Any:
        cap = self.pb.VolumeCapability
        return cap(
            mount=cap.MountVolume(),
            access_mode=cap.AccessMode(mode=cap.AccessMode.MULTI_NODE_MULTI_WRITER),
        )

    def stage(self) -> None:
        self.staging.mkdir(parents=True, exist_ok=True)  # kubelet creates the staging dir
        request = self.pb.NodeStageVolumeRequest(
            volume_id=self.volume_id, staging_target_path=str(self.staging),
            volume_capability=self.capability(),
            volume_context={
                annotations.CTX_SERVERS: "127.0.0.1", annotations.CTX_VOLUME: self.volume
            },
        )  # fmt: skip
        self.node.NodeStageVolume(request, timeout=CALL_TIMEOUT)

    def target(self, pod: int) -> Path:
        pod_uid = uuid.uuid5(uuid.NAMESPACE_URL, f"{self.volume_id}/{pod}")
        return (
            self.pods_dir / str(pod_uid) / "volumes" / "kubernetes.io~csi" / self.pv_name / "mount"
        )

    def publish(self, pod: int) -> None:
        target = self.target(pod)
        target.parent.mkdir(parents=True, exist_ok=True)  # kubelet creates the parent
        request = self.pb.NodePublishVolumeRequest(
            volume_id=self.volume_id, staging_target_path=str(self.staging),
            target_path=str(target), volume_capability=self.capability(),
            volume_context={
                annotations.CTX_SERVERS: "127.0.0.1", annotations.CTX_VOLUME: self.volume
            },
        )  # fmt: skip
        self.node.NodePublishVolume(request, timeout=CALL_TIMEOUT)

    def unpublish(self, pod: int) -> None:
        request = self.pb.NodeUnpublishVolumeRequest(
            volume_id=self.volume_id, target_path=str(self.target(pod))
        )
        self.node.NodeUnpublishVolume(request, timeout=CALL_TIMEOUT)

    def unstage(self) -> None:
        request = self.pb.NodeUnstageVolumeRequest(
            volume_id=self.volume_id, staging_target_path=str(self.staging)
        )
        self.node.NodeUnstageVolume(request, timeout=CALL_TIMEOUT)


def _check_shared(kubelet: Kubelet, pods: int) -> None:
    """Data written through the first pod's mount is seen through the last one's."""
    marker = f"bench-{uuid.uuid4().hex}"
    (kubelet.target(0) / "bench-marker").write_text(marker)
    seen = (kubelet.target(pods - 1) / "bench-marker").read_text()
    os.unlink(kubelet.target(0) / "bench-marker")
    if seen != marker:
        raise BenchError("published mounts do not share the volume's data")


def _exercise(kubelet: Kubelet, volume: str, pods: int) -> dict[str, Any]:
    stage_ms = _timed(kubelet.stage)
    publish_ms = [_timed(kubelet.publish, pod) for pod in range(pods)]
    clients = gluster.fuse_clients(volume)
    _check_shared(kubelet, pods)
    unpublish_ms = [_timed(kubelet.unpublish, pod) for pod in range(pods)]
    unstage_ms = _timed(kubelet.unstage)
    return {
        "stage_ms": round(stage_ms, 1),
        "publish_p50_ms": round(statistics.median(publish_ms), 2),
        "publish_p95_ms": round(_percentile(publish_ms, 0.95), 2),
        "publish_max_ms": round(max(publish_ms), 2),
        "fuse_clients": clients,
        "unpublish_p50_ms": round(statistics.median(unpublish_ms), 2),
        "unstage_ms": round(unstage_ms, 1),
        "fuse_clients_after_unstage": gluster.fuse_clients(volume),
    }


def run(*, workdir: Path, pods: int = PODS) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    plugin = NodePlugin(workdir=workdir)
    with gluster.Volume() as volume:
        plugin.start()
        try:
            with grpc.insecure_channel(f"unix://{plugin.socket}") as channel:
                try:
                    grpc.channel_ready_future(channel).result(timeout=START_TIMEOUT)
                except grpc.FutureTimeoutError as err:
                    raise BenchError(
                        f"node plugin not serving within {START_TIMEOUT:.0f} s:\n"
                        + plugin.log_tail()
                    ) from err
                kubelet = Kubelet(channel, kubelet_dir=plugin.kubelet_dir, volume=volume.name)
                result = _exercise(kubelet, volume.name, pods)
                result.update(
                    pods=pods, volume=volume.name, plugin_rss_mb=round(procs.rss_mb(plugin.pid), 1)
                )
        finally:
            plugin.stop()
            _unmount_leftovers(plugin.kubelet_dir)
    return result


def _unmount_leftovers(kubelet_dir: Path) -> None:
    """Unmount anything a failed run left under the benchmark's kubelet dir."""
    prefix = str(kubelet_dir.resolve()) + "/"
    table = parse_mountinfo(Path("/proc/self/mountinfo").read_bytes())  # not always UTF-8
    mountpoints = [m.mount_point for m in table.entries if m.mount_point.startswith(prefix)]
    for mountpoint in sorted(mountpoints, key=len, reverse=True):
        subprocess.run(["umount", mountpoint], capture_output=True, timeout=30, check=False)
