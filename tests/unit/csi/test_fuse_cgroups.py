"""Which cgroups FUSE clients start in, per cgroup mode (fake trees; the real v1 tree
of this machine is used in tests/integration/csi/test_fuse_cgroups.py)."""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import structlog

from provisioner import errors
from provisioner.csi import node_command
from provisioner.csi.fuse_cgroups import (
    CgroupEscapeRunner,
    FuseCgroups,
    FuseCgroupsUnavailable,
    check_path,
    escape_runner,
    hierarchies,
    prepare,
)
from provisioner.csi.mounter import Result

GLUSTER = ["mount", "-t", "glusterfs", "-o", "log-file=/l", "h:/v", "/t"]


def _cgroup(path: Path, *, v2: bool = False) -> Path:
    """A directory that looks like a cgroup to the plugin (its control files)."""
    path.mkdir(parents=True)
    (path / "cgroup.procs").write_text("")
    if v2:
        (path / "cgroup.controllers").write_text("cpu memory pids\n")
    return path


def _v1_tree(root: Path, *, unified: bool) -> Path:
    """/sys/fs/cgroup of a v1 node: one mount per hierarchy, cpu and cpuacct as symlinks."""
    root.mkdir()
    for name in ("cpu,cpuacct", "devices", "freezer", "memory", "systemd"):
        _cgroup(root / name)
    (root / "cpu").symlink_to("cpu,cpuacct")
    (root / "cpuacct").symlink_to("cpu,cpuacct")
    if unified:
        _cgroup(root / "unified", v2=True)
    return root


def test_a_unified_root_is_cgroup_v2_with_one_directory(tmp_path: Path) -> None:
    root = _cgroup(tmp_path / "cgroup", v2=True)
    assert hierarchies(root) == ("v2", (root,))


def test_a_root_of_v1_mounts_lists_each_hierarchy_once(tmp_path: Path) -> None:
    root = _v1_tree(tmp_path / "cgroup", unified=False)
    mode, found = hierarchies(root)
    assert mode == "v1"
    assert sorted(p.name for p in found) == [
        "cpu,cpuacct",
        "devices",
        "freezer",
        "memory",
        "systemd",
    ]


def test_v1_mounts_beside_a_unified_mount_are_the_hybrid_mode(tmp_path: Path) -> None:
    mode, found = hierarchies(_v1_tree(tmp_path / "cgroup", unified=True))
    assert mode == "hybrid"
    assert "unified" in {p.name for p in found}


@pytest.mark.parametrize(
    "layout", ["missing", "empty", "files only"], ids=lambda layout: f"root {layout}"
)
def test_a_root_without_cgroup_hierarchies_is_unavailable_with_the_reason(
    tmp_path: Path, layout: str
) -> None:
    root = tmp_path / "cgroup"
    if layout != "missing":
        root.mkdir()
    if layout == "files only":
        (root / "memory").mkdir()  # a directory, not a mounted hierarchy
    with pytest.raises(FuseCgroupsUnavailable, match=str(root)):
        hierarchies(root)


def test_on_v2_the_named_directory_itself_is_created(tmp_path: Path) -> None:
    root = _cgroup(tmp_path / "cgroup", v2=True)
    cgroups = prepare(root / "glusterfs-csi-fuse")
    assert cgroups == FuseCgroups(mode="v2", directories=(root / "glusterfs-csi-fuse",))
    assert (root / "glusterfs-csi-fuse").is_dir()
    assert not [
        p for p in tmp_path.rglob("*") if p.name == "glusterfs-csi-fuse" and p.parent != root
    ]


def test_on_v1_a_cgroup_of_the_same_name_is_created_in_every_hierarchy(tmp_path: Path) -> None:
    root = _v1_tree(tmp_path / "cgroup", unified=True)
    cgroups = prepare(root / "glusterfs-csi-fuse")
    assert cgroups.mode == "hybrid"
    assert {d.parent.name for d in cgroups.directories} == {
        "cpu,cpuacct", "devices", "freezer", "memory", "systemd", "unified",
    }  # fmt: skip
    assert all(d.is_dir() and d.name == "glusterfs-csi-fuse" for d in cgroups.directories)
    assert not (root / "glusterfs-csi-fuse").exists(), "nothing made on the tmpfs itself"


@pytest.mark.parametrize("flag", ["fuse", "/a/../fuse", "/"])
def test_a_fuse_cgroup_that_is_not_an_absolute_normalised_path_is_refused(flag: str) -> None:
    with pytest.raises(errors.InvalidArgument, match="--fuse-cgroup"):
        check_path(Path(flag))


