"""Node service decisions over a fake Mounter (the real one is tested with Gluster)."""

import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from provisioner import errors
from provisioner.csi import csi_pb2
from provisioner.csi.mount_table import MountInfo, MountTable
from provisioner.csi.mounter import GlusterSource, PathState
from provisioner.csi.node import NodeConfig, NodeService
from provisioner.csi.recovery import StageRecords
from provisioner.csi.server import VolumeLocks

Mode = csi_pb2.VolumeCapability.AccessMode.Mode
CONTEXT = {"servers": "g1,g2", "volume": "vol_1"}


class FakeMounter:
    """An in-memory mount table; records what it was asked to do."""

    def __init__(self) -> None:
        self.mounted: dict[Path, MountInfo] = {}
        self.stale: set[Path] = set()
        self.calls: list[str] = []
        self.table_reads = 0
        self.stated: list[Path] = []

    def table(self) -> MountTable:
        self.table_reads += 1
        return MountTable(entries=tuple(self.mounted.values()))

    def path_state(self, path: Path) -> PathState:
        self.stated.append(path)
        if path in self.stale:
            return PathState.STALE
        return PathState.HEALTHY if path.exists() else PathState.MISSING

    def mount_gluster(
        self, source: GlusterSource, target: Path, *, read_only: bool, flags: Sequence[str],
        log_file: Path,
    ) -> None:  # fmt: skip
        self.calls.append(f"mount {source.device} {target}")
        self.mounted[target] = entry(target, source.device, read_only=read_only)

    def bind_mount(self, source: Path, target: Path, *, read_only: bool) -> None:
        self.calls.append(f"bind {source} {target}")
        self.mounted[target] = entry(target, self.mounted[source].source, read_only=read_only)

    def unmount(self, target: Path) -> None:
        self.calls.append(f"umount {target}")
        del self.mounted[target]
        self.stale.discard(target)


def entry(
    path: Path, source: str, *, read_only: bool = False, fs: str = "fuse.glusterfs"
) -> MountInfo:
    options = ("ro" if read_only else "rw", "relatime")
    return MountInfo(1, 1, "/", str(path), options, fs, source, ("rw",))


def capability(mode: Mode = Mode.MULTI_NODE_MULTI_WRITER) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode),
    )


@pytest.fixture
def fake() -> FakeMounter:
    return FakeMounter()


@pytest.fixture
def locks() -> VolumeLocks:
    return VolumeLocks()


@pytest.fixture
def node(tmp_path: Path, fake: FakeMounter, locks: VolumeLocks) -> NodeService:
    config = NodeConfig(node_id="n1", kubelet_dir=tmp_path, mount_log_dir=tmp_path / "logs")
    return NodeService(config=config, mounter=fake, locks=locks)


@pytest.fixture
def staging(tmp_path: Path) -> Path:
    path = tmp_path / "plugins" / "globalmount"
    path.parent.mkdir()
    return path


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "pods" / "mount"
    path.parent.mkdir()
    return path


def stage(
    node: NodeService, staging: Path, *, mode: Mode = Mode.MULTI_NODE_MULTI_WRITER,
    flags: Sequence[str] = (),
) -> None:  # fmt: skip
    cap = capability(mode)
    cap.mount.mount_flags.extend(flags)
    node.NodeStageVolume(
        csi_pb2.NodeStageVolumeRequest(
            volume_id="v1", staging_target_path=str(staging), volume_capability=cap,
            volume_context=CONTEXT,
        ),
        None,
    )  # fmt: skip


def publish(node: NodeService, staging: Path, target: Path, *, readonly: bool = False) -> None:
    node.NodePublishVolume(
        csi_pb2.NodePublishVolumeRequest(
            volume_id="v1", staging_target_path=str(staging), target_path=str(target),
            volume_capability=capability(), readonly=readonly,
        ),
        None,
    )  # fmt: skip


def test_stage_mounts_once_and_a_repeat_is_a_no_op(
    node: NodeService, fake: FakeMounter, staging: Path
) -> None:
    stage(node, staging)
    stage(node, staging)
    assert fake.calls == [f"mount g1:/vol_1 {staging}"]


def test_stage_accepts_a_mount_from_a_backup_server_as_the_same_volume(
    node: NodeService, fake: FakeMounter, staging: Path
) -> None:
    staging.mkdir()
    fake.mounted[staging] = entry(staging, "g2:/vol_1")
    stage(node, staging)
    assert fake.calls == []


def test_stage_remounts_a_stale_mount(node: NodeService, fake: FakeMounter, staging: Path) -> None:
    stage(node, staging)
    fake.stale.add(staging)
    stage(node, staging)
    assert fake.calls[1:] == [f"umount {staging}", f"mount g1:/vol_1 {staging}"]


