"""Real GlusterFS mounts through the node plugin, called over gRPC as kubelet calls it."""

import contextlib
import errno
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from provisioner.csi import csi_pb2, mounter
from tests.integration.csi.conftest import GlusterVolume, Plugin

pytestmark = pytest.mark.gluster

Mode = csi_pb2.VolumeCapability.AccessMode.Mode
WRITER = Mode.MULTI_NODE_MULTI_WRITER


def capability(mode: int = WRITER, flags: tuple[str, ...] = ()) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(mount_flags=list(flags)),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode),
    )


class Kubelet:
    """Calls the plugin the way kubelet does, every call twice (idempotency)."""

    def __init__(self, plugin: Plugin, volume: GlusterVolume, name: str) -> None:
        self.plugin = plugin
        self.volume = volume
        self.volume_id = f"id-{volume.name}-{name}"
        root = plugin.kubelet_dir / name
        self.staging = root / "plugins" / "globalmount"
        self.pods = root / "pods"
        self.staging.parent.mkdir(parents=True)
        self.pods.mkdir(parents=True)

    def twice(self, method: str, request: Any) -> Any:
        call: Callable[..., Any] = getattr(self.plugin.node, method)
        call(request, timeout=90)
        return call(request, timeout=90)

    def stage(self, *, mode: int = WRITER, flags: tuple[str, ...] = ()) -> None:
        self.twice("NodeStageVolume", self.stage_request(mode=mode, flags=flags))

    def stage_request(
        self, *, mode: int = WRITER, flags: tuple[str, ...] = ()
    ) -> csi_pb2.NodeStageVolumeRequest:
        return csi_pb2.NodeStageVolumeRequest(
            volume_id=self.volume_id,
            staging_target_path=str(self.staging),
            volume_capability=capability(mode, flags),
            volume_context=self.volume.volume_context,
        )

    def publish(self, pod: str, *, readonly: bool = False, mode: int = WRITER) -> Path:
        target = self.pods / pod / "mount"
        self.twice("NodePublishVolume", self.publish_request(target, readonly=readonly, mode=mode))
        return target

    def publish_request(
        self, target: Path, *, readonly: bool = False, mode: int = WRITER
    ) -> csi_pb2.NodePublishVolumeRequest:
        target.parent.mkdir(exist_ok=True)
        return csi_pb2.NodePublishVolumeRequest(
            volume_id=self.volume_id,
            staging_target_path=str(self.staging),
            target_path=str(target),
            volume_capability=capability(mode),
            readonly=readonly,
            volume_context=self.volume.volume_context,
        )

    def unpublish(self, target: Path) -> None:
        request = csi_pb2.NodeUnpublishVolumeRequest(
            volume_id=self.volume_id, target_path=str(target)
        )
        self.twice("NodeUnpublishVolume", request)

    def unstage(self) -> None:
        request = csi_pb2.NodeUnstageVolumeRequest(
            volume_id=self.volume_id, staging_target_path=str(self.staging)
        )
        self.twice("NodeUnstageVolume", request)

    def stats(self, path: Path) -> csi_pb2.NodeGetVolumeStatsResponse:
        request = csi_pb2.NodeGetVolumeStatsRequest(volume_id=self.volume_id, volume_path=str(path))
        response: csi_pb2.NodeGetVolumeStatsResponse = self.plugin.node.NodeGetVolumeStats(
            request, timeout=30
        )
        return response


def mounts_at(path: Path) -> list[mounter.MountInfo]:
    return [m for m in mounter.SystemMounter().table().entries if m.mount_point == str(path)]


