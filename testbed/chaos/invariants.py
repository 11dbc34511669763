"""The invariants: what must hold while faults strike, and once the run has settled.

Reads go straight to the test servers' stores (no HTTP, so no injected fault
blurs them), claims first, then PVs, then Heketi: the controller changes them in
the opposite order (Heketi, then the PV, then the claim), so an ordering check
never sees a half-done change as a violation.
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from provisioner.core import annotations
from testbed.chaos.cluster import APP_NAMESPACE, Cluster
from testbed.chaos.workload import Ledger
from testbed.kube.quantity import QuantityError, parse_quantity

GIB: Final = 1 << 30
JSON = dict[str, Any]

#: Invariant ids and what each promises, in the order the report lists them.
DESCRIPTIONS: Final = {
    "claims_bound": "every claim that still exists is Bound to exactly one PV",
    "one_volume_per_claim": "... and to exactly one Heketi volume",
    "pv_volume_unique": "no two PVs share a Heketi volume",
    "no_orphan_volumes": "every Heketi volume belongs to a live PV",
    "no_orphan_pvs": "every PV of ours belongs to a live claim",
    "deleted_claims_gone": "a deleted claim's PV and Heketi volume are gone",
    "capacity": "claim status = PV = Heketi size (ordered while running)",
    "no_leftover_markers": "no provisioning finalizer or expand record is left",
    "gid_unique": "no GID used by two claims (claims, PVs, Heketi volumes)",
    "no_secret_leak": "no Heketi key or JWT in any log line, Event or object",
    "no_crash": "no unhandled exception in any process log",
    "node_plugin_serving": "the node plugin answers Probe and NodeGetInfo",
    "bounded_recovery": "after the last fault everything settles in time",
}


@dataclass(frozen=True)
class Violation:
    invariant: str
    subject: str
    detail: str


@dataclass
class Snapshot:
    claims: dict[str, JSON]  # by name (the soak's namespace)
    pvs: dict[str, JSON]  # by name, ours only
    volumes: dict[str, JSON]  # Heketi volumes by id
    all_pvs: list[JSON] = field(default_factory=list)

    @classmethod
    def take(cls, cluster: Cluster) -> "Snapshot":
        claims = {
            c["metadata"]["name"]: c
            for c in cluster.kube.list("persistentvolumeclaims", APP_NAMESPACE)
        }
        all_pvs = cluster.kube.list("persistentvolumes")
        assert cluster.heketi is not None
        volumes = {v["id"]: v for v in cluster.heketi.volumes()}
        ours = {
            p["metadata"]["name"]: p
            for p in all_pvs
            if csi_of(p).get("driver") == annotations.DRIVER_NAME
        }
        return cls(claims, ours, volumes, all_pvs)


def csi_of(pv: JSON) -> JSON:
    csi: JSON = (pv.get("spec") or {}).get("csi") or {}
    return csi


def _bytes(value: object) -> int | None:
    try:
        return int(parse_quantity(value)) if value is not None else None
    except QuantityError:
        return None


def claim_capacity(claim: JSON) -> int | None:
    return _bytes(((claim.get("status") or {}).get("capacity") or {}).get("storage"))


def pv_capacity(pv: JSON) -> int | None:
    return _bytes(((pv.get("spec") or {}).get("capacity") or {}).get("storage"))


def is_bound(claim: JSON) -> bool:
    return (claim.get("status") or {}).get("phase") == "Bound"


# -- checks that hold at every moment ---------------------------------------------------------


def pv_volume_unique(snap: Snapshot, ledger: Ledger) -> list[Violation]:
    users: dict[str, list[str]] = {}
    for name, pv in snap.pvs.items():
        users.setdefault(str(csi_of(pv).get("volumeHandle")), []).append(name)
    return [
        Violation("pv_volume_unique", handle, f"PVs {', '.join(sorted(pvs))} share it")
        for handle, pvs in users.items()
        if len(pvs) > 1
    ]


def gid_unique(snap: Snapshot, ledger: Ledger) -> list[Violation]:
    """One GID, one claim: across the claims' reserved GIDs, the PVs' and Heketi's."""
    owners: dict[str, set[str]] = {}

    def own(gid: object, owner: str) -> None:
        if gid not in (None, 0, ""):
            owners.setdefault(str(gid), set()).add(owner)

    for claim in snap.claims.values():
        ann = claim["metadata"].get("annotations") or {}
        own(ann.get(annotations.ANN_CLAIM_GID), f"pvc-{claim['metadata']['uid']}")
    for pv in snap.all_pvs:
        own(
            (pv["metadata"].get("annotations") or {}).get(annotations.ANN_GID),
            pv["metadata"]["name"],
        )
    for volume in snap.volumes.values():
        own(volume.get("gid"), str(volume["name"]))
    found = [
        Violation("gid_unique", f"gid {gid}", f"used by {', '.join(sorted(users))}")
        for gid, users in owners.items()
        if len(users) > 1
    ]
    found += _gid_twice_in_one_source(snap)
    return found


def _gid_twice_in_one_source(snap: Snapshot) -> list[Violation]:
    found = []
    pv_gids = Counter(
        (p.get("metadata", {}).get("annotations") or {}).get(annotations.ANN_GID)
        for p in snap.all_pvs
    )
    heketi_gids = Counter(v.get("gid") for v in snap.volumes.values())
    for source, gids in (("PVs", pv_gids), ("Heketi volumes", heketi_gids)):
        for gid, uses in gids.items():
            if gid not in (None, 0, "") and uses > 1:
                found.append(Violation("gid_unique", f"gid {gid}", f"{uses} {source} use it"))
    return found


def capacity_ordered(snap: Snapshot, ledger: Ledger) -> list[Violation]:
    """While running: claim status <= PV capacity <= Heketi size (growth goes Heketi first)."""
    found = []
    for name, claim in snap.claims.items():
        pv = snap.pvs.get(str((claim.get("spec") or {}).get("volumeName")))
        if not is_bound(claim) or pv is None:
            continue
        volume = snap.volumes.get(str(csi_of(pv).get("volumeHandle")))
        status, pv_size = claim_capacity(claim), pv_capacity(pv)
        heketi = int(volume["size"]) * GIB if volume is not None else None
        sizes = [s for s in (status, pv_size, heketi) if s is not None]
        if sizes != sorted(sizes):
            found.append(
                Violation("capacity", name, f"status {status} > PV {pv_size} or > Heketi {heketi}")
            )
    return found


def bound_to_its_pv(snap: Snapshot, ledger: Ledger) -> list[Violation]:
    """A Bound claim's PV (when it exists) points back at that very claim."""
    found = []
    for name, claim in snap.claims.items():
        pv = snap.pvs.get(str((claim.get("spec") or {}).get("volumeName")))
        if not is_bound(claim) or pv is None:
            continue
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if ref.get("uid") != claim["metadata"]["uid"] or ref.get("name") != name:
            found.append(
                Violation("claims_bound", name, f"PV {pv['metadata']['name']} names {ref}")
            )
    return found


CONTINUOUS: Final[tuple[Callable[[Snapshot, Ledger], list[Violation]], ...]] = (
    pv_volume_unique,
    gid_unique,
    capacity_ordered,
    bound_to_its_pv,
)
