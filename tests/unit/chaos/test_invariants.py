"""The soak's invariants find what they promise to find (a check that cannot fail is no check)."""

from pathlib import Path
from typing import Any

import pytest

from provisioner.core import annotations
from provisioner.heketi.auth import TokenSigner
from testbed.chaos import final, invariants
from testbed.chaos.invariants import Snapshot, Violation
from testbed.chaos.leaks import Scanner
from testbed.chaos.workload import Claim, Ledger

KEY = "chaos-unit-test-key-3b8e0c"


def claim(name: str, uid: str, *, size: str = "1Gi", bound: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "chaos", "uid": uid},
        "spec": {"volumeName": f"pvc-{uid}", "resources": {"requests": {"storage": size}}},
        "status": {"phase": "Bound" if bound else "Pending", "capacity": {"storage": size}},
    }


def pv(uid: str, handle: str, *, size: str = "1Gi", gid: str = "2000") -> dict[str, Any]:
    return {
        "metadata": {"name": f"pvc-{uid}", "annotations": {annotations.ANN_GID: gid}},
        "spec": {
            "csi": {"driver": annotations.DRIVER_NAME, "volumeHandle": handle},
            "capacity": {"storage": size},
            "claimRef": {"name": f"c-{uid}", "namespace": "chaos", "uid": uid},
        },
        "status": {"phase": "Bound"},
    }


def volume(uid: str, handle: str, *, size: int = 1, gid: int = 2000) -> dict[str, Any]:
    return {"id": handle, "name": f"pvc-{uid}", "size": size, "gid": gid}


def healthy() -> tuple[Snapshot, Ledger]:
    """Two claims, each bound to its PV and Heketi volume."""
    ledger = Ledger()
    for uid in ("u1", "u2"):
        ledger.claims[f"c-{uid}"] = Claim(f"c-{uid}", uid, 1)
    claims = {f"c-{u}": claim(f"c-{u}", u) for u in ("u1", "u2")}
    pvs = {f"pvc-{u}": pv(u, f"h{u}", gid=str(g)) for u, g in (("u1", 2000), ("u2", 2001))}
    volumes = {f"h{u}": volume(u, f"h{u}", gid=g) for u, g in (("u1", 2000), ("u2", 2001))}
    return Snapshot(claims, pvs, volumes, list(pvs.values())), ledger


def kinds(found: list[Violation]) -> set[str]:
    return {v.invariant for v in found}


def run_all(snap: Snapshot, ledger: Ledger) -> list[Violation]:
    return [v for check in final.FINAL for v in check(snap, ledger)]


def test_a_healthy_system_violates_nothing() -> None:
    assert run_all(*healthy()) == []


def test_two_pvs_on_one_heketi_volume_are_found() -> None:
    snap, ledger = healthy()
    snap.pvs["pvc-u2"]["spec"]["csi"]["volumeHandle"] = "hu1"
    assert "pv_volume_unique" in kinds(invariants.pv_volume_unique(snap, ledger))


@pytest.mark.parametrize("where", ["pv", "heketi"], ids=["two-pvs", "two-heketi-volumes"])
def test_a_gid_used_twice_is_found(where: str) -> None:
    snap, ledger = healthy()
    if where == "pv":
        snap.pvs["pvc-u2"]["metadata"]["annotations"][annotations.ANN_GID] = "2000"
        snap.all_pvs = list(snap.pvs.values())
    else:
        snap.volumes["hu2"]["gid"] = 2000
    assert kinds(invariants.gid_unique(snap, ledger)) == {"gid_unique"}


def test_a_pending_claim_reserving_the_gid_of_another_claims_volume_is_found() -> None:
    snap, ledger = healthy()
    snap.claims["c-u3"] = claim("c-u3", "u3", bound=False)
    snap.claims["c-u3"]["metadata"]["annotations"] = {annotations.ANN_CLAIM_GID: "2001"}
    found = invariants.gid_unique(snap, ledger)
    assert [(v.invariant, v.subject) for v in found] == [("gid_unique", "gid 2001")]


def test_a_claim_its_pv_and_its_heketi_volume_sharing_one_gid_is_no_violation() -> None:
    snap, ledger = healthy()
    snap.claims["c-u1"]["metadata"]["annotations"] = {annotations.ANN_CLAIM_GID: "2000"}
    assert invariants.gid_unique(snap, ledger) == []


