"""Stage records and the cgroup-escaping runner (the restart tests use real mounts)."""

from collections.abc import Sequence
from pathlib import Path

import pytest

from provisioner import errors
from provisioner.csi.mounter import Result
from provisioner.csi.recovery import (
    CgroupEscapeRunner,
    StageRecord,
    StageRecords,
    check_cgroup_dir,
)


def _record(staging: str) -> StageRecord:
    return StageRecord(
        volume_id="v1", staging_path=staging, servers=("10.0.0.1", "10.0.0.2"), volume="vol",
        read_only=False, flags=("noatime",), log_file="/var/log/glusterfs/csi/vol.log",
    )  # fmt: skip


def test_records_round_trip_and_are_removed_on_unstage(tmp_path: Path) -> None:
    records = StageRecords(tmp_path / "staged")
    records.save(_record("/var/lib/kubelet/a"))
    records.save(_record("/var/lib/kubelet/b"))
    records.remove("/var/lib/kubelet/a")
    assert records.load_all() == [_record("/var/lib/kubelet/b")]


def test_unreadable_records_are_skipped_not_fatal(tmp_path: Path) -> None:
    records = StageRecords(tmp_path)
    (tmp_path / "garbage.json").write_text("{not json")
    records.save(_record("/var/lib/kubelet/a"))
    assert [r.staging_path for r in records.load_all()] == ["/var/lib/kubelet/a"]


def test_missing_state_directory_means_no_records(tmp_path: Path) -> None:
    assert StageRecords(tmp_path / "absent").load_all() == []


class _Recorder:
    def __init__(self) -> None:
        self.argvs: list[list[str]] = []

    def __call__(self, argv: Sequence[str], *, timeout: float) -> Result:
        self.argvs.append(list(argv))
        return Result(tuple(argv), 0, "", "")


def test_only_gluster_mounts_are_started_in_the_fuse_cgroup() -> None:
    inner = _Recorder()
    runner = CgroupEscapeRunner(
        inner, cgroup_dir=Path("/sys/fs/cgroup/fuse"), cgroup_namespace=Path("/proc/1/ns/cgroup")
    )
    gluster = ["mount", "-t", "glusterfs", "-o", "log-file=/l", "h:/v", "/t"]
    result = runner(gluster, timeout=5)
    runner(["umount", "/t"], timeout=5)
    assert result.argv == tuple(gluster)
    assert inner.argvs[0][:3] == ["nsenter", "--cgroup=/proc/1/ns/cgroup", "--"]
    assert inner.argvs[0][-len(gluster) - 1 :] == ["--", *gluster]
    assert inner.argvs[1] == ["umount", "/t"]


def test_fuse_cgroup_outside_a_cgroup_v2_tree_is_refused_with_advice(tmp_path: Path) -> None:
    with pytest.raises(errors.InvalidArgument, match="not a cgroup v2 directory"):
        check_cgroup_dir(tmp_path / "fuse")
    assert not (tmp_path / "fuse").exists()
