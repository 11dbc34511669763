"""Which GIDs are in use: held by PVs, by claims being provisioned, by retained volumes."""

import threading

from provisioner.controller.objects import (
    claim_gid,
    finalizers,
    migrated_gid,
    pv_gid,
    reclaim_policy,
    uid,
)
from provisioner.core import annotations
from provisioner.core.gids import GidAllocator
from provisioner.core.storageclass import ProvisioningParams
from provisioner.kube.api import Obj

Holder = tuple[str, str]


class GidLedger:
    """Who holds which GID; a GID is free only while nothing holds it.

    Holders are PVs (of any provisioner), claims being provisioned and the volumes
    of deleted PVs that outlive them. Several may hold one GID (an in-tree PV and
    ours on the same Heketi, a static PV re-created for a retained volume), so one
    of them going away must not free it for the others: the allocator sees a GID
    as used exactly while its count of holders is above zero.
    """

    def __init__(self, allocator: GidAllocator) -> None:
        self._allocator = allocator
        self._lock = threading.Lock()
        self._holders: dict[Holder, int] = {}
        self._counts: dict[int, int] = {}

    def hold(self, holder: Holder, gid: int, *, replace: bool = True) -> int:
        """`holder` holds `gid` (instead of what it held; with `replace=False` a GID it
        already holds is kept). Returns the GID it holds now."""
        with self._lock:
            current = self._holders.get(holder)
            if current is not None and (current == gid or not replace):
                return current
            self._unset(holder)
            self._holders[holder] = gid
            self._count(gid, +1)
            return gid

    def drop(self, holder: Holder) -> None:
        """`holder` holds nothing any more (idempotent)."""
        with self._lock:
            self._unset(holder)

    def allocate(self, holder: Holder, *, gid_min: int, gid_max: int) -> int:
        """The GID `holder` holds, else a free one of the range, now held by it."""
        with self._lock:
            current = self._holders.get(holder)
            if current is not None:
                return current
            gid = self._allocator.allocate(gid_min=gid_min, gid_max=gid_max)
            self._holders[holder] = gid
            self._count(gid, +1)
            return gid

    def _unset(self, holder: Holder) -> None:
        gid = self._holders.pop(holder, None)
        if gid is not None:
            self._count(gid, -1)

    def _count(self, gid: int, delta: int) -> None:
        before = self._counts.get(gid, 0)
        after = before + delta
        if after > 0:
            self._counts[gid] = after
            if before == 0:
                self._allocator.mark_used(gid)
        else:
            self._counts.pop(gid, None)
            self._allocator.release(gid)


def _claim(claim_uid: str) -> Holder:
    return ("claim", claim_uid)


def _migrated(claim_uid: str) -> Holder:
    return ("migrated", claim_uid)


def _pv(pv_name: str) -> Holder:
    return ("pv", pv_name)


class GidReservations:
    """The GIDs of PVs and of claims whose PV does not exist yet.

    A claim holds its reserved GID (or its volume's) until its PV holds it, and
    frees it when given up. Every PV's `pv.beta.kubernetes.io/gid` counts, also
    those of other provisioners; a PV whose reclaim policy is not `Delete` leaves
    its GID held after it is deleted (its volume still exists) for the life of the
    process.
    """

    def __init__(self, gids: GidAllocator) -> None:
        self.ledger = GidLedger(gids)

    def for_claim(
        self, claim_uid: str, params: ProvisioningParams, *, recorded: int | None = None
    ) -> int:
        """The claim's GID: the one it holds (its volume's, or reserved earlier), else
        the one `recorded` with its intent, else a free one of the class's range."""
        if recorded is not None:
            return self.ledger.hold(_claim(claim_uid), recorded, replace=False)
        return self.ledger.allocate(
            _claim(claim_uid), gid_min=params.gid_min, gid_max=params.gid_max
        )

    def settle(self, claim_uid: str, actual: int) -> None:
        """The volume exists with GID `actual`: the claim holds that one from now on (a
        retry gets it again, `cancel` frees it); a different reservation is freed."""
        self.ledger.hold(_claim(claim_uid), actual)

    def hand_over(self, claim_uid: str, pv: Obj) -> None:
        """The claim's PV exists and holds its GID now (freed when the PV goes)."""
        self.observe_pv(pv)
        self.ledger.drop(_claim(claim_uid))

    def cancel(self, claim_uid: str) -> None:
        """The claim was given up and its volume deleted: free its GID."""
        self.ledger.drop(_claim(claim_uid))

    def observe_claim(self, pvc: Obj) -> None:
        """A claim as it is now. One carrying our intent holds the GID recorded with it
        (at start, before any worker runs, this rebuilds what the PVs do not show:
        the GIDs of volumes Heketi may have made for claims that have no PV yet); once
        bound without our finalizer, its PV holds the GID instead."""
        if annotations.PVC_FINALIZER in finalizers(pvc):
            gid = claim_gid(pvc)
            if gid is not None:
                self.ledger.hold(_claim(uid(pvc)), gid, replace=False)
        elif (pvc.get("spec") or {}).get("volumeName"):
            self.ledger.drop(_claim(uid(pvc)))
        self._observe_migration(pvc)

    def _observe_migration(self, pvc: Obj) -> None:
        """A claim `migrate` moved (or is moving) to a CSI PV holds its volume's GID for
        its life: the GID stays used while its PV is briefly gone mid-migration, also
        across a controller restart."""
        gid = migrated_gid(pvc)
        if gid is None:
            self.ledger.drop(_migrated(uid(pvc)))
        else:
            self.ledger.hold(_migrated(uid(pvc)), gid)

    def claim_deleted(self, pvc: Obj) -> None:
        self.ledger.drop(_claim(uid(pvc)))
        self.ledger.drop(_migrated(uid(pvc)))

    def observe_pv(self, pv: Obj) -> None:
        """A PV as it is now: it holds the GID it carries (or none)."""
        gid = pv_gid(pv)
        if gid is None:
            self.ledger.drop(_pv(str(pv["metadata"]["name"])))
        else:
            self.ledger.hold(_pv(str(pv["metadata"]["name"])), gid)

    def pv_deleted(self, pv: Obj) -> None:
        """A PV is gone. With reclaim policy `Delete` its volume went first (we, or the
        PV's own provisioner, delete the volume before the object); any other policy
        leaves the volume and its GID in use."""
        gid = pv_gid(pv)
        if gid is not None and reclaim_policy(pv) != "Delete":
            self.ledger.hold(("retained", str(pv["metadata"].get("uid", ""))), gid)
        self.ledger.drop(_pv(str(pv["metadata"]["name"])))
