"""What validation accepts: the shapes real PVs, StorageClasses and kubelet send."""

from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from provisioner import errors
from provisioner.csi import csi_pb2, mount_table, mounter, validation

KUBELET = Path("/var/lib/kubelet")


@pytest.mark.parametrize(
    "host", ["gluster-1.example.com", "g1", "10.0.0.2", "node-1.storage.svc.cluster.local"]
)
def test_dns_names_and_ipv4_addresses_are_valid_servers(host: str) -> None:
    assert validation.host(host) == host


@pytest.mark.parametrize(
    "name",
    ["vol_0123abcdef", "pvc-5f0c3a52-7b1e-4a8e-9c1d-2f7e8a9b0c1d", "prefix_ns_data.db_uid", "A-1"],
)
def test_heketi_and_prefixed_volume_names_are_valid(name: str) -> None:
    assert validation.gluster_volume_name(name) == name


def test_servers_are_trimmed_deduplicated_and_keep_their_order() -> None:
    source = validation.gluster_source({"servers": " g2 , g1,g2 ", "volume": "v"})
    assert source == mounter.GlusterSource(servers=("g2", "g1"), volume="v")


def test_kubelet_paths_are_accepted() -> None:
    path = "/var/lib/kubelet/pods/1234/volumes/kubernetes.io~csi/pvc-1/mount"
    assert validation.node_path(path, field="target_path", kubelet_dir=KUBELET) == Path(path)


def test_a_sibling_directory_with_the_same_prefix_is_outside_the_kubelet_dir() -> None:
    with pytest.raises(errors.InvalidArgument, match="must be inside the kubelet directory"):
        validation.node_path("/var/lib/kubelet2/x", field="target_path", kubelet_dir=KUBELET)


@pytest.mark.parametrize(
    "flag",
    ["ro", "acl", "noatime", "nosuid", "log-level=ERROR", "attribute-timeout=0.5",
     "entry-timeout=2", "use-readdirp=no", "reader-thread-count=4", "transport=tcp"],
)  # fmt: skip
def test_allowed_mount_flags_pass_unchanged(flag: str) -> None:
    assert validation.mount_flag(flag) == flag


def test_repeated_flags_are_kept_once() -> None:
    assert validation.mount_flags(["noatime", "acl", "noatime"]) == ("noatime", "acl")


@pytest.mark.parametrize(
    ("mode", "read_only"),
    [
        (csi_pb2.VolumeCapability.AccessMode.MULTI_NODE_READER_ONLY, True),
        (csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_READER_ONLY, True),
        (csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_MULTI_WRITER, False),
        (csi_pb2.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER, False),
    ],
    ids=["ROX", "RO-single", "RWO-multi-writer", "RWX"],
)
def test_reader_only_access_modes_mount_read_only(mode: int, read_only: bool) -> None:
    capability = csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(fs_type="glusterfs"),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode),
    )
    request = validation.mount_capability(capability, present=True)
    assert request.read_only_mode is read_only


def _escape(text: str) -> str:
    return "".join(f"\\{ord(char):03o}" if char in " \t\n\\" else char for char in text)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40))
@example("a\rb")  # read as text, "\r" ended a mountinfo line (issue 21)
@example("tab\tspace \\back\nnew")
def test_octal_decoding_undoes_the_kernels_escaping(text: str) -> None:
    assert mount_table.unescape(_escape(text).encode()) == text
