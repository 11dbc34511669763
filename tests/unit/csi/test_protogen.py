"""The committed CSI stubs match proto/csi.proto."""

from pathlib import Path

import pytest

from provisioner.csi import csi_pb2, protogen


@pytest.mark.parametrize("name", protogen.GENERATED)
def test_committed_stub_matches_a_fresh_generation(name: str, tmp_path: Path) -> None:
    protogen.generate(tmp_path)
    fresh = protogen.normalise((tmp_path / name).read_text(encoding="utf-8"))
    committed = protogen.normalise((protogen.PACKAGE_DIR / name).read_text(encoding="utf-8"))
    assert committed == fresh, f"provisioner/csi/{name} is stale: run `make proto` and commit"


def test_grpc_stub_imports_messages_from_the_package(tmp_path: Path) -> None:
    protogen.generate(tmp_path)
    text = (tmp_path / "csi_pb2_grpc.py").read_text(encoding="utf-8")
    assert "from provisioner.csi import csi_pb2 as csi__pb2" in text
    assert "\nimport csi_pb2" not in text


def test_normalise_masks_only_generator_versions() -> None:
    text = "GRPC_GENERATED_VERSION = '1.85.1'\nclass NodeStub:\n"
    assert protogen.normalise(text) == "<version stamp>\nclass NodeStub:\n"


def test_stubs_use_the_spec_package_and_field_numbers() -> None:
    assert csi_pb2.DESCRIPTOR.package == "csi.v1"
    stage = csi_pb2.NodeStageVolumeRequest.DESCRIPTOR.fields_by_name
    assert stage["staging_target_path"].number == 3
    assert stage["volume_context"].number == 6
    publish = csi_pb2.NodePublishVolumeRequest.DESCRIPTOR.fields_by_name
    assert publish["target_path"].number == 4
    assert publish["readonly"].number == 6
    assert csi_pb2.NodeServiceCapability.RPC.SINGLE_NODE_MULTI_WRITER == 5


def test_secret_fields_carry_the_csi_secret_option() -> None:
    field = csi_pb2.NodeStageVolumeRequest.DESCRIPTOR.fields_by_name["secrets"]
    assert field.GetOptions().Extensions[csi_pb2.csi_secret] is True