def fuse_client_pids(mount_point: Path) -> list[int]:
    """Pids of glusterfs FUSE clients serving `mount_point` (its last argument)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"glusterfs") and argv[-1] == os.fsencode(mount_point):
            pids.append(int(entry.name))
    return pids


def client_argv(mount_point: Path) -> list[str]:
    (pid,) = fuse_client_pids(mount_point)
    raw = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    return [os.fsdecode(arg) for arg in raw]


@pytest.fixture(params=["single", "replica3"])
def volume(
    request: pytest.FixtureRequest, gluster_volumes: dict[str, GlusterVolume]
) -> GlusterVolume:
    return gluster_volumes[request.param]


@pytest.fixture
def kubelet(
    request: pytest.FixtureRequest, volume: GlusterVolume, plugin: Plugin
) -> Iterator[Kubelet]:
    # `volume` before `plugin`: the plugin (and its mounts) go before the volumes do.
    name = request.node.name.replace("[", "-").replace("]", "")
    yield Kubelet(plugin, volume, name)


def test_kubelet_lifecycle_shares_data_between_targets_and_keeps_it_across_remounts(
    kubelet: Kubelet,
) -> None:
    kubelet.stage()
    (staged,) = mounts_at(kubelet.staging)
    assert (staged.fs_type, staged.source.split(":/")[1]) == ("fuse.glusterfs", kubelet.volume.name)

    writer, reader = kubelet.publish("pod-a"), kubelet.publish("pod-b")
    (writer / "hello.txt").write_text("written through pod-a")
    assert (reader / "hello.txt").read_text() == "written through pod-a"

    read_only = kubelet.publish("pod-c", readonly=True)
    assert (read_only / "hello.txt").read_text() == "written through pod-a"
    with pytest.raises(OSError) as refused:
        (read_only / "new.txt").write_text("must fail")
    assert refused.value.errno == errno.EROFS

    for target in (writer, reader, read_only):
        kubelet.unpublish(target)
        assert not target.exists() and mounts_at(target) == []
    kubelet.unstage()
    assert not kubelet.staging.exists() and mounts_at(kubelet.staging) == []

    kubelet.staging.mkdir()
    kubelet.stage()
    again = kubelet.publish("pod-d")
    assert (again / "hello.txt").read_text() == "written through pod-a"
    kubelet.unpublish(again)
    kubelet.unstage()


def test_stage_passes_backup_volfile_servers_and_a_per_volume_log_file(
    kubelet: Kubelet,
) -> None:
    kubelet.stage(flags=("noatime", "log-level=WARNING"))
    argv = client_argv(kubelet.staging)
    servers = kubelet.volume.volume_context["servers"].split(",")
    assert [f"--volfile-server={server}" for server in servers] == [
        arg for arg in argv if arg.startswith("--volfile-server=")
    ]
    log_dir = kubelet.plugin.kubelet_dir.parent / "mount-logs"
    assert f"--log-file={log_dir}/{kubelet.volume.name}.log" in argv
    assert "--log-level=WARNING" in argv
    kubelet.unstage()


def test_read_only_access_mode_stages_read_only(kubelet: Kubelet) -> None:
    kubelet.stage(mode=Mode.MULTI_NODE_READER_ONLY)
    (staged,) = mounts_at(kubelet.staging)
    assert staged.read_only
    target = kubelet.publish("pod-ro")
    with pytest.raises(OSError) as refused:
        (target / "x").write_text("no")
    assert refused.value.errno == errno.EROFS
    kubelet.unpublish(target)
    kubelet.unstage()


def test_volume_stats_report_bytes_and_inodes_of_a_healthy_mount(kubelet: Kubelet) -> None:
    kubelet.stage()
    stats = kubelet.stats(kubelet.staging)
    units = {usage.unit: usage for usage in stats.usage}
    expected = os.statvfs(kubelet.staging)
    assert units[csi_pb2.VolumeUsage.BYTES].total == expected.f_blocks * expected.f_frsize
    assert units[csi_pb2.VolumeUsage.INODES].total == expected.f_files
    assert not stats.volume_condition.abnormal
    kubelet.unstage()


@pytest.mark.parametrize("volume", ["single"], indirect=True)
def test_a_killed_fuse_client_is_reported_abnormal_and_repaired_by_stage_and_publish(
    kubelet: Kubelet,
) -> None:
    kubelet.stage()
    target = kubelet.publish("pod-a")
    (target / "kept.txt").write_text("before the crash")
    for pid in fuse_client_pids(kubelet.staging):
        os.kill(pid, signal.SIGKILL)

    for path in (kubelet.staging, target):
        condition = kubelet.stats(path).volume_condition
        assert condition.abnormal and "stale" in condition.message

    kubelet.stage()
    assert not kubelet.stats(kubelet.staging).volume_condition.abnormal
    kubelet.publish("pod-a")
    assert (target / "kept.txt").read_text() == "before the crash"
    assert len(mounts_at(kubelet.staging)) == 1 and len(mounts_at(target)) == 1
    kubelet.unpublish(target)
    kubelet.unstage()


@pytest.mark.parametrize("volume", ["single"], indirect=True)
def test_simultaneous_stages_of_one_volume_never_mount_it_twice(kubelet: Kubelet) -> None:
    request = kubelet.stage_request()
    codes = []
    with futures.ThreadPoolExecutor(max_workers=2) as pool:
        calls = [pool.submit(kubelet.plugin.node.NodeStageVolume, request, timeout=90)
                 for _ in range(2)]  # fmt: skip
        for call in calls:
            try:
                call.result()
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                codes.append(error.code())
    assert grpc.StatusCode.OK in codes
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.ABORTED}
    assert len(mounts_at(kubelet.staging)) == 1
    kubelet.unstage()


@pytest.mark.parametrize("volume", ["single"], indirect=True)
def test_staging_another_volume_over_a_staged_path_is_already_exists(
    kubelet: Kubelet, gluster_volumes: dict[str, GlusterVolume]
) -> None:
    kubelet.stage()
    other = gluster_volumes["replica3"]
    request = kubelet.stage_request()
    request.volume_id = "id-other"
    request.volume_context.clear()
    request.volume_context.update(other.volume_context)
    with pytest.raises(grpc.RpcError) as raised:
        kubelet.plugin.node.NodeStageVolume(request, timeout=90)
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert raised.value.details().startswith(f"staging_target_path {kubelet.staging} already has")
    assert len(mounts_at(kubelet.staging)) == 1
    kubelet.unstage()


@pytest.mark.parametrize("volume", ["single"], indirect=True)
def test_restaging_read_only_over_a_read_write_stage_is_already_exists(kubelet: Kubelet) -> None:
    kubelet.stage()
    with pytest.raises(grpc.RpcError) as raised:
        kubelet.plugin.node.NodeStageVolume(
            kubelet.stage_request(mode=Mode.MULTI_NODE_READER_ONLY), timeout=90
        )
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert raised.value.details() == (
        f"volume {kubelet.volume_id} is already staged at {kubelet.staging} read-write; "
        "unstage it before staging it read-only"
    )
    kubelet.unstage()


@pytest.mark.parametrize("volume", ["single"], indirect=True)
def test_calls_are_logged_without_the_request_context_or_mount_options(kubelet: Kubelet) -> None:
    kubelet.stage(flags=("noatime",))
    kubelet.unstage()
    lines = [line for line in kubelet.plugin.log().splitlines() if kubelet.volume_id in line]
    assert any('"method": "NodeStageVolume"' in line for line in lines)
    assert any('"method": "NodeUnstageVolume"' in line for line in lines)
    text = kubelet.plugin.log()
    assert "volume_context" not in text and "backup-volfile-servers" not in text
    assert "noatime" not in text


def _wait_for(condition: Callable[[], bool], *, deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.05)


def test_the_fuse_client_exits_after_unstage(kubelet: Kubelet) -> None:
    kubelet.stage()
    assert len(fuse_client_pids(kubelet.staging)) == 1
    kubelet.unstage()
    _wait_for(lambda: fuse_client_pids(kubelet.staging) == [])


@contextlib.contextmanager
def fuse_client_hung(mount_point: Path) -> Iterator[None]:
    """The volume's FUSE client stopped: alive, but no stat or statfs there answers."""
    pids = fuse_client_pids(mount_point)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


