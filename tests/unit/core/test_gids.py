"""The GID allocator: unique GIDs per range, shared across ranges, thread-safe."""

import threading

import pytest

from provisioner.core.gids import GidAllocator
from provisioner.errors import InvalidArgument, ResourceExhausted


def test_allocation_starts_at_the_bottom_of_the_range() -> None:
    assert GidAllocator().allocate(gid_min=2000, gid_max=3000) == 2000


def test_consecutive_allocations_are_distinct() -> None:
    gids = GidAllocator()
    assert [gids.allocate(gid_min=2000, gid_max=3000) for _ in range(3)] == [2000, 2001, 2002]


def test_used_gids_are_skipped() -> None:
    gids = GidAllocator()
    for gid in (2000, 2001, 2003):
        gids.mark_used(gid)
    assert gids.allocate(gid_min=2000, gid_max=3000) == 2002
    assert gids.allocate(gid_min=2000, gid_max=3000) == 2004


def test_a_released_gid_is_reused_once_the_range_wraps() -> None:
    gids = GidAllocator()
    first, second = (gids.allocate(gid_min=10, gid_max=11) for _ in range(2))
    gids.release(first)
    assert gids.allocate(gid_min=10, gid_max=11) == first
    assert not gids.is_used(12)
    assert gids.is_used(second)


def test_a_full_range_is_resource_exhausted_with_advice() -> None:
    gids = GidAllocator()
    gids.allocate(gid_min=5, gid_max=5)
    with pytest.raises(ResourceExhausted) as caught:
        gids.allocate(gid_min=5, gid_max=5)
    assert str(caught.value) == (
        "every GID from 5 to 5 is in use by another volume; widen the StorageClass range "
        "with 'gidMin'/'gidMax' or delete unused volumes"
    )


def test_overlapping_ranges_never_share_a_gid() -> None:
    gids = GidAllocator()
    a = gids.allocate(gid_min=2000, gid_max=2001)
    b = gids.allocate(gid_min=2001, gid_max=2002)
    c = gids.allocate(gid_min=2000, gid_max=2002)
    assert sorted((a, b, c)) == [2000, 2001, 2002]


def test_an_empty_range_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match=r"GID range 10\.\.9 is empty"):
        GidAllocator().allocate(gid_min=10, gid_max=9)


def test_marking_and_releasing_are_idempotent() -> None:
    gids = GidAllocator()
    gids.mark_used(7)
    gids.mark_used(7)
    gids.release(7)
    gids.release(7)
    assert not gids.is_used(7)


def test_concurrent_allocations_are_unique() -> None:
    gids = GidAllocator()
    results: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [gids.allocate(gid_min=2000, gid_max=2_000_000) for _ in range(200)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == len(set(results)) == 1600


def test_allocation_stays_fast_with_many_gids_in_use() -> None:
    gids = GidAllocator()
    for gid in range(2000, 12000):
        gids.mark_used(gid)
    assert [gids.allocate(gid_min=2000, gid_max=20000) for _ in range(2)] == [12000, 12001]
