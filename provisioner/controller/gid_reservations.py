"""Who holds the controller's GIDs: PVs, claims being provisioned, retained volumes.

The claims and PVs the informers show, turned into holders of the `GidPool`
(`provisioner.core.gids`) the controller shares across all its classes.
"""

from provisioner.controller.objects import (
    claim_gid,
    finalizers,
    migrated_gid,
    pv_gid,
    reclaim_policy,
    uid,
)
from provisioner.core import annotations
from provisioner.core.gids import GidPool, Holder
from provisioner.core.storageclass import ProvisioningParams
from provisioner.kube.api import Obj


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

    def __init__(self, pool: GidPool) -> None:
        self._pool = pool

    def for_claim(
        self, claim_uid: str, params: ProvisioningParams, *, recorded: int | None = None
    ) -> int:
        """The claim's GID: the one it holds (its volume's, or reserved earlier), else
        the one `recorded` with its intent, else a free one of the class's range."""
        if recorded is not None:
            return self._pool.hold(_claim(claim_uid), recorded, replace=False)
        return self._pool.allocate(
            _claim(claim_uid), gid_min=params.gid_min, gid_max=params.gid_max
        )

    def settle(self, claim_uid: str, actual: int) -> None:
        """The volume exists with GID `actual`: the claim holds that one from now on (a
        retry gets it again, `cancel` frees it); a different reservation is freed."""
        self._pool.hold(_claim(claim_uid), actual)

    def hand_over(self, claim_uid: str, pv: Obj) -> None:
        """The claim's PV exists and holds its GID now (freed when the PV goes)."""
        self.observe_pv(pv)
        self._pool.drop(_claim(claim_uid))

    def cancel(self, claim_uid: str) -> None:
        """The claim was given up and its volume deleted: free its GID."""
        self._pool.drop(_claim(claim_uid))

    def observe_claim(self, pvc: Obj) -> None:
        """A claim as it is now. One carrying our intent holds the GID recorded with it
        (at start, before any worker runs, this rebuilds what the PVs do not show:
        the GIDs of volumes Heketi may have made for claims that have no PV yet); once
        bound without our finalizer, its PV holds the GID instead."""
        if annotations.PVC_FINALIZER in finalizers(pvc):
            gid = claim_gid(pvc)
            if gid is not None:
                self._pool.hold(_claim(uid(pvc)), gid, replace=False)
        elif (pvc.get("spec") or {}).get("volumeName"):
            self._pool.drop(_claim(uid(pvc)))
        self._observe_migration(pvc)

    def _observe_migration(self, pvc: Obj) -> None:
        """A claim `migrate` moved (or is moving) to a CSI PV holds its volume's GID for
        its life: the GID stays used while its PV is briefly gone mid-migration, also
        across a controller restart."""
        gid = migrated_gid(pvc)
        if gid is None:
            self._pool.drop(_migrated(uid(pvc)))
        else:
            self._pool.hold(_migrated(uid(pvc)), gid)

    def claim_deleted(self, pvc: Obj) -> None:
        self._pool.drop(_claim(uid(pvc)))
        self._pool.drop(_migrated(uid(pvc)))

    def observe_pv(self, pv: Obj) -> None:
        """A PV as it is now: it holds the GID it carries (or none)."""
        gid = pv_gid(pv)
        if gid is None:
            self._pool.drop(_pv(str(pv["metadata"]["name"])))
        else:
            self._pool.hold(_pv(str(pv["metadata"]["name"])), gid)

    def pv_deleted(self, pv: Obj) -> None:
        """A PV is gone. With reclaim policy `Delete` its volume went first (we, or the
        PV's own provisioner, delete the volume before the object); any other policy
        leaves the volume and its GID in use."""
        gid = pv_gid(pv)
        if gid is not None and reclaim_policy(pv) != "Delete":
            self._pool.hold(("retained", str(pv["metadata"].get("uid", ""))), gid)
        self._pool.drop(_pv(str(pv["metadata"]["name"])))
