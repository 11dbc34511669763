"""The node plugin's mount signals from a given mount table, probe and /proc."""

import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from provisioner import errors
from provisioner.csi.mount_table import MountTable
from provisioner.csi.mounter import GLUSTER_FSTYPE, MountInfo, PathState
from provisioner.csi.node_signals import NodeMounts
from tests.polling import wait_for

KUBELET = Path("/var/lib/kubelet")
STAGING = f"{KUBELET}/plugins/kubernetes.io/csi/glusterfs.csi.heketi.io/0a1b/globalmount"
TARGET_A = f"{KUBELET}/pods/uid-a/volumes/kubernetes.io~csi/pvc-1/mount"
TARGET_B = f"{KUBELET}/pods/uid-b/volumes/kubernetes.io~csi/pvc-1/mount"
OTHER_STAGING = f"{KUBELET}/plugins/kubernetes.io/csi/glusterfs.csi.heketi.io/9f8e/globalmount"


def mount(point: str, *, fs_type: str = GLUSTER_FSTYPE, source: str = "g1:/vol_1") -> MountInfo:
    return MountInfo(
        mount_id=1, parent_id=0, root="/", mount_point=point, options=("rw",),
        fs_type=fs_type, source=source, super_options=("rw",),
    )  # fmt: skip


def write_process(proc: Path, pid: int, *argv: str) -> None:
    (proc / str(pid)).mkdir(parents=True)
    (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")


def scrape(collector: NodeMounts) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def collector(
    mounts: list[MountInfo],
    *,
    stale: frozenset[str] = frozenset(),
    proc: Path,
    failing: frozenset[str] = frozenset(),
) -> NodeMounts:
    def probe(path: Path) -> PathState:
        if str(path) in failing:
            raise errors.Internal(f"cannot statvfs {path}: Permission denied")
        return PathState.STALE if str(path) in stale else PathState.HEALTHY

    return NodeMounts(
        table=lambda: MountTable(tuple(mounts)), kubelet_dir=KUBELET, probe=probe, proc_dir=proc
    )


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    directory = tmp_path / "proc"
    directory.mkdir()
    return directory


def test_staging_and_pod_mounts_are_counted_apart(proc: Path) -> None:
    values = scrape(collector([mount(STAGING), mount(TARGET_A), mount(TARGET_B)], proc=proc))
    assert values[("glusterfs_provisioner_node_staged_volumes", ())] == 1
    assert values[("glusterfs_provisioner_node_published_volumes", ())] == 2


def test_mounts_of_other_filesystems_or_outside_the_kubelet_dir_are_not_ours(proc: Path) -> None:
    mounts = [
        mount(f"{KUBELET}/pods/uid-c/volumes/kubernetes.io~nfs/data", fs_type="nfs4"),
        mount("/mnt/gluster-by-hand"),
        mount("/var/lib/kubelet-other/pods/x/mount"),
        mount(STAGING),
    ]
    values = scrape(collector(mounts, proc=proc))
    assert values[("glusterfs_provisioner_node_staged_volumes", ())] == 1
    assert values[("glusterfs_provisioner_node_published_volumes", ())] == 0


def test_stale_mounts_are_counted_by_kind(proc: Path) -> None:
    mounts = [mount(STAGING), mount(OTHER_STAGING), mount(TARGET_A), mount(TARGET_B)]
    values = scrape(collector(mounts, stale=frozenset({STAGING, TARGET_A, TARGET_B}), proc=proc))
    assert values[("glusterfs_provisioner_node_stale_mounts", (("kind", "staged"),))] == 1
    assert values[("glusterfs_provisioner_node_stale_mounts", (("kind", "published"),))] == 2


def test_a_healthy_node_reports_zero_stale_mounts_of_each_kind(proc: Path) -> None:
    values = scrape(collector([mount(STAGING), mount(TARGET_A)], proc=proc))
    for kind in ("staged", "published"):
        assert values[("glusterfs_provisioner_node_stale_mounts", (("kind", kind),))] == 0


def test_a_mount_that_cannot_be_probed_is_not_counted_stale_and_the_scrape_goes_on(
    proc: Path,
) -> None:
    mounts = [mount(STAGING), mount(OTHER_STAGING)]
    values = scrape(
        collector(mounts, stale=frozenset({OTHER_STAGING}), failing=frozenset({STAGING}), proc=proc)
    )
    assert values[("glusterfs_provisioner_node_stale_mounts", (("kind", "staged"),))] == 1


def test_fuse_clients_are_glusterfs_processes_serving_a_mount_of_ours(proc: Path) -> None:
    client = ("/usr/sbin/glusterfs", "--process-name", "fuse", "--volfile-id=/vol_1")
    write_process(proc, 101, *client, STAGING)
    write_process(proc, 102, *client, OTHER_STAGING)
    write_process(proc, 103, *client, "/mnt/gluster-by-hand")  # not ours
    write_process(proc, 104, "/usr/sbin/glusterfsd", "-s", "host", STAGING)  # a brick daemon
    write_process(proc, 105, "/usr/bin/python3", "-m", "provisioner", "node")
    (proc / "self").mkdir()
    (proc / "106").mkdir()  # ended while we looked: no cmdline
    values = scrape(collector([mount(STAGING)], proc=proc))
    assert values[("glusterfs_provisioner_node_fuse_clients", ())] == 2


def test_an_empty_node_reports_zeros(proc: Path) -> None:
    values = scrape(collector([], proc=proc))
    assert values == {
        ("glusterfs_provisioner_node_staged_volumes", ()): 0,
        ("glusterfs_provisioner_node_published_volumes", ()): 0,
        ("glusterfs_provisioner_node_stale_mounts", (("kind", "staged"),)): 0,
        ("glusterfs_provisioner_node_stale_mounts", (("kind", "published"),)): 0,
        ("glusterfs_provisioner_node_fuse_clients", ()): 0,
    }


def test_a_hung_mount_counts_stale_and_keeps_one_probe_until_it_answers(proc: Path) -> None:
    answer = threading.Event()
    asked: list[Path] = []

    def hanging(path: Path) -> PathState:
        asked.append(path)
        answer.wait(30)  # a FUSE client that does not answer until released
        return PathState.HEALTHY

    mounts = NodeMounts(
        table=lambda: MountTable((mount(STAGING),)), kubelet_dir=KUBELET, probe=hanging,
        probe_timeout=0.05, proc_dir=proc,
    )  # fmt: skip
    stale = ("glusterfs_provisioner_node_stale_mounts", (("kind", "staged"),))
    assert scrape(mounts)[stale] == 1
    assert scrape(mounts)[stale] == 1
    assert asked == [Path(STAGING)]  # the second scrape found the first probe still waiting
    answer.set()
    wait_for("the probe to finish", lambda: scrape(mounts)[stale] == 0, timeout=10)
    assert scrape(mounts)[stale] == 0
    assert asked == [Path(STAGING)] * 2  # answered: the next scrape asks afresh
