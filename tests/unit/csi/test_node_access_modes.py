"""How many target paths of one node may hold a volume, by access mode; and the order in
which NodePublishVolume and NodeGetVolumeStats check their fields (csi-sanity's specs)."""

import dataclasses
from pathlib import Path

import pytest

from provisioner import errors
from provisioner.csi import csi_pb2
from provisioner.csi.node import NodeConfig, NodeService
from provisioner.csi.recovery import StageRecords
from tests.unit.csi.test_node import CONTEXT, FakeMounter, Mode, capability, entry, stage

MULTI_TARGET_MODES = [
    Mode.SINGLE_NODE_MULTI_WRITER,
    Mode.SINGLE_NODE_WRITER,
    Mode.SINGLE_NODE_READER_ONLY,
    Mode.MULTI_NODE_READER_ONLY,
    Mode.MULTI_NODE_SINGLE_WRITER,
    Mode.MULTI_NODE_MULTI_WRITER,
]


@pytest.fixture
def fake() -> FakeMounter:
    return FakeMounter()


@pytest.fixture
def node(tmp_path: Path, fake: FakeMounter) -> NodeService:
    config = NodeConfig(node_id="n1", kubelet_dir=tmp_path, mount_log_dir=tmp_path / "logs")
    return NodeService(config=config, mounter=fake, records=StageRecords(tmp_path / "state"))


@pytest.fixture
def staging(tmp_path: Path) -> Path:
    (tmp_path / "plugins").mkdir()
    return tmp_path / "plugins" / "globalmount"


def pod_target(tmp_path: Path, pod: str) -> Path:
    path = tmp_path / "pods" / pod / "mount"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def publish(node: NodeService, staging: Path, target: Path, mode: int) -> None:
    node.NodePublishVolume(
        csi_pb2.NodePublishVolumeRequest(
            volume_id="v1", staging_target_path=str(staging), target_path=str(target),
            volume_capability=capability(mode), volume_context=CONTEXT,
        ),
        None,
    )  # fmt: skip


def test_a_single_workload_volume_is_not_published_at_a_second_target_on_the_node(
    node: NodeService, fake: FakeMounter, staging: Path, tmp_path: Path
) -> None:
    first, second = pod_target(tmp_path, "a"), pod_target(tmp_path, "b")
    stage(node, staging, mode=Mode.SINGLE_NODE_SINGLE_WRITER)
    publish(node, staging, first, Mode.SINGLE_NODE_SINGLE_WRITER)
    with pytest.raises(errors.FailedPrecondition) as raised:
        publish(node, staging, second, Mode.SINGLE_NODE_SINGLE_WRITER)
    assert str(raised.value) == (
        f"volume v1 has access mode SINGLE_NODE_SINGLE_WRITER and is already published on "
        f"this node at {first}; unpublish it there before publishing it at {second}"
    )
    assert second not in fake.mounted and not second.exists()


def test_a_single_workload_volume_publishes_again_at_the_same_target(
    node: NodeService, fake: FakeMounter, staging: Path, tmp_path: Path
) -> None:
    target = pod_target(tmp_path, "a")
    stage(node, staging, mode=Mode.SINGLE_NODE_SINGLE_WRITER)
    publish(node, staging, target, Mode.SINGLE_NODE_SINGLE_WRITER)
    publish(node, staging, target, Mode.SINGLE_NODE_SINGLE_WRITER)
    assert fake.calls.count(f"bind {staging} {target}") == 1


def test_a_single_workload_volume_moves_to_a_new_target_once_the_old_is_unpublished(
    node: NodeService, fake: FakeMounter, staging: Path, tmp_path: Path
) -> None:
    first, second = pod_target(tmp_path, "a"), pod_target(tmp_path, "b")
    stage(node, staging, mode=Mode.SINGLE_NODE_SINGLE_WRITER)
    publish(node, staging, first, Mode.SINGLE_NODE_SINGLE_WRITER)
    node.NodeUnpublishVolume(
        csi_pb2.NodeUnpublishVolumeRequest(volume_id="v1", target_path=str(first)), None
    )
    publish(node, staging, second, Mode.SINGLE_NODE_SINGLE_WRITER)
    assert second in fake.mounted


