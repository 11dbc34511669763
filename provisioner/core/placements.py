"""What the provisioner concludes from a class's Heketi placement options
(`heketi.placement`): the raw space a volume of the class takes, and whether Heketi's
"No space" for it is for good.
"""

from typing import Protocol

from provisioner import errors
from provisioner.core.storageclass import ProvisioningParams
from provisioner.heketi.placement import ARBITER_INDEX, InvalidTagRule, TagRule, placement_of
from provisioner.heketi.types import VolumeCreateRequest


class PlacementImpossible(errors.Unsatisfiable):
    """Heketi found no space for a volume whose placement options (a device tag rule,
    strict zones) fewer nodes or zones of the topology satisfy than one brick set
    needs: freeing space cannot help."""


class PlacementDomains(Protocol):
    """The `HeketiClient` read this needs."""

    def placement_domains(
        self,
        clusters: tuple[str, ...] = (),
        *,
        tag_rule: TagRule | None = None,
        zones: bool = False,
    ) -> int: ...


def raw_space_factor(params: ProvisioningParams) -> float:
    """Raw device GiB one GiB of volume consumes (copies, parity, snapshot reserve);
    an arbiter volume's third brick of each set holds a KiB per average file
    (`user.heketi.average-file-size`, Heketi's discountBrickSize), not a copy."""
    durability = params.durability
    placement = placement_of(params.volume_options)
    bricks = float(durability.bricks_per_set)
    if placement.arbiter and durability.bricks_per_set > ARBITER_INDEX:
        bricks += 1 / placement.average_file_kib - 1
    share = durability.data if durability.type == "disperse" else 1
    return bricks / share * (params.snap_factor or 1.0)


def placement_problem(client: PlacementDomains, request: VolumeCreateRequest) -> str | None:
    """Why no topology change short of more (tagged) nodes or zones can place the
    request's brick sets, or None when its options do not restrict placement or the
    topology has enough nodes (zones) with devices they allow."""
    placement = placement_of(request.gluster_volume_options)
    try:
        rule = placement.tag_rule()
    except InvalidTagRule:
        return None  # Heketi says so itself, before any "No space"
    if not placement.constrained:
        return None
    needed = request.durability.bricks_per_set
    found = client.placement_domains(request.clusters, tag_rule=rule, zones=placement.zone_strict)
    if found >= needed:
        return None
    where = "zones" if placement.zone_strict else "nodes"
    devices = f"devices tagged {rule}" if rule else "online devices"
    return (
        f"a brick set needs {needed} {where} with {devices}, no cluster has more than "
        f"{found}; tag more devices or add nodes, or use a class that asks for less"
    )
