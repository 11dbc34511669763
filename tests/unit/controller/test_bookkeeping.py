"""Bookkeeping shared by the reconcilers: cache expectations and GID reservations."""

import json
from typing import Any

import pytest

from provisioner.controller.gid_reservations import GidReservations
from provisioner.controller.writes import EXPECTATION_TTL_SECONDS, Expectations
from provisioner.core import annotations
from provisioner.core.gids import GidPool
from provisioner.core.storageclass import parse_parameters
from tests.unit.core.gid_probe import gid_is_free


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
    reservations = GidReservations(GidPool())
    first = reservations.for_claim("uid-1", PARAMS)
    assert reservations.for_claim("uid-1", PARAMS) == first
    assert reservations.for_claim("uid-2", PARAMS) != first


def test_an_existing_volumes_gid_replaces_the_reservation() -> None:
    gids = GidPool()
    reservations = GidReservations(gids)
    reserved = reservations.for_claim("uid-1", PARAMS)
    reservations.settle("uid-1", 3007)
    assert not gid_is_free(gids, 3007) and gid_is_free(gids, reserved)


def test_a_cancelled_claim_frees_its_gid() -> None:
    gids = GidPool()
    reservations = GidReservations(gids)
    reserved = reservations.for_claim("uid-1", PARAMS)
    reservations.cancel("uid-1")
    assert gid_is_free(gids, reserved)


def test_a_retry_after_the_volume_exists_gets_the_volumes_gid_even_in_a_full_range() -> None:
    gids = GidPool()
    reservations = GidReservations(gids)
    reservations.for_claim("uid-1", PARAMS)
    reservations.settle("uid-1", 3007)
    for gid in range(3000, 3011):
        gids.hold(("other", str(gid)), gid)  # every other GID of the range went to other claims
    assert reservations.for_claim("uid-1", PARAMS) == 3007


def test_a_claim_given_up_after_its_volume_was_made_frees_the_volumes_gid() -> None:
    gids = GidPool()
    reservations = GidReservations(gids)
    reservations.for_claim("uid-1", PARAMS)
    reservations.settle("uid-1", 3007)
    reservations.cancel("uid-1")
    assert gid_is_free(gids, 3007)


def test_a_gid_handed_over_to_its_pv_stays_used() -> None:
    gids = GidPool()
    reservations = GidReservations(gids)
    gid = reservations.for_claim("uid-1", PARAMS)
    reservations.settle("uid-1", gid)
    reservations.hand_over("uid-1", _pv("pvc-uid-1", gid))
    reservations.cancel("uid-1")  # a late give-up no longer frees what the PV holds
    assert not gid_is_free(gids, gid)


def _pv(name: str, gid: int | None, *, policy: str = "Delete") -> dict[str, Any]:
    ann = {annotations.ANN_GID: str(gid)} if gid is not None else {}
    return {
        "metadata": {"name": name, "uid": f"uid-of-{name}", "annotations": ann},
        "spec": {"persistentVolumeReclaimPolicy": policy},
    }


def test_a_gid_two_pvs_share_stays_used_until_both_are_gone() -> None:
    gids = GidPool()
    reservations = GidReservations(gids)
    ours, in_tree = _pv("pvc-1", 3000), _pv("in-tree", 3000)
    reservations.observe_pv(ours)
    reservations.observe_pv(in_tree)
    reservations.pv_deleted(ours)
    assert not gid_is_free(gids, 3000)
    reservations.pv_deleted(in_tree)
    assert gid_is_free(gids, 3000)


def test_a_pv_seen_again_is_counted_once() -> None:
    gids = GidPool()
    reservations = GidReservations(gids)
    pv = _pv("pvc-1", 3000)
    for _ in range(3):
        reservations.observe_pv(pv)  # add, then updates
    reservations.pv_deleted(pv)
    assert gid_is_free(gids, 3000)


def test_a_pv_whose_gid_changes_frees_the_old_one() -> None:
    gids = GidPool()
    reservations = GidReservations(gids)
    reservations.observe_pv(_pv("static", 3000))
    reservations.observe_pv(_pv("static", 3001))
    assert gid_is_free(gids, 3000) and not gid_is_free(gids, 3001)
    reservations.observe_pv(_pv("static", None))
    assert gid_is_free(gids, 3001)


@pytest.mark.parametrize(
    ("policy", "still_used"),
    [("Delete", False), ("Retain", True), ("Recycle", True)],
    ids=["delete-frees", "retain-keeps", "recycle-keeps"],
)
def test_a_deleted_pv_frees_its_gid_only_when_its_volume_went_with_it(
    policy: str, still_used: bool
) -> None:
    gids = GidPool()
    reservations = GidReservations(gids)
    pv = _pv("pvc-1", 3000, policy=policy)
    reservations.observe_pv(pv)
    reservations.pv_deleted(pv)
    assert gid_is_free(gids, 3000) is not still_used


