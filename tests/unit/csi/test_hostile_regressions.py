"""Fixed cases the hostile-input property test found (kept as plain regression tests)."""

from pathlib import Path

import pytest

from provisioner import errors
from provisioner.csi import validation
from provisioner.csi.mount_table import parse_mountinfo


def test_a_path_through_a_symlink_out_of_the_kubelet_dir_is_refused(tmp_path: Path) -> None:
    kubelet, outside = tmp_path / "kubelet", tmp_path / "outside"
    (kubelet / "pods").mkdir(parents=True)
    outside.mkdir()
    (kubelet / "pods" / "escape").symlink_to(outside)
    with pytest.raises(errors.InvalidArgument, match="resolves through a symlink"):
        validation.node_path(str(kubelet / "pods" / "escape" / "mount"), field="target_path",
                             kubelet_dir=kubelet)  # fmt: skip


def test_a_symlink_that_stays_inside_the_kubelet_dir_is_accepted(tmp_path: Path) -> None:
    kubelet = tmp_path / "kubelet"
    (kubelet / "pods" / "real").mkdir(parents=True)
    (kubelet / "pods" / "alias").symlink_to(kubelet / "pods" / "real")
    path = str(kubelet / "pods" / "alias" / "mount")
    assert validation.node_path(path, field="target_path", kubelet_dir=kubelet) == Path(path)


def test_a_path_component_longer_than_name_max_is_refused(tmp_path: Path) -> None:
    with pytest.raises(errors.InvalidArgument, match="longer than 255 bytes"):
        validation.node_path(f"{tmp_path}/{'x' * 256}", field="target_path", kubelet_dir=tmp_path)


@pytest.mark.parametrize("separator", ["\x1c", "\x85", "\u2028", "\r", "\x0b"])
def test_mountinfo_with_unusual_line_separators_in_a_mount_point_parses(separator: str) -> None:
    point = f"/var/lib/kubelet/pods/a{separator}b/mount"
    text = f"42 1 0:52 / {point} rw,relatime - fuse.glusterfs h:/v rw,user_id=0\n"
    (mount,) = parse_mountinfo(text.encode()).entries
    assert mount.mount_point == point


def test_a_path_that_is_itself_a_symlink_is_refused(tmp_path: Path) -> None:
    kubelet = tmp_path / "kubelet"
    (kubelet / "pods" / "real").mkdir(parents=True)
    (kubelet / "pods" / "link").symlink_to(kubelet / "pods" / "real")
    with pytest.raises(errors.InvalidArgument, match="is a symlink"):
        validation.node_path(str(kubelet / "pods" / "link"), field="target_path",
                             kubelet_dir=kubelet)  # fmt: skip
