"""The Heketi test server's brick placer, after Heketi v10.4.1's (apps/glusterfs).

What it keeps of Heketi's, rule by rule (file names are apps/glusterfs/):

* brick sets (`volume_durability_*.go` BrickSizeGenerator, `volume_entry_allocate.go`
  allocBricksInCluster): first one set of bricks of the whole size; when that finds
  no room, twice as many sets of half the size, down to the 1 GiB brick minimum
  (bricks over 4 TiB are split at once), at most 32 bricks per volume;
* devices (`brick_allocate.go` ClusterDeviceSource): online devices of online nodes;
  the bricks of a set on distinct nodes (unless the topology is one host, as in the
  gluster mode);
* space (`device_entry.go` SpaceNeeded, StorageCheck): a brick of `amount` KiB takes
  amount times the snapshot factor rounded up to the 4 MiB extent, plus 0.5 % thin-pool
  metadata (at most 16 GiB) rounded up likewise; the device needs more free space
  than that;
* filters (`volume_entry_allocate.go` generateDeviceFilter, `zone_filter.go`,
  `tag_matching_rule.go`): strict zone checking refuses a device in a zone the set
  already uses; a tag rule refuses devices whose merged tags do not match; a bad
  rule fails the request with "Invalid tag matching rule: ...";
* arbiter (`placer_arbiter.go`): the third brick of each set is placed first, sized
  by discountBrickSize, on a device whose `arbiter` tag is `required` (preferred) or
  `supported`; data bricks go on `disabled` (preferred) or `supported` devices.

Where Heketi picks among the devices that qualify by a hash ring of a random id,
this placer takes the one with the most free space: which devices qualify is
Heketi's rule, the choice among them is not observable through the API.
"""

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from provisioner.heketi.placement import (
    ARBITER_INDEX,
    InvalidTagRule,
    Placement,
    TagRule,
    merged_tags,
)

KIB_PER_GIB = 1024 * 1024
#: limits.go: BrickMinSize 1 GiB, BrickMaxSize 4 TiB, BrickMaxNum 32.
BRICK_MIN_KIB = KIB_PER_GIB
BRICK_MAX_KIB = 4 * 1024 * KIB_PER_GIB
BRICK_MAX_COUNT = 32
#: mockexec / LVM: 4 MiB extents (KiB).
EXTENT_KIB = 4096
#: device_entry.go maxPoolMetadataSizeMb (16 GiB, in KiB).
MAX_POOL_METADATA_KIB = 16 * KIB_PER_GIB
#: placer_arbiter.go discountBrickSize: the smallest arbiter brick, the minimum XFS
#: file system with 4 KiB blocks (16 MiB, in KiB).
ARBITER_MIN_BRICK_KIB = 16 * 1024
#: tags.go: the tag that says whether a device may hold arbiter or data bricks.
ARBITER_TAG = "arbiter"
ARBITER_REQUIRED = "required"
ARBITER_SUPPORTED = "supported"
ARBITER_DISABLED = "disabled"
#: Which arbiter roles may take which brick, preferred first (placer_arbiter.go Scanner).
_ARBITER_ROLES = (ARBITER_REQUIRED, ARBITER_SUPPORTED)
_DATA_ROLES = (ARBITER_DISABLED, ARBITER_SUPPORTED)