def test_publish_over_a_foreign_mount_is_already_exists(
    node: NodeService, fake: FakeMounter, staging: Path, target: Path
) -> None:
    stage(node, staging)
    target.mkdir()
    fake.mounted[target] = entry(target, "tmpfs", fs="tmpfs")
    with pytest.raises(errors.AlreadyExists) as raised:
        publish(node, staging, target)
    assert str(raised.value) == (
        f"target_path {target} already has tmpfs (tmpfs) mounted; "
        "refusing to publish volume v1 there"
    )


def test_each_node_rpc_reads_the_mount_table_once(
    node: NodeService, fake: FakeMounter, staging: Path, target: Path
) -> None:
    reads = []
    for call in (
        lambda: stage(node, staging),
        lambda: publish(node, staging, target),
        lambda: node.NodeGetVolumeStats(
            csi_pb2.NodeGetVolumeStatsRequest(volume_id="v1", volume_path=str(target)), None
        ),
        lambda: node.NodeUnpublishVolume(
            csi_pb2.NodeUnpublishVolumeRequest(volume_id="v1", target_path=str(target)), None
        ),
        lambda: node.NodeUnstageVolume(
            csi_pb2.NodeUnstageVolumeRequest(volume_id="v1", staging_target_path=str(staging)),
            None,
        ),
    ):
        before = fake.table_reads
        call()
        reads.append(fake.table_reads - before)
    assert reads == [1, 1, 1, 1, 1]


def test_unpublish_never_unmounts_or_stats_another_filesystems_mount_at_the_target(
    node: NodeService, fake: FakeMounter, target: Path
) -> None:
    target.mkdir()
    fake.mounted[target] = entry(target, "/dev/sdb1", fs="ext4")
    with pytest.raises(errors.FailedPrecondition) as raised:
        node.NodeUnpublishVolume(
            csi_pb2.NodeUnpublishVolumeRequest(volume_id="v1", target_path=str(target)), None
        )
    assert str(raised.value) == (
        f"{target} has a ext4 mount (/dev/sdb1) that this plugin did not make; "
        "refusing to unmount it"
    )
    assert (fake.calls, fake.stated) == ([], [])
    assert target in fake.mounted


def test_stats_of_another_filesystems_mount_is_not_found_without_a_stat(
    node: NodeService, fake: FakeMounter, target: Path
) -> None:
    target.mkdir()
    fake.mounted[target] = entry(target, "tmpfs", fs="tmpfs")
    with pytest.raises(errors.NotFound, match=f"volume v1 is not mounted at volume_path {target}"):
        node.NodeGetVolumeStats(
            csi_pb2.NodeGetVolumeStatsRequest(volume_id="v1", volume_path=str(target)), None
        )
    assert fake.stated == []


def test_staging_over_another_filesystems_mount_never_stats_it(
    node: NodeService, fake: FakeMounter, staging: Path
) -> None:
    staging.mkdir()
    fake.mounted[staging] = entry(staging, "tmpfs", fs="tmpfs")
    with pytest.raises(errors.AlreadyExists, match="already has tmpfs \\(tmpfs\\) mounted"):
        stage(node, staging)
    assert (fake.calls, fake.stated) == ([], [])


def test_publishing_read_only_over_a_read_write_publish_is_already_exists(
    node: NodeService, staging: Path, target: Path
) -> None:
    stage(node, staging)
    publish(node, staging, target)
    with pytest.raises(errors.AlreadyExists, match="unpublish it before publishing it read-only"):
        publish(node, staging, target, readonly=True)


def test_publish_of_a_read_only_stage_is_read_only(
    node: NodeService, fake: FakeMounter, staging: Path, target: Path
) -> None:
    stage(node, staging, mode=Mode.MULTI_NODE_READER_ONLY)
    publish(node, staging, target)
    assert fake.mounted[target].read_only


def test_publish_needs_a_healthy_staging_mount(
    node: NodeService, fake: FakeMounter, staging: Path, target: Path
) -> None:
    stage(node, staging)
    fake.stale.add(staging)
    with pytest.raises(errors.FailedPrecondition, match="is stale; NodeStageVolume remounts it"):
        publish(node, staging, target)


def test_publish_rebinds_a_stale_target(
    node: NodeService, fake: FakeMounter, staging: Path, target: Path
) -> None:
    stage(node, staging)
    publish(node, staging, target)
    fake.stale.add(target)
    publish(node, staging, target)
    assert fake.calls[-2:] == [f"umount {target}", f"bind {staging} {target}"]


