"""`validation.node_paths`: several request paths checked together, the failing one named."""

import os
import threading
from pathlib import Path

import pytest

from provisioner import errors
from provisioner.csi import validation


@pytest.fixture
def kubelet(tmp_path: Path) -> Path:
    root = tmp_path / "kubelet"
    (root / "plugins" / "vol").mkdir(parents=True)
    (root / "pods" / "real").mkdir(parents=True)
    (root / "pods" / "link").symlink_to(root / "pods" / "real")
    (tmp_path / "outside").mkdir()
    (root / "pods" / "escape").symlink_to(tmp_path / "outside")
    return root


def test_both_paths_come_back_in_order(kubelet: Path) -> None:
    staging, target = kubelet / "plugins" / "vol" / "globalmount", kubelet / "pods" / "p" / "m"
    assert validation.node_paths(
        [("staging_target_path", str(staging)), ("target_path", str(target))], kubelet_dir=kubelet
    ) == [staging, target]


@pytest.mark.parametrize(
    ("staging", "target", "field", "message"),
    [
        pytest.param("plugins/vol/g", "pods/escape/m", "target_path", "resolves through a symlink",
                     id="target-escapes-through-a-symlink"),
        pytest.param("pods/escape/g", "pods/real/m", "staging_target_path",
                     "resolves through a symlink", id="staging-escapes-through-a-symlink"),
        pytest.param("plugins/vol/g", "pods/link", "target_path", "is a symlink",
                     id="target-is-a-symlink"),
        pytest.param("plugins/vol/g", "", "target_path", "is required", id="target-missing"),
        pytest.param("plugins/vol/../g", "pods/real/m", "staging_target_path", "normalised",
                     id="staging-not-normalised"),
    ],
)  # fmt: skip
def test_the_failing_path_is_named(
    kubelet: Path, staging: str, target: str, field: str, message: str
) -> None:
    fields = [
        ("staging_target_path", f"{kubelet}/{staging}"),
        ("target_path", f"{kubelet}/{target}" if target else ""),
    ]
    with pytest.raises(errors.InvalidArgument, match=message) as caught:
        validation.node_paths(fields, kubelet_dir=kubelet)
    assert str(caught.value).startswith(field) or f" {field} " in str(caught.value)


def test_a_parent_that_does_not_answer_is_named_and_the_call_returns(
    kubelet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hung_parent = str(kubelet / "pods" / "real")
    release = threading.Event()
    real_realpath = os.path.realpath

    def realpath(path: "os.PathLike[str] | str") -> str:
        if os.fspath(path) == hung_parent:
            release.wait(10)  # a stat on a hung FUSE mount
        return real_realpath(path)

    monkeypatch.setattr(validation, "RESOLVE_TIMEOUT", 0.05)
    monkeypatch.setattr(validation.os.path, "realpath", realpath)
    fields = [
        ("staging_target_path", f"{kubelet}/plugins/vol/g"),
        ("target_path", f"{hung_parent}/m"),
    ]
    try:
        with pytest.raises(errors.InvalidArgument, match="does not answer") as caught:
            validation.node_paths(fields, kubelet_dir=kubelet)
    finally:
        release.set()
    assert f"target_path '{hung_parent}'" in str(caught.value)
