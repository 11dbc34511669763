"""Bookkeeping shared by the reconcilers: cache expectations and GID reservations."""

from provisioner.controller.context import EXPECTATION_TTL_SECONDS, Expectations, GidReservations
from provisioner.gids import GidAllocator
from provisioner.storageclass import parse_parameters


class FakeClock:
    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


def test_a_cache_still_showing_the_version_we_overwrote_is_waited_for() -> None:
    clock = FakeClock()
    expectations = Expectations(clock=clock)
    expectations.wrote("apps/data", obsolete={"7", "6"})
    assert expectations.waiting("apps/data", "7") == EXPECTATION_TTL_SECONDS
    assert expectations.waiting("apps/data", "6") > 0


def test_any_other_cached_version_means_the_cache_caught_up() -> None:
    expectations = Expectations()
    expectations.wrote("apps/data", obsolete={"7"})
    assert expectations.waiting("apps/data", "9") == 0
    assert expectations.waiting("apps/data", "7") == 0  # the entry is gone for good


def test_the_wait_for_a_write_is_bounded() -> None:
    clock = FakeClock()
    expectations = Expectations(clock=clock)
    expectations.wrote("apps/data", obsolete={"7"})
    clock.now += EXPECTATION_TTL_SECONDS
    assert expectations.waiting("apps/data", "7") == 0


def test_keys_never_written_are_not_waited_for() -> None:
    assert Expectations().waiting("apps/other", "1") == 0


PARAMS = parse_parameters(
    {
        "resturl": "http://heketi:8080",
        "restauthenabled": "false",
        "gidMin": "3000",
        "gidMax": "3010",
    }
)


def test_a_retried_claim_keeps_its_reserved_gid() -> None:
    reservations = GidReservations(GidAllocator())
    first = reservations.for_claim("uid-1", PARAMS)
    assert reservations.for_claim("uid-1", PARAMS) == first
    assert reservations.for_claim("uid-2", PARAMS) != first


def test_an_existing_volumes_gid_replaces_the_reservation() -> None:
    gids = GidAllocator()
    reservations = GidReservations(gids)
    reserved = reservations.for_claim("uid-1", PARAMS)
    reservations.settle("uid-1", 3007)
    assert gids.is_used(3007) and not gids.is_used(reserved)


def test_a_cancelled_claim_frees_its_gid() -> None:
    gids = GidAllocator()
    reservations = GidReservations(gids)
    reserved = reservations.for_claim("uid-1", PARAMS)
    reservations.cancel("uid-1")
    assert not gids.is_used(reserved)


def test_a_retry_after_the_volume_exists_gets_the_volumes_gid_even_in_a_full_range() -> None:
    gids = GidAllocator()
    reservations = GidReservations(gids)
    reservations.for_claim("uid-1", PARAMS)
    reservations.settle("uid-1", 3007)
    for gid in range(3000, 3011):
        gids.mark_used(gid)  # every other GID of the range went to other claims
    assert reservations.for_claim("uid-1", PARAMS) == 3007


def test_a_claim_given_up_after_its_volume_was_made_frees_the_volumes_gid() -> None:
    gids = GidAllocator()
    reservations = GidReservations(gids)
    reservations.for_claim("uid-1", PARAMS)
    reservations.settle("uid-1", 3007)
    reservations.cancel("uid-1")
    assert not gids.is_used(3007)


def test_a_gid_handed_over_to_its_pv_stays_used() -> None:
    gids = GidAllocator()
    reservations = GidReservations(gids)
    gid = reservations.for_claim("uid-1", PARAMS)
    reservations.settle("uid-1", gid)
    reservations.hand_over("uid-1")
    reservations.cancel("uid-1")  # a late give-up no longer frees what the PV holds
    assert gids.is_used(gid)