def test_a_claim_handing_its_gid_to_a_pv_another_pv_shares_keeps_it_used() -> None:
    gids = GidPool()
    reservations = GidReservations(gids)
    reservations.observe_pv(_pv("in-tree", 3005))
    reservations.settle("uid-1", 3005)  # its volume was made with that GID
    reservations.hand_over("uid-1", _pv("pvc-uid-1", 3005))
    reservations.pv_deleted(_pv("in-tree", 3005))
    assert not gid_is_free(gids, 3005)
    assert reservations.for_claim("uid-2", PARAMS) != 3005


def _claim(uid: str, *, gid: int | None, finalizer: bool, bound: bool = False) -> dict[str, Any]:
    ann = {annotations.ANN_CLAIM_GID: str(gid)} if gid is not None else {}
    finalizers = [annotations.PVC_FINALIZER] if finalizer else []
    return {
        "metadata": {"uid": uid, "annotations": ann, "finalizers": finalizers},
        "spec": {"volumeName": f"pvc-{uid}"} if bound else {},
    }


def test_a_claim_carrying_our_intent_holds_its_recorded_gid() -> None:
    gids = GidPool()
    reservations = GidReservations(gids)
    reservations.observe_claim(_claim("uid-1", gid=3000, finalizer=True))
    assert not gid_is_free(gids, 3000)
    assert reservations.for_claim("uid-2", PARAMS) == 3001


def test_a_retry_gets_the_gid_recorded_with_the_intent() -> None:
    reservations = GidReservations(GidPool())
    assert reservations.for_claim("uid-1", PARAMS, recorded=3009) == 3009
    assert reservations.for_claim("uid-1", PARAMS, recorded=3009) == 3009


def test_a_gid_annotation_without_our_finalizer_is_not_trusted() -> None:
    gids = GidPool()
    reservations = GidReservations(gids)
    reservations.observe_claim(
        _claim("copied", gid=3000, finalizer=False)
    )  # e.g. a copied manifest
    assert gid_is_free(gids, 3000)


def test_a_claim_bound_without_our_finalizer_leaves_the_gid_to_its_pv() -> None:
    gids = GidPool()
    reservations = GidReservations(gids)
    reservations.observe_claim(_claim("uid-1", gid=3000, finalizer=True))
    reservations.observe_claim(_claim("uid-1", gid=3000, finalizer=False, bound=True))
    assert gid_is_free(gids, 3000)


def test_a_deleted_claim_frees_its_recorded_gid() -> None:
    gids = GidPool()
    reservations = GidReservations(gids)
    claim = _claim("uid-1", gid=3000, finalizer=True)
    reservations.observe_claim(claim)
    reservations.claim_deleted(claim)
    assert gid_is_free(gids, 3000)


def _migrated_claim(uid: str, gid: int) -> dict[str, Any]:
    original = {"metadata": {"name": "legacy", "annotations": {annotations.ANN_GID: str(gid)}}}
    record = json.dumps({"pv": "legacy", "uid": "pv-uid", "original": original, "target": {}})
    return {
        "metadata": {"uid": uid, "annotations": {annotations.ANN_MIGRATION_RECORD: record}},
        "spec": {"volumeName": "legacy"},
    }


def test_a_migrated_volumes_gid_stays_used_while_its_pv_is_briefly_gone() -> None:
    gids = GidPool()
    reservations = GidReservations(gids)
    in_tree = _pv("legacy", 3000, policy="Delete")
    reservations.observe_pv(in_tree)
    reservations.observe_claim(_migrated_claim("uid-1", 3000))
    reservations.pv_deleted(in_tree)  # migrate deleted the in-tree PV; the CSI one comes next
    assert not gid_is_free(gids, 3000)
    assert reservations.for_claim("uid-2", PARAMS) != 3000


def test_a_restarted_controller_counts_the_gid_of_a_claim_mid_migration() -> None:
    gids = GidPool()
    GidReservations(gids).observe_claim(_migrated_claim("uid-1", 3000))  # no PV exists
    assert not gid_is_free(gids, 3000)


def test_a_deleted_migrated_claim_frees_the_gid_it_held() -> None:
    gids = GidPool()
    reservations = GidReservations(gids)
    claim = _migrated_claim("uid-1", 3000)
    reservations.observe_claim(claim)
    reservations.claim_deleted(claim)
    assert gid_is_free(gids, 3000)


def test_an_unreadable_migration_record_holds_nothing() -> None:
    gids = GidPool()
    claim = _migrated_claim("uid-1", 3000)
    claim["metadata"]["annotations"][annotations.ANN_MIGRATION_RECORD] = "{not json"
    GidReservations(gids).observe_claim(claim)
    assert gid_is_free(gids, 3000)
