"""FUSE cgroups on this machine's real cgroup tree, and a node where they cannot work.

The join tests need a cgroup v1 (or hybrid) node, as this one is; the cgroups they
make are children of the test's own cgroup in each hierarchy (cgroup_tree.py).
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.csi import command
from provisioner.csi.fuse_cgroups import CgroupEscapeRunner, hierarchies, prepare
from provisioner.csi.mounter import SubprocessRunner
from testbed.kube.server import KubeTestServer
from tests.integration.csi import cgroup_tree
from tests.integration.csi.conftest import start_plugin, stop_plugin

DEADLINE = 20.0

needs_v1 = pytest.mark.skipif(
    not cgroup_tree.v1_hierarchies(), reason="needs a cgroup v1 (or hybrid) node"
)


@pytest.fixture
def fuse_cgroup(tmp_path: Path) -> Iterator[Path]:
    """`--fuse-cgroup` below a root that stands for the host's /sys/fs/cgroup."""
    root = cgroup_tree.own_cgroup_root(tmp_path / "cgroup")
    requested = root / f"fuse-test-{os.getpid()}"
    yield requested
    cgroup_tree.remove([entry / requested.name for entry in root.iterdir()])


def test_this_node_s_mode_and_hierarchies_are_read_from_its_cgroup_mounts() -> None:
    mode, found = hierarchies(cgroup_tree.CGROUP_FS)
    mounted = cgroup_tree.v1_hierarchies()
    if not mounted:
        assert (mode, found) == ("v2", (cgroup_tree.CGROUP_FS,))
        return
    assert mode == ("hybrid" if "" in mounted else "v1")
    assert {p.resolve() for p in found} == {p.resolve() for p in mounted.values()}


@needs_v1
def test_a_joined_process_is_in_the_fuse_cgroup_of_every_hierarchy(fuse_cgroup: Path) -> None:
    cgroups = prepare(fuse_cgroup)
    own = cgroup_tree.cgroups_of("self")
    child = subprocess.run(
        [sys.executable, "-m", "provisioner.csi.cgroup_exec", *map(str, cgroups.directories),
         "--", "cat", "/proc/self/cgroup"],
        capture_output=True, text=True, timeout=DEADLINE, check=True,
    )  # fmt: skip
    joined = {c: p for _, c, p in (line.split(":", 2) for line in child.stdout.splitlines())}
    for controllers in cgroup_tree.v1_hierarchies():
        expected = f"{own[controllers].rstrip('/')}/{fuse_cgroup.name}"
        assert joined[controllers] == expected, controllers


@needs_v1
def test_a_new_v1_cpuset_cgroup_gets_its_parent_s_cpus_and_memory_nodes(
    fuse_cgroup: Path,
) -> None:
    cpuset = [d for d in prepare(fuse_cgroup).directories if (d / "cpuset.cpus").exists()]
    if not cpuset:
        pytest.skip("no cpuset hierarchy mounted")
    for name in ("cpuset.cpus", "cpuset.mems"):
        assert (cpuset[0] / name).read_text().strip()
        assert (cpuset[0] / name).read_text() == (cpuset[0].parent / name).read_text()


@needs_v1
def test_the_start_up_probe_passes_on_this_node(fuse_cgroup: Path) -> None:
    CgroupEscapeRunner(SubprocessRunner(), cgroups=prepare(fuse_cgroup)).probe()


def test_a_directory_that_is_no_cgroup_is_never_joined(tmp_path: Path) -> None:
    (tmp_path / "not-a-cgroup").mkdir()
    child = subprocess.run(
        [sys.executable, "-m", "provisioner.csi.cgroup_exec", str(tmp_path / "not-a-cgroup"),
         "--", "true"],
        capture_output=True, text=True, timeout=DEADLINE, check=False,
    )  # fmt: skip
    assert child.returncode == 1
    assert "cannot join cgroup" in child.stderr
    assert not (tmp_path / "not-a-cgroup" / "cgroup.procs").exists()


def _node_events(kube: KubeTestServer) -> list[dict[str, object]]:
    return [e for e in kube.list("events", "default") if e["involvedObject"]["kind"] == "Node"]


def test_a_node_without_usable_cgroups_serves_and_warns_once_on_its_node(
    tmp_path: Path,
) -> None:
    (tmp_path / "cgroup").mkdir()  # nothing mounted where the host's tree should be
    with KubeTestServer() as kube:
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
        fuse = tmp_path / "cgroup" / "fuse"
        flags = ["--fuse-cgroup", str(fuse), "--kubeconfig", str(kubeconfig)]
        plugin = start_plugin(tmp_path, node_id="node-a", extra=flags)
        try:
            deadline = time.monotonic() + DEADLINE
            while "Event sent on the node" not in plugin.log():
                assert time.monotonic() < deadline, plugin.log()
                time.sleep(0.05)
            events = _node_events(kube)
        finally:
            assert stop_plugin(plugin) == 0
    (event,) = events
    assert event["involvedObject"] == {
        "apiVersion": "v1", "kind": "Node", "name": "node-a", "uid": "node-a",
    }  # fmt: skip
    assert (event["type"], event["reason"]) == ("Warning", command.FUSE_CGROUPS_UNAVAILABLE)
    assert "lose their mounts until they are recreated" in str(event["message"])
    errors = [json.loads(line) for line in plugin.log().splitlines() if '"level": "error"' in line]
    assert len(errors) == 1 and "outside the node plugin's cgroups" in errors[0]["event"]