def test_a_claim_status_ahead_of_its_pv_is_found_while_running() -> None:
    snap, ledger = healthy()
    snap.claims["c-u1"]["status"]["capacity"]["storage"] = "2Gi"
    assert kinds(invariants.capacity_ordered(snap, ledger)) == {"capacity"}


def test_a_growth_half_done_in_the_right_order_is_no_violation_while_running() -> None:
    snap, ledger = healthy()
    snap.volumes["hu1"]["size"] = 2  # Heketi grew; PV and claim follow later
    assert invariants.capacity_ordered(snap, ledger) == []
    assert kinds(final.capacity_equal(snap, ledger)) == {"capacity"}


def test_an_orphan_heketi_volume_is_found() -> None:
    snap, ledger = healthy()
    snap.volumes["hx"] = volume("gone", "hx", gid=2005)
    assert kinds(run_all(snap, ledger)) == {"no_orphan_volumes"}


def test_a_pending_claim_at_the_end_is_found() -> None:
    snap, ledger = healthy()
    snap.claims["c-u1"]["status"]["phase"] = "Pending"
    assert "claims_bound" in kinds(final.claims_bound(snap, ledger))


def test_a_claim_with_two_heketi_volumes_is_found() -> None:
    snap, ledger = healthy()
    snap.volumes["hdup"] = volume("u1", "hdup", gid=2007)
    assert "one_volume_per_claim" in kinds(final.one_volume_per_claim(snap, ledger))


@pytest.mark.parametrize("left", ["claim", "pv", "heketi"])
def test_what_a_deleted_claim_leaves_behind_is_found(left: str) -> None:
    snap, ledger = healthy()
    ledger.claims["c-u2"].deleted = True
    if left != "claim":
        del snap.claims["c-u2"]
    if left == "heketi":
        del snap.pvs["pvc-u2"]
    found = final.deleted_claims_gone(snap, ledger)
    assert kinds(found) == {"deleted_claims_gone"}


def test_a_pv_whose_claim_was_deleted_is_an_orphan() -> None:
    snap, ledger = healthy()
    ledger.claims["c-u2"].deleted = True
    del snap.claims["c-u2"]
    assert kinds(final.no_orphan_pvs(snap, ledger)) == {"no_orphan_pvs"}


@pytest.mark.parametrize(
    "leak",
    [
        pytest.param(KEY, id="the-key"),
        pytest.param("Y2hhb3MtdW5pdC10ZXN0LWtleS0zYjhlMGM=", id="the-key-base64"),
        pytest.param(TokenSigner(user="admin", key="other").token("GET", "/"), id="a-jwt"),
    ],
)
def test_a_secret_in_a_log_line_is_found(tmp_path: Path, leak: str) -> None:
    log = tmp_path / "controller.log"
    log.write_text('{"event": "fine"}\n' + f'{{"event": "oops", "detail": "{leak}"}}\n')
    found = Scanner(key=KEY, logs=[log]).scan_logs()
    assert [(v.invariant, v.subject) for v in found] == [("no_secret_leak", "controller.log:2")]


def test_logs_are_read_once_and_a_crash_is_found_in_what_was_appended(tmp_path: Path) -> None:
    log = tmp_path / "controller.log"
    log.write_text('{"event": "started"}\n')
    scanner = Scanner(key=KEY, logs=[log])
    assert scanner.scan_logs() == []
    with log.open("a") as handle:
        handle.write('{"event": "reconcile crashed; will retry", "exception": "KeyError: x"}\n')
    found = scanner.scan_logs()
    assert [(v.invariant, v.subject, v.detail) for v in found] == [
        ("no_crash", "controller.log:2", "reconcile crashed; will retry: KeyError: x")
    ]
    assert scanner.scan_logs() == []


def test_a_second_pv_pointing_at_a_claim_is_found() -> None:
    snap, ledger = healthy()
    snap.pvs["pv-extra"] = pv("u1", "hextra", gid="2009")
    found = final.one_pv_per_claim(snap, ledger)
    assert [(v.invariant, v.subject) for v in found] == [("claims_bound", "c-u1")]


@pytest.mark.parametrize("marker", ["finalizer", "expand-record"])
def test_a_marker_left_after_settling_is_found(marker: str) -> None:
    snap, ledger = healthy()
    if marker == "finalizer":
        snap.claims["c-u1"]["metadata"]["finalizers"] = [annotations.PVC_FINALIZER]
    else:
        snap.pvs["pvc-u1"]["metadata"]["annotations"][annotations.ANN_EXPAND_IN_FLIGHT] = "{}"
    assert kinds(run_all(snap, ledger)) == {"no_leftover_markers"}
