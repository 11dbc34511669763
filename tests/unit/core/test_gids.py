"""The GID pool: unique GIDs per range, shared across ranges, counted by holder, thread-safe."""

import itertools
import threading

import pytest

from provisioner.core.gids import GidPool, GidPools
from provisioner.errors import InvalidArgument, ResourceExhausted
from tests.unit.core.gid_probe import gid_is_free

_names = (("claim", f"uid-{n}") for n in itertools.count())


def _allocate(pool: GidPool, gid_min: int = 2000, gid_max: int = 3000) -> int:
    return pool.allocate(next(_names), gid_min=gid_min, gid_max=gid_max)


def test_allocation_starts_at_the_bottom_of_the_range() -> None:
    assert _allocate(GidPool()) == 2000


def test_consecutive_allocations_are_distinct() -> None:
    pool = GidPool()
    assert [_allocate(pool) for _ in range(3)] == [2000, 2001, 2002]


def test_a_holder_asking_again_keeps_its_gid() -> None:
    pool = GidPool()
    first = pool.allocate(("claim", "a"), gid_min=2000, gid_max=3000)
    assert pool.allocate(("claim", "a"), gid_min=2000, gid_max=3000) == first
    assert pool.allocate(("claim", "b"), gid_min=2000, gid_max=3000) != first


def test_held_gids_are_skipped() -> None:
    pool = GidPool()
    for gid in (2000, 2001, 2003):
        pool.hold(("pv", str(gid)), gid)
    assert _allocate(pool) == 2002
    assert _allocate(pool) == 2004


def test_a_dropped_gid_is_reused_once_the_range_wraps() -> None:
    pool = GidPool()
    pool.allocate(("claim", "first"), gid_min=10, gid_max=11)
    second = pool.allocate(("claim", "second"), gid_min=10, gid_max=11)
    pool.drop(("claim", "first"))
    assert pool.allocate(("claim", "third"), gid_min=10, gid_max=11) == 10
    assert not gid_is_free(pool, second)


def test_a_gid_two_holders_hold_stays_used_until_both_let_go() -> None:
    pool = GidPool()
    pool.hold(("pv", "in-tree"), 2000)
    pool.hold(("pv", "ours"), 2000)
    pool.drop(("pv", "in-tree"))
    assert not gid_is_free(pool, 2000)
    pool.drop(("pv", "ours"))
    assert gid_is_free(pool, 2000)


def test_a_holder_moving_to_another_gid_frees_the_one_it_held() -> None:
    pool = GidPool()
    pool.hold(("claim", "a"), 2000)
    assert pool.hold(("claim", "a"), 2001) == 2001
    assert gid_is_free(pool, 2000) and not gid_is_free(pool, 2001)


def test_a_holder_that_keeps_its_gid_ignores_another() -> None:
    pool = GidPool()
    pool.hold(("claim", "a"), 2000)
    assert pool.hold(("claim", "a"), 2001, replace=False) == 2000
    assert gid_is_free(pool, 2001)


def test_holding_exactly_a_listing_lets_go_of_what_it_no_longer_shows() -> None:
    pool = GidPool()
    pool.hold_exactly("listed", {"v1": 2000, "v2": 2001})
    pool.hold(("created", "v2"), 2001)
    pool.hold_exactly("listed", {"v3": 2002})
    assert gid_is_free(pool, 2000)
    assert not gid_is_free(pool, 2001)  # still held by another kind of holder
    assert not gid_is_free(pool, 2002)


def test_a_full_range_is_resource_exhausted_with_advice() -> None:
    pool = GidPool()
    _allocate(pool, 5, 5)
    with pytest.raises(ResourceExhausted) as caught:
        _allocate(pool, 5, 5)
    assert str(caught.value) == (
        "every GID from 5 to 5 is in use by another volume; widen the StorageClass range "
        "with 'gidMin'/'gidMax' or delete unused volumes"
    )


def test_overlapping_ranges_never_share_a_gid() -> None:
    pool = GidPool()
    a = _allocate(pool, 2000, 2001)
    b = _allocate(pool, 2001, 2002)
    c = _allocate(pool, 2000, 2002)
    assert sorted((a, b, c)) == [2000, 2001, 2002]


def test_an_empty_range_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match=r"GID range 10\.\.9 is empty"):
        _allocate(GidPool(), 10, 9)


def test_holding_and_dropping_are_idempotent() -> None:
    pool = GidPool()
    pool.hold(("pv", "a"), 7)
    pool.hold(("pv", "a"), 7)
    pool.drop(("pv", "a"))
    pool.drop(("pv", "a"))
    assert gid_is_free(pool, 7)


def test_concurrent_allocations_are_unique() -> None:
    pool = GidPool()
    results: list[int] = []
    lock = threading.Lock()

    def work(worker: int) -> None:
        mine = [
            pool.allocate(("claim", f"{worker}-{n}"), gid_min=2000, gid_max=2_000_000)
            for n in range(200)
        ]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == len(set(results)) == 1600


def test_the_first_allocation_passes_the_gids_held_at_the_bottom_of_the_range() -> None:
    pool = GidPool()
    for gid in range(2000, 12000):
        pool.hold(("pv", str(gid)), gid)
    assert [_allocate(pool, 2000, 20000) for _ in range(2)] == [12000, 12001]


class _CountedCounts(dict[int, int]):
    """The pool's GID counts, counting how often a candidate GID is probed."""

    probes = 0

    def __contains__(self, gid: object) -> bool:
        self.probes += 1
        return super().__contains__(gid)


def _probes_of_next_allocation(reservations: int) -> int:
    pool = GidPool()
    for _ in range(reservations):
        _allocate(pool, 2000, 2_000_000)
    counted = _CountedCounts(pool._counts)  # the pool's own state, now counted
    pool._counts = counted
    _allocate(pool, 2000, 2_000_000)
    return counted.probes


def test_allocation_cost_does_not_grow_with_the_number_of_reservations() -> None:
    # Work counted, not timed: candidate GIDs probed by one more allocation.
    assert _probes_of_next_allocation(10) == _probes_of_next_allocation(20_000) == 1


def test_each_heketi_url_has_its_own_pool_kept_across_calls() -> None:
    pools = GidPools()
    a = pools.pool("http://heketi-a:8080")
    assert pools.pool("http://heketi-a:8080") is a
    assert pools.pool("http://heketi-b:8080") is not a
    _allocate(a)
    assert _allocate(pools.pool("http://heketi-a:8080")) == 2001
    assert _allocate(pools.pool("http://heketi-b:8080")) == 2000