class _Recorder:
    def __init__(self, *, returncode: int = 0, stderr: str = "") -> None:
        self.argvs: list[list[str]] = []
        self._returncode = returncode
        self._stderr = stderr

    def __call__(self, argv: Sequence[str], *, timeout: float) -> Result:
        self.argvs.append(list(argv))
        return Result(tuple(argv), self._returncode, "", self._stderr)


_TWO = FuseCgroups(mode="v1", directories=(Path("/h/memory/fuse"), Path("/h/devices/fuse")))


def test_only_gluster_mounts_join_every_fuse_cgroup_in_the_host_namespace() -> None:
    inner = _Recorder()
    runner = CgroupEscapeRunner(inner, cgroups=_TWO, cgroup_namespace=Path("/proc/1/ns/cgroup"))
    result = runner(GLUSTER, timeout=5)
    runner(["umount", "/t"], timeout=5)
    assert result.argv == tuple(GLUSTER)
    assert inner.argvs[0][:3] == ["nsenter", "--cgroup=/proc/1/ns/cgroup", "--"]
    joined = inner.argvs[0][inner.argvs[0].index("provisioner.csi.cgroup_exec") + 1 :]
    assert joined == ["/h/memory/fuse", "/h/devices/fuse", "--", *GLUSTER]
    assert inner.argvs[1] == ["umount", "/t"]


def test_a_probe_the_kernel_refuses_is_unavailable_with_its_message() -> None:
    inner = _Recorder(returncode=1, stderr="cannot join cgroup /h/memory/fuse: Permission denied\n")
    runner = CgroupEscapeRunner(inner, cgroups=_TWO)
    with pytest.raises(FuseCgroupsUnavailable, match="/h/memory/fuse: Permission denied"):
        runner.probe()


def test_a_probe_without_nsenter_on_the_node_is_unavailable() -> None:
    def missing(argv: Sequence[str], *, timeout: float) -> Result:
        raise errors.FailedPrecondition(f"{argv[0]} is not installed on this node")

    runner = CgroupEscapeRunner(missing, cgroups=_TWO, cgroup_namespace=Path("/proc/1/ns/cgroup"))
    with pytest.raises(FuseCgroupsUnavailable, match="nsenter is not installed"):
        runner.probe()


def _config(fuse_cgroup: Path) -> node_command.NodeCommandConfig:
    parser = argparse.ArgumentParser()
    node_command.add_arguments(parser)
    args = parser.parse_args(["--node-id", "node-a", "--fuse-cgroup", str(fuse_cgroup)])
    return node_command.config_from_args(args)


def test_a_node_without_usable_cgroups_still_gets_a_plugin_that_mounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)  # the Event finds no API here
    (tmp_path / "cgroup").mkdir()
    inner = _Recorder()
    with structlog.testing.capture_logs() as logs:
        runner = node_command.fuse_runner(_config(tmp_path / "cgroup" / "fuse"), inner)
    runner(GLUSTER, timeout=5)
    assert inner.argvs == [GLUSTER], "mounts run as they are, in the plugin's cgroups"
    (error,) = [entry for entry in logs if entry["log_level"] == "error"]
    assert "cannot be started outside the node plugin's cgroups" in error["event"]
    assert error["node_id"] == "node-a"


class _RefusesNamespaces(_Recorder):
    """nsenter cannot open the namespace (a PID 1 hidden from root); plain joins work."""

    def __call__(self, argv: Sequence[str], *, timeout: float) -> Result:
        self.argvs.append(list(argv))
        if argv[0] == "nsenter":
            return Result(
                tuple(argv), 1, "", "nsenter: cannot open /proc/1/ns/cgroup: Permission denied\n"
            )
        return Result(tuple(argv), 0, "", "")


def test_a_namespace_that_cannot_be_entered_falls_back_to_joining_directly() -> None:
    inner = _RefusesNamespaces()
    runner = escape_runner(inner, cgroups=_TWO, cgroup_namespace=Path("/proc/1/ns/cgroup"))
    runner(GLUSTER, timeout=5)
    assert runner.cgroup_namespace is None
    assert inner.argvs[-1][0] != "nsenter"
    assert inner.argvs[-1][-len(GLUSTER) - 1 :] == ["--", *GLUSTER]


def test_when_neither_way_joins_every_reason_is_given() -> None:
    inner = _Recorder(returncode=1, stderr="cannot join cgroup /h/memory/fuse: Permission denied")
    with pytest.raises(FuseCgroupsUnavailable) as raised:
        escape_runner(inner, cgroups=_TWO, cgroup_namespace=Path("/proc/1/ns/cgroup"))
    assert str(raised.value).count("Permission denied") == 2
    assert [argv[0] for argv in inner.argvs] == ["nsenter", sys.executable]