@pytest.mark.parametrize("volume", ["single"], indirect=True)
def test_stats_of_a_hung_fuse_client_answer_abnormal_instead_of_blocking(kubelet: Kubelet) -> None:
    kubelet.stage()
    target = kubelet.publish("pod-a")
    with fuse_client_hung(kubelet.staging):  # kubelet asks about the published path
        condition = kubelet.stats(target).volume_condition
        assert condition.abnormal and "does not answer" in condition.message
    # The stat left waiting on the stopped client pins the mount until the client
    # answers it; until then unpublish fails "target is busy" and kubelet retries.
    _wait_for(lambda: _succeeds(kubelet.unpublish, target))
    kubelet.unstage()


def _succeeds(call: Callable[[Path], None], path: Path) -> bool:
    try:
        call(path)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INTERNAL and "busy" in (error.details() or "")
        return False
    return True


@pytest.mark.parametrize("volume", ["single"], indirect=True)
def test_unpublish_and_unstage_finish_while_the_fuse_client_hangs(kubelet: Kubelet) -> None:
    kubelet.stage()
    target = kubelet.publish("pod-a")
    with fuse_client_hung(kubelet.staging):
        kubelet.unpublish(target)
        kubelet.unstage()
    assert mounts_at(target) == [] and mounts_at(kubelet.staging) == []
    assert not target.exists() and not kubelet.staging.exists()
    _wait_for(lambda: fuse_client_pids(kubelet.staging) == [])


def test_a_single_node_single_writer_volume_is_published_at_one_target_path_per_node(
    kubelet: Kubelet,
) -> None:
    single = Mode.SINGLE_NODE_SINGLE_WRITER
    kubelet.stage(mode=single)
    first = kubelet.publish("pod-a", mode=single)
    second = kubelet.pods / "pod-b" / "mount"
    with pytest.raises(grpc.RpcError) as raised:
        kubelet.plugin.node.NodePublishVolume(
            kubelet.publish_request(second, mode=single), timeout=90
        )
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"already published on this node at {first}" in (raised.value.details() or "")
    assert not mounts_at(second) and not second.exists()
    kubelet.unpublish(first)
    moved = kubelet.publish("pod-b", mode=single)  # the pod moved: the new target works
    (moved / "data").write_text("one writer")
    kubelet.unpublish(moved)
    kubelet.unstage()


def test_a_single_node_multi_writer_volume_is_published_at_several_target_paths(
    kubelet: Kubelet,
) -> None:
    multi = Mode.SINGLE_NODE_MULTI_WRITER
    kubelet.stage(mode=multi)
    targets = [kubelet.publish(pod, mode=multi) for pod in ("pod-a", "pod-b", "pod-c")]
    (targets[0] / "shared").write_text("seen by every pod")
    assert all((target / "shared").read_text() == "seen by every pod" for target in targets)
    for target in targets:
        kubelet.unpublish(target)
    kubelet.unstage()


def test_stats_of_a_relative_path_is_not_found_while_the_volume_is_published(
    kubelet: Kubelet,
) -> None:
    kubelet.stage()
    target = kubelet.publish("pod-a")
    request = csi_pb2.NodeGetVolumeStatsRequest(
        volume_id=kubelet.volume_id, volume_path="some/path"
    )
    with pytest.raises(grpc.RpcError) as raised:
        kubelet.plugin.node.NodeGetVolumeStats(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert kubelet.stats(target).volume_condition.abnormal is False
    kubelet.unpublish(target)
    kubelet.unstage()
