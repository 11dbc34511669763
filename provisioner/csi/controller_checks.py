"""What the CSI Controller service checks: capacity ranges, capabilities, sources, and
whether an existing volume matches a repeated CreateVolume."""

from collections.abc import Sequence
from dataclasses import dataclass

from provisioner import errors
from provisioner.csi import csi_pb2, validation
from provisioner.heketi.types import Volume, describe_durability, same_durability
from provisioner.storageclass import ProvisioningParams
from provisioner.volumes import GIB, size_gib

__all__ = [
    "WantedCapacity",
    "check_capabilities",
    "check_clone_capacity",
    "check_compatible",
    "clone_source",
    "wanted_capacity",
]


@dataclass(frozen=True)
class WantedCapacity:
    """A validated CSI capacity range and the whole GiB Heketi will be asked for."""

    required_bytes: int
    limit_bytes: int
    gib: int

    def fits(self, volume: Volume) -> bool:
        have = volume.size_gib * GIB
        return have >= self.required_bytes and (not self.limit_bytes or have <= self.limit_bytes)

    def describe(self) -> str:
        return f"required_bytes={self.required_bytes}, limit_bytes={self.limit_bytes}"


def wanted_capacity(capacity: csi_pb2.CapacityRange | None) -> WantedCapacity:
    """Check a capacity range; no range (or 0/0) means the smallest volume, 1 GiB."""
    required = capacity.required_bytes if capacity is not None else 0
    limit = capacity.limit_bytes if capacity is not None else 0
    if required < 0:
        raise errors.InvalidArgument("capacity_range.required_bytes must not be negative")
    if limit < 0:
        raise errors.InvalidArgument("capacity_range.limit_bytes must not be negative")
    if limit and required > limit:
        raise errors.InvalidArgument(
            f"capacity_range.required_bytes ({required}) must not exceed "
            f"capacity_range.limit_bytes ({limit})"
        )
    gib = size_gib(required)
    if limit and gib * GIB > limit:
        raise errors.OutOfRange(
            f"Heketi allocates whole GiB: the smallest volume of at least {required} bytes is "
            f"{gib} GiB ({gib * GIB} bytes), more than capacity_range.limit_bytes ({limit})"
        )
    return WantedCapacity(required_bytes=required, limit_bytes=limit, gib=gib)


def check_capabilities(capabilities: Sequence[csi_pb2.VolumeCapability]) -> None:
    """Every capability must be a supported filesystem one (INVALID_ARGUMENT otherwise)."""
    if not capabilities:
        raise errors.InvalidArgument("volume_capabilities is required")
    for capability in capabilities:
        validation.mount_capability(capability, present=True)


def clone_source(request: csi_pb2.CreateVolumeRequest) -> str | None:
    """The id of the volume to clone (`volume_content_source.volume`), or None; a snapshot
    source or `mutable_parameters` are refused (neither is supported)."""
    if request.mutable_parameters:
        raise errors.InvalidArgument("mutable_parameters are not supported by this plugin")
    if not request.HasField("volume_content_source"):
        return None
    source = request.volume_content_source
    if not source.HasField("volume"):
        raise errors.InvalidArgument(
            "volume_content_source: only a volume can be cloned; this plugin has no snapshots"
        )
    return validation.required(source.volume.volume_id, "volume_content_source.volume.volume_id")


def check_clone_capacity(wanted: WantedCapacity, source: Volume) -> None:
    """A clone is at least as big as its source (OUT_OF_RANGE otherwise)."""
    have = source.size_gib * GIB
    if wanted.limit_bytes and have > wanted.limit_bytes:
        raise errors.OutOfRange(
            f"volume {source.id} to clone has {source.size_gib} GiB, more than "
            f"capacity_range.limit_bytes ({wanted.limit_bytes}); a clone cannot be smaller"
        )
    if wanted.required_bytes and wanted.gib < source.size_gib:
        raise errors.OutOfRange(
            f"volume {source.id} to clone has {source.size_gib} GiB, more than "
            f"capacity_range.required_bytes ({wanted.required_bytes}); a clone cannot be smaller"
        )


def check_compatible(
    name: str, volume: Volume, wanted: WantedCapacity, params: ProvisioningParams
) -> None:
    """An existing volume of this name must match the request (else ALREADY_EXISTS)."""
    if not wanted.fits(volume):
        raise errors.AlreadyExists(
            f"volume {name!r} already exists with {volume.size_gib} GiB, outside the requested "
            f"capacity range ({wanted.describe()})"
        )
    if not same_durability(volume.durability, params.durability):
        raise errors.AlreadyExists(
            f"volume {name!r} already exists as {describe_durability(volume.durability)}, "
            f"the request asks for {describe_durability(params.durability)}"
        )
