"""Mounts at paths the kernel writes into mountinfo unescaped never disturb the node plugin.

The kernel escapes only space, tab, newline and backslash in /proc/self/mountinfo; a
path holding `\\r`, U+0085, U+2028 or bytes that are not UTF-8 appears as is. Such
mounts (tmpfs here, as any other software on a node may make) sit beside and inside the
kubelet directory while a real Gluster volume goes through its whole life on the real
kernel: every call succeeds, and none of the odd mounts is unmounted or changed.
"""

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from provisioner.csi import mounter
from tests.conftest import GlusterHost
from tests.integration.csi.conftest import (
    VOLUME_PREFIX,
    GlusterVolume,
    Plugin,
    create_volume,
    delete_volume,
)
from tests.integration.csi.test_node_mounts import Kubelet

pytestmark = pytest.mark.gluster

#: Directory names with bytes the kernel does not escape (and two it does).
ODD_NAMES = (
    b"carriage\rreturn",
    "next\x85line".encode(),  # U+0085 in UTF-8
    b"raw\x85byte",  # a lone 0x85: not UTF-8
    "line\u2028separator".encode(),
    b"trailing space ",
    b"a\ttab",
    b"not-utf8-\xff\xfe",
    b"vertical\x0btab\x1cfile-separator",
)


@dataclass(frozen=True)
class OddMount:
    path: bytes
    mount_id: int


def _mount_tmpfs(path: bytes) -> None:
    os.makedirs(path)
    argv = [b"mount", b"-t", b"tmpfs", b"-o", b"size=1m", b"odd-tmpfs", path]
    subprocess.run(argv, check=True, capture_output=True, timeout=30)
    with open(os.path.join(path, b"marker"), "w") as marker:
        marker.write("still here")


def _table_ids() -> dict[bytes, int]:
    return {
        os.fsencode(mount.mount_point): mount.mount_id
        for mount in mounter.SystemMounter().table().entries
    }


@pytest.fixture
def odd_mounts(plugin: Plugin, tmp_path: Path) -> Iterator[list[OddMount]]:
    """tmpfs mounts at odd paths outside the kubelet dir and inside it (another pod's)."""
    places = [os.fsencode(tmp_path), os.fsencode(plugin.kubelet_dir / "pods" / "other-pod")]
    paths = [os.path.join(place, name) for place in places for name in ODD_NAMES]
    made: list[bytes] = []
    try:
        for path in paths:
            _mount_tmpfs(path)
            made.append(path)
        ids = _table_ids()
        yield [OddMount(path, ids[path]) for path in made]
    finally:
        for path in reversed(made):
            subprocess.run([b"umount", path], capture_output=True, timeout=30, check=False)
            os.rmdir(path)  # the marker went with its tmpfs


@pytest.fixture(scope="module")
def volume(
    gluster_host: GlusterHost, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GlusterVolume]:
    bricks = tmp_path_factory.mktemp("tnode-odd-bricks")
    name = f"{VOLUME_PREFIX}odd-{os.getpid()}"
    try:
        create_volume(name, [f"{gluster_host.brick_host}:{bricks}/b0"])
        yield GlusterVolume(
            name,
            {"servers": f"{gluster_host.mount_host},{gluster_host.brick_host}", "volume": name},
        )
    finally:
        delete_volume(name)


def test_the_mount_table_keeps_every_odd_path_exactly(odd_mounts: list[OddMount]) -> None:
    table = _table_ids()
    assert {odd.path: table.get(odd.path) for odd in odd_mounts} == {
        odd.path: odd.mount_id for odd in odd_mounts
    }


def test_a_volume_lives_its_whole_life_beside_odd_mounts_without_touching_them(
    plugin: Plugin, volume: GlusterVolume, odd_mounts: list[OddMount]
) -> None:
    kubelet = Kubelet(plugin, volume, "odd-neighbours")
    kubelet.stage()
    target = kubelet.publish("pod-1")
    (target / "hello.txt").write_text("beside odd mounts")
    stats = kubelet.stats(target)
    assert not stats.volume_condition.abnormal and stats.usage[0].total > 0
    assert (kubelet.staging / "hello.txt").read_text() == "beside odd mounts"
    kubelet.unpublish(target)
    kubelet.unstage()
    assert not target.exists() and not kubelet.staging.exists()
    table = _table_ids()
    assert {odd.path: table.get(odd.path) for odd in odd_mounts} == {
        odd.path: odd.mount_id for odd in odd_mounts
    }
    for odd in odd_mounts:
        with open(os.path.join(odd.path, b"marker")) as marker:
            assert marker.read() == "still here"
    assert "mountinfo line skipped" not in plugin.log()