def arbiter_brick_kib(data_brick_kib: int, average_file_kib: int) -> int:
    """discountBrickSize: one KiB of arbiter brick per average file of data, at least
    16 MiB; `ValueError` with Heketi's message when a file outgrows the brick."""
    if data_brick_kib < average_file_kib:
        raise ValueError(
            f"Average file size ({average_file_kib}) is greater than Brick size ({data_brick_kib})"
        )
    return max(data_brick_kib // average_file_kib, ARBITER_MIN_BRICK_KIB)


def arbiter_role(tags: Mapping[str, str]) -> str:
    """ArbiterTag: `required`, `supported` (the default, also for unknown values) or
    `disabled`."""
    value = tags.get(ARBITER_TAG, "")
    known = (ARBITER_REQUIRED, ARBITER_SUPPORTED, ARBITER_DISABLED)
    return value if value in known else ARBITER_SUPPORTED


class PlacementError(Exception):
    """A placement that fails for a reason other than space; Heketi's message."""


@dataclass(frozen=True)
class Slot:
    """One brick to place: its position in the set and its size."""

    index: int
    amount_kib: int
    reserve_kib: int


def space_needed(amount_kib: int, snap_factor: float) -> int:
    """SpaceNeeded(...).Total: thin pool plus its metadata, each extent-aligned."""
    pool = _aligned(int(amount_kib * snap_factor))
    return pool + _aligned(min(int(pool * 0.005), MAX_POOL_METADATA_KIB))


def _aligned(kib: int) -> int:
    return math.ceil(kib / EXTENT_KIB) * EXTENT_KIB


def brick_sets(size_kib: int, data: int = 1) -> Iterator[tuple[int, int]]:
    """BrickSizeGenerator: (sets, KiB per brick) to try in turn, fewest sets first;
    `data` bricks of a disperse set share a set's size."""
    sets = 1
    while size_kib // sets // data >= BRICK_MIN_KIB:
        if size_kib // sets // data <= BRICK_MAX_KIB:
            yield sets, size_kib // sets // data
        sets *= 2


def set_slots(
    placement: Placement, set_size: int, brick_kib: int, snap_factor: float
) -> list[Slot]:
    """The bricks of one set in the order Heketi places them (the arbiter's first)."""
    order = range(set_size - 1, -1, -1) if placement.arbiter else range(set_size)
    slots = []
    for index in order:
        amount = brick_kib
        if placement.arbiter and index == ARBITER_INDEX:
            try:
                amount = arbiter_brick_kib(brick_kib, placement.average_file_kib)
            except ValueError as exc:
                raise PlacementError(str(exc)) from None
        slots.append(Slot(index, amount, space_needed(amount, snap_factor)))
    return slots


def tag_rule(placement: Placement) -> TagRule | None:
    try:
        return placement.tag_rule()
    except InvalidTagRule as exc:
        raise PlacementError(f"Invalid tag matching rule: {exc}") from None


def choose(
    nodes: list[Any],
    slots: list[Slot],
    *,
    placement: Placement,
    rule: TagRule | None,
    free: dict[str, int],
    distinct_nodes: bool,
) -> list[tuple[Slot, Any, Any]] | None:
    """Devices for one brick set in slot order, or None when it does not fit."""
    chosen: list[tuple[Slot, Any, Any]] = []
    for slot in slots:
        allowed = _device_test(placement, slot, rule, chosen, distinct_nodes)
        candidates = [
            (n, d)
            for n in nodes
            if n.state == "online"
            for d in n.devices
            if d.state == "online" and free[d.id] > slot.reserve_kib and allowed(n, d)
        ]
        if not candidates:
            return None
        node, device = max(candidates, key=_preference(placement, slot, free))
        free[device.id] -= slot.reserve_kib
        chosen.append((slot, node, device))
    return sorted(chosen, key=lambda c: c[0].index)


def _device_test(
    placement: Placement,
    slot: Slot,
    rule: TagRule | None,
    chosen: list[tuple[Slot, Any, Any]],
    distinct_nodes: bool,
) -> Callable[[Any, Any], bool]:
    used_nodes = {n.id for _, n, _ in chosen}
    used_zones = {n.zone for _, n, _ in chosen}
    roles = _roles(placement, slot)

    def allowed(node: Any, device: Any) -> bool:
        tags = merged_tags(node.tags, device.tags)
        return (
            not (distinct_nodes and node.id in used_nodes)
            and not (placement.zone_strict and node.zone in used_zones)
            and (rule is None or rule.matches(tags))
            and (roles is None or arbiter_role(tags) in roles)
        )

    return allowed


def _roles(placement: Placement, slot: Slot) -> tuple[str, ...] | None:
    if not placement.arbiter:
        return None
    return _ARBITER_ROLES if slot.index == ARBITER_INDEX else _DATA_ROLES


def _preference(
    placement: Placement, slot: Slot, free: dict[str, int]
) -> Callable[[tuple[Any, Any]], tuple[int, int]]:
    """The arbiter ring before the shared one (required / disabled devices first),
    then the most free space."""
    roles = _roles(placement, slot)

    def key(candidate: tuple[Any, Any]) -> tuple[int, int]:
        node, device = candidate
        role = arbiter_role(merged_tags(node.tags, device.tags))
        first = 1 if roles is not None and role == roles[0] else 0
        return first, free[device.id]

    return key
