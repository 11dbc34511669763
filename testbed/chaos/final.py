"""The invariants that hold once the faults have ended and the system has settled."""

from collections.abc import Callable
from typing import Final

from provisioner.core import annotations
from testbed.chaos.invariants import (
    CONTINUOUS,
    GIB,
    Snapshot,
    Violation,
    claim_capacity,
    csi_of,
    is_bound,
    pv_capacity,
)
from testbed.chaos.workload import Claim, Ledger


def claims_bound(snap: Snapshot, ledger: Ledger) -> list[Violation]:
    found = []
    for claim in ledger.live():
        stored = snap.claims.get(claim.name)
        if stored is None or stored["metadata"]["uid"] != claim.uid:
            found.append(Violation("claims_bound", claim.name, "the claim is missing"))
            continue
        pv_name = (stored.get("spec") or {}).get("volumeName")
        if not is_bound(stored) or pv_name != f"pvc-{claim.uid}" or pv_name not in snap.pvs:
            phase = (stored.get("status") or {}).get("phase")
            found.append(Violation("claims_bound", claim.name, f"{phase}, volumeName {pv_name}"))
    return found


def one_pv_per_claim(snap: Snapshot, ledger: Ledger) -> list[Violation]:
    """No second PV (of any name) points at a claim."""
    refs: dict[str, list[str]] = {}
    for name, pv in snap.pvs.items():
        uid = ((pv.get("spec") or {}).get("claimRef") or {}).get("uid")
        refs.setdefault(str(uid), []).append(name)
    return [
        Violation("claims_bound", claim.name, f"PVs {sorted(refs[claim.uid])} all claim it")
        for claim in ledger.live()
        if len(refs.get(claim.uid, [])) > 1
    ]


def no_leftover_markers(snap: Snapshot, ledger: Ledger) -> list[Violation]:
    """Once settled, no claim keeps the provisioning finalizer and no PV an expand record."""
    found = [
        Violation("no_leftover_markers", name, f"finalizer {annotations.PVC_FINALIZER}")
        for name, claim in snap.claims.items()
        if annotations.PVC_FINALIZER in (claim["metadata"].get("finalizers") or [])
    ]
    found += [
        Violation("no_leftover_markers", name, f"annotation {annotations.ANN_EXPAND_IN_FLIGHT}")
        for name, pv in snap.pvs.items()
        if annotations.ANN_EXPAND_IN_FLIGHT in (pv["metadata"].get("annotations") or {})
    ]
    return found


def one_volume_per_claim(snap: Snapshot, ledger: Ledger) -> list[Violation]:
    found = []
    by_name: dict[str, list[str]] = {}
    for volume in snap.volumes.values():
        by_name.setdefault(str(volume["name"]), []).append(str(volume["id"]))
    for claim in ledger.live():
        ids = by_name.get(f"pvc-{claim.uid}", [])
        pv = snap.pvs.get(f"pvc-{claim.uid}")
        handle = csi_of(pv).get("volumeHandle") if pv is not None else None
        if len(ids) != 1 or ids[0] != handle:
            found.append(
                Violation("one_volume_per_claim", claim.name, f"Heketi {ids}, PV handle {handle}")
            )
    return found


def no_orphan_volumes(snap: Snapshot, ledger: Ledger) -> list[Violation]:
    handles = {csi_of(pv).get("volumeHandle") for pv in snap.pvs.values()}
    return [
        Violation("no_orphan_volumes", volume_id, f"Heketi volume {volume['name']} has no PV")
        for volume_id, volume in snap.volumes.items()
        if volume_id not in handles
    ]


def no_orphan_pvs(snap: Snapshot, ledger: Ledger) -> list[Violation]:
    live = {f"pvc-{c.uid}" for c in ledger.live()}
    return [
        Violation("no_orphan_pvs", name, f"phase {(pv.get('status') or {}).get('phase')}")
        for name, pv in snap.pvs.items()
        if name not in live
    ]


def deleted_claims_gone(snap: Snapshot, ledger: Ledger) -> list[Violation]:
    found = []
    names = {str(v["name"]) for v in snap.volumes.values()}
    for claim in ledger.claims.values():
        if not claim.deleted:
            continue
        stored = snap.claims.get(claim.name)
        left = [
            what
            for what, present in (
                ("claim", stored is not None and stored["metadata"]["uid"] == claim.uid),
                ("PV", f"pvc-{claim.uid}" in snap.pvs),
                ("Heketi volume", f"pvc-{claim.uid}" in names),
            )
            if present
        ]
        if left:
            found.append(Violation("deleted_claims_gone", claim.name, f"still there: {left}"))
    return found


def capacity_equal(snap: Snapshot, ledger: Ledger) -> list[Violation]:
    found = []
    for claim in ledger.live():
        found.extend(_capacity_of(snap, claim))
    return found


def _capacity_of(snap: Snapshot, claim: Claim) -> list[Violation]:
    stored = snap.claims.get(claim.name)
    pv = snap.pvs.get(f"pvc-{claim.uid}")
    if stored is None or pv is None:
        return []  # claims_bound reports it
    volume = snap.volumes.get(str(csi_of(pv).get("volumeHandle")))
    want = claim.size_gib * GIB
    sizes = {
        "status": claim_capacity(stored),
        "PV": pv_capacity(pv),
        "Heketi": int(volume["size"]) * GIB if volume is not None else None,
    }
    if any(size != want for size in sizes.values()):
        shown = ", ".join(f"{k} {v // GIB if v else v} GiB" for k, v in sizes.items())
        return [Violation("capacity", claim.name, f"asked {claim.size_gib} GiB; {shown}")]
    return []


FINAL: Final[tuple[Callable[[Snapshot, Ledger], list[Violation]], ...]] = (
    *CONTINUOUS,
    claims_bound,
    one_pv_per_claim,
    one_volume_per_claim,
    no_orphan_volumes,
    no_orphan_pvs,
    deleted_claims_gone,
    capacity_equal,
    no_leftover_markers,
)
