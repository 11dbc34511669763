"""Stage records and the cgroup-escaping runner (the restart tests use real mounts)."""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from provisioner import errors
from provisioner.csi.mount_table import MountInfo, MountTable
from provisioner.csi.mounter import PathState, Result
from provisioner.csi.recovery import (
    CgroupEscapeRunner,
    RepairOutcome,
    StageRecord,
    StageRecords,
    check_cgroup_dir,
    repair_stale_mounts,
)
from provisioner.csi.server import VolumeLocks


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


def test_one_record_is_loaded_by_its_staging_path(tmp_path: Path) -> None:
    records = StageRecords(tmp_path)
    records.save(_record("/var/lib/kubelet/a"))
    assert records.load("/var/lib/kubelet/a") == _record("/var/lib/kubelet/a")
    assert records.load("/var/lib/kubelet/b") is None


def test_an_unreadable_record_loads_as_none(tmp_path: Path) -> None:
    records = StageRecords(tmp_path)
    records.save(_record("/var/lib/kubelet/a"))
    next(tmp_path.glob("*.json")).write_text("{not json")
    assert records.load("/var/lib/kubelet/a") is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("servers", ["10.0.0.1,log-file=/etc/cron.d/x"]),
        ("servers", []),
        ("volume", "../etc"),
        ("flags", ["suid"]),
        ("staging_path", "/var/lib/kubelet/../../etc"),
        ("log_file", "/var/log/x.log,acl"),
    ],
    ids=["server-smuggles-option", "no-servers", "volume-path", "flag-not-allowed",
         "staging-not-normalised", "log-file-with-comma"],
)  # fmt: skip
def test_a_tampered_record_is_never_used_for_a_mount(
    tmp_path: Path, field: str, value: object
) -> None:
    records = StageRecords(tmp_path)
    records.save(_record("/var/lib/kubelet/a"))
    (file,) = tmp_path.glob("*.json")
    raw = json.loads(file.read_text())
    file.write_text(json.dumps({**raw, field: value}))
    assert records.load_all() == []
    assert records.load("/var/lib/kubelet/a") is None


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


class _FakeMounter:
    """Mount table + per-path health; records what repair did."""

    def __init__(self, mounts: dict[str, str], stale: set[str]) -> None:
        self.mounted = [
            MountInfo(i, 1, "/", point, ("rw",), "fuse.glusterfs", source, ())
            for i, (point, source) in enumerate(mounts.items())
        ]
        self.stale = stale
        self.calls: list[tuple[str, ...]] = []

    def table(self) -> MountTable:
        return MountTable(entries=tuple(self.mounted))

    def path_state(self, path: Path) -> PathState:
        return PathState.STALE if str(path) in self.stale else PathState.HEALTHY

    def mount_gluster(self, source: Any, target: Path, **_: Any) -> None:
        self.calls.append(("mount", source.device, str(target)))
        self.mounted.append(MountInfo(99, 1, "/", str(target), ("rw",), "fuse.glusterfs",
                                    source.device, ()))  # fmt: skip
        self.stale.discard(str(target))

    def bind_mount(self, source: Path, target: Path, *, read_only: bool) -> None:
        self.calls.append(("bind", str(source), str(target)))

    def unmount(self, target: Path) -> None:
        self.calls.append(("umount", str(target)))
        for mount in reversed(self.mounted):
            if mount.mount_point == str(target):
                self.mounted.remove(mount)
                break


def _repair(tmp_path: Path, mounter: _FakeMounter, **kwargs: Any) -> RepairOutcome:
    records = StageRecords(tmp_path)
    for staging in ("/k/s1", "/k/s2"):
        records.save(
            StageRecord(
                volume_id=staging[-2:], staging_path=staging, servers=("10.0.0.1",),
                volume="vol", read_only=False, flags=(), log_file="/l/vol.log",
            )
        )  # fmt: skip
    return repair_stale_mounts(mounter=mounter, records=records, **kwargs)


def test_stale_staging_is_remounted_and_its_published_paths_rebound(tmp_path: Path) -> None:
    device = "10.0.0.1:/vol"
    mounter = _FakeMounter({"/k/s1": device, "/k/pod/mount": device}, {"/k/s1", "/k/pod/mount"})
    outcome = _repair(tmp_path, mounter)
    assert outcome.repaired == ("/k/s1",) and outcome.rebound == ("/k/pod/mount",)
    assert outcome.forgotten == ("/k/s2",)  # not mounted at all (node rebooted): record dropped
    assert mounter.calls == [
        ("umount", "/k/pod/mount"), ("umount", "/k/s1"), ("mount", device, "/k/s1"),
        ("bind", "/k/s1", "/k/pod/mount"),
    ]  # fmt: skip
    assert [r.staging_path for r in StageRecords(tmp_path).load_all()] == ["/k/s1"]


def test_healthy_staging_is_left_alone(tmp_path: Path) -> None:
    mounter = _FakeMounter({"/k/s1": "10.0.0.1:/vol", "/k/s2": "10.0.0.1:/vol"}, set())
    outcome = _repair(tmp_path, mounter)
    assert sorted(outcome.healthy) == ["/k/s1", "/k/s2"] and mounter.calls == []


def test_a_volume_kubelet_is_working_on_is_left_to_that_call(tmp_path: Path) -> None:
    mounter = _FakeMounter({"/k/s1": "10.0.0.1:/vol"}, {"/k/s1"})
    locks = VolumeLocks()
    with locks.hold("s1"):
        outcome = _repair(tmp_path, mounter, locks=locks)
    assert outcome.repaired == () and mounter.calls == []


def test_a_recorded_path_where_another_filesystem_is_mounted_is_left_alone(
    tmp_path: Path,
) -> None:
    mounter = _FakeMounter({"/k/s1": "10.0.0.1:/vol"}, {"/k/s1"})
    mounter.mounted[0] = MountInfo(0, 1, "/", "/k/s1", ("rw",), "nfs", "nas:/export", ())
    outcome = _repair(tmp_path, mounter)
    assert outcome.failed == ("/k/s1: nfs is mounted there",)
    assert mounter.calls == []