def test_the_staged_single_workload_mode_holds_when_a_publish_names_another_mode(
    node: NodeService, staging: Path, tmp_path: Path
) -> None:
    stage(node, staging, mode=Mode.SINGLE_NODE_SINGLE_WRITER)
    publish(node, staging, pod_target(tmp_path, "a"), Mode.SINGLE_NODE_SINGLE_WRITER)
    with pytest.raises(errors.FailedPrecondition, match="SINGLE_NODE_SINGLE_WRITER"):
        publish(node, staging, pod_target(tmp_path, "b"), Mode.SINGLE_NODE_MULTI_WRITER)


def test_a_publication_found_in_the_mount_table_counts_after_a_plugin_restart(
    fake: FakeMounter, staging: Path, tmp_path: Path
) -> None:
    first = pod_target(tmp_path, "a")
    config = NodeConfig(node_id="n1", kubelet_dir=tmp_path, mount_log_dir=tmp_path / "logs")
    before = NodeService(config=config, mounter=fake, records=StageRecords(tmp_path / "state"))
    stage(before, staging, mode=Mode.SINGLE_NODE_SINGLE_WRITER)
    publish(before, staging, first, Mode.SINGLE_NODE_SINGLE_WRITER)
    after = NodeService(config=config, mounter=fake, records=StageRecords(tmp_path / "state"))
    with pytest.raises(errors.FailedPrecondition, match=f"published on this node at {first}"):
        publish(after, staging, pod_target(tmp_path, "b"), Mode.SINGLE_NODE_SINGLE_WRITER)


def test_a_subpath_bind_inside_the_pod_is_not_a_second_publication(
    node: NodeService, fake: FakeMounter, staging: Path, tmp_path: Path
) -> None:
    stage(node, staging, mode=Mode.SINGLE_NODE_SINGLE_WRITER)
    subpath = tmp_path / "pods" / "a" / "volume-subpaths" / "v" / "c" / "0"
    fake.mounted[subpath] = dataclasses.replace(entry(subpath, "g1:/vol_1"), root="/data")
    publish(node, staging, pod_target(tmp_path, "a"), Mode.SINGLE_NODE_SINGLE_WRITER)


@pytest.mark.parametrize("mode", MULTI_TARGET_MODES, ids=[Mode.Name(m) for m in MULTI_TARGET_MODES])
def test_other_access_modes_publish_at_several_targets_of_the_node(
    node: NodeService, fake: FakeMounter, staging: Path, tmp_path: Path, mode: int
) -> None:
    stage(node, staging, mode=mode)
    targets = [pod_target(tmp_path, pod) for pod in ("a", "b", "c")]
    for target in targets:
        publish(node, staging, target, mode)
    assert all(target in fake.mounted for target in targets)


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"volume_id": "v1"}, "target_path is required"),
        ({"volume_id": "v1", "target_path": "/x/target"}, "volume_capability is required"),
    ],
    ids=["only-a-volume-id", "no-capability-and-no-staging-path"],
)
def test_publish_without_a_required_field_is_invalid_argument_before_the_staging_check(
    node: NodeService, request_fields: dict[str, str], message: str
) -> None:
    with pytest.raises(errors.InvalidArgument, match=f"^{message}$"):
        node.NodePublishVolume(csi_pb2.NodePublishVolumeRequest(**request_fields), None)


def test_publish_with_every_required_field_but_no_staging_path_is_failed_precondition(
    node: NodeService, tmp_path: Path
) -> None:
    request = csi_pb2.NodePublishVolumeRequest(
        volume_id="v1", target_path=str(pod_target(tmp_path, "a")),
        volume_capability=capability(),
    )  # fmt: skip
    with pytest.raises(errors.FailedPrecondition, match="call NodeStageVolume first"):
        node.NodePublishVolume(request, None)


@pytest.mark.parametrize(
    ("volume_path", "error"),
    [
        ("", errors.InvalidArgument),
        ("some/path", errors.NotFound),
        ("relative", errors.NotFound),
        ("/outside/the/kubelet/dir", errors.InvalidArgument),
        ("{kubelet}/pods/gone/mount", errors.NotFound),
    ],
    ids=["empty", "relative-csi-sanity", "relative-one-part", "absolute-outside", "missing"],
)
def test_stats_of_a_path_without_a_volume(
    node: NodeService, tmp_path: Path, volume_path: str, error: type[Exception]
) -> None:
    request = csi_pb2.NodeGetVolumeStatsRequest(
        volume_id="v1", volume_path=volume_path.format(kubelet=tmp_path)
    )
    with pytest.raises(error):
        node.NodeGetVolumeStats(request, None)