def test_publish_without_the_parent_of_the_target_is_failed_precondition(
    node: NodeService, staging: Path, tmp_path: Path
) -> None:
    stage(node, staging)
    orphan = tmp_path / "pods" / "missing-parent" / "mount"
    with pytest.raises(errors.FailedPrecondition, match="parent directory of target_path"):
        publish(node, staging, orphan)


def test_unpublish_never_deletes_data_left_in_an_unmounted_target(
    node: NodeService, target: Path
) -> None:
    target.mkdir()
    (target / "data.txt").write_text("not ours to delete")
    request = csi_pb2.NodeUnpublishVolumeRequest(volume_id="v1", target_path=str(target))
    with pytest.raises(errors.FailedPrecondition, match="is not empty after unmounting"):
        node.NodeUnpublishVolume(request, None)
    assert (target / "data.txt").exists()


def test_unpublish_of_a_missing_target_is_ok(node: NodeService, target: Path) -> None:
    request = csi_pb2.NodeUnpublishVolumeRequest(volume_id="v1", target_path=str(target))
    node.NodeUnpublishVolume(request, None)


def test_a_call_for_a_busy_volume_is_aborted(
    node: NodeService, locks: VolumeLocks, staging: Path
) -> None:
    with locks.hold("v1"), pytest.raises(errors.Aborted, match="v1 is already in progress"):
        stage(node, staging)


def test_stats_of_an_existing_directory_that_is_not_mounted_is_not_found(
    node: NodeService, staging: Path
) -> None:
    staging.mkdir()
    request = csi_pb2.NodeGetVolumeStatsRequest(volume_id="v1", volume_path=str(staging))
    with pytest.raises(errors.NotFound) as raised:
        node.NodeGetVolumeStats(request, None)
    assert str(raised.value) == f"volume v1 is not mounted at volume_path {staging}"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"node_id": ""}, "node id is required (--node-id or NODE_ID)"),
        ({"node_id": "n", "kubelet_dir": Path("var/lib/kubelet")}, "must be an absolute"),
        ({"node_id": "n", "mount_log_dir": Path("/var/log/a,b")}, "must not contain"),
    ],
    ids=["no-node-id", "relative-kubelet-dir", "comma-in-log-dir"],
)
def test_invalid_node_configuration_is_refused(config: dict[str, object], message: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=re.escape(message)):
        NodeConfig(**config)  # type: ignore[arg-type]


def _refuse(*_args: object, **_kwargs: object) -> None:
    raise errors.Internal("mount failed (exit 32): no such volume")


def test_a_failed_publish_removes_the_target_directory_it_made(
    node: NodeService, fake: FakeMounter, staging: Path, target: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    stage(node, staging)
    monkeypatch.setattr(fake, "bind_mount", _refuse)
    with pytest.raises(errors.Internal, match="no such volume"):
        publish(node, staging, target)
    assert not target.exists()


def test_a_failed_stage_removes_the_staging_directory_it_made(
    node: NodeService, fake: FakeMounter, staging: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fake, "mount_gluster", _refuse)
    with pytest.raises(errors.Internal, match="no such volume"):
        stage(node, staging)
    assert not staging.exists()


def test_a_failed_stage_keeps_a_staging_directory_that_was_already_there(
    node: NodeService, fake: FakeMounter, staging: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staging.mkdir()  # kubelet creates the staging directory itself
    monkeypatch.setattr(fake, "mount_gluster", _refuse)
    with pytest.raises(errors.Internal, match="no such volume"):
        stage(node, staging)
    assert staging.is_dir()


@pytest.fixture
def recording_node(tmp_path: Path, fake: FakeMounter) -> NodeService:
    config = NodeConfig(node_id="n1", kubelet_dir=tmp_path, mount_log_dir=tmp_path / "logs")
    records = StageRecords(tmp_path / "state")
    return NodeService(config=config, mounter=fake, records=records)


def test_restaging_with_the_same_flags_in_another_order_is_ok(
    recording_node: NodeService, fake: FakeMounter, staging: Path
) -> None:
    stage(recording_node, staging, flags=("noatime", "acl"))
    stage(recording_node, staging, flags=("acl", "noatime"))
    assert fake.calls == [f"mount g1:/vol_1 {staging}"]


def test_restaging_with_other_mount_flags_is_already_exists_and_keeps_the_record(
    recording_node: NodeService, fake: FakeMounter, staging: Path, tmp_path: Path
) -> None:
    stage(recording_node, staging, flags=("noatime",))
    with pytest.raises(errors.AlreadyExists, match="with other mount flags; unstage it"):
        stage(recording_node, staging, flags=("noexec",))
    record = StageRecords(tmp_path / "state").load(str(staging))
    assert record is not None and record.flags == ("noatime",)
    assert fake.calls == [f"mount g1:/vol_1 {staging}"]
