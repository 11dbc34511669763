"""Volume reconciler: Released PVs with reclaim policy Delete → Heketi delete → PV gone.

Works without the StorageClass: Heketi URL, user and Secret reference are read
from the PV's annotations. Order: delete the Heketi volume (404 = gone) → remove
our finalizer (a merge patch carrying the resourceVersion, so it cannot undo a
concurrent change) → delete the PV (404 = gone). `Retain` keeps everything; when
a user deletes a retained PV our finalizer is removed and the volume kept.
"""

from typing import Final

from provisioner import names
from provisioner.controller import objects as o
from provisioner.controller.connections import Connections
from provisioner.controller.informer import Informer
from provisioner.controller.reporting import Reporter
from provisioner.controller.writes import Writes
from provisioner.kube.api import KubeNotFound, Obj
from provisioner.log import get_logger

log = get_logger("deletion")

FAILED_DELETE: Final = "VolumeFailedDelete"
#: Phases in which no claim uses the PV any more.
UNCLAIMED_PHASES: Final = frozenset({"Released", "Failed"})


class VolumeReconciler:
    """Deletes the backing volume of our released PVs whose reclaim policy is Delete."""

    def __init__(
        self,
        *,
        claims: Informer,
        pvs: Informer,
        driver: str,
        connections: Connections,
        writes: Writes,
        reporter: Reporter,
    ) -> None:
        self._claims = claims
        self._pvs = pvs
        self._driver = driver
        self._connections = connections
        self._writes = writes
        self._reporter = reporter

    def reconcile(self, name: str) -> None:
        pv = self._pvs.get(name)
        if pv is None or not o.is_ours_pv(pv, self._driver):
            return
        policy = o.reclaim_policy(pv)
        has_finalizer = names.PV_FINALIZER in o.finalizers(pv)
        if policy != "Delete":
            if o.deleting(pv) and has_finalizer:
                self._remove_finalizer(pv)  # Retain: the user deletes the PV, we keep the data
            return
        if o.pv_phase(pv) in UNCLAIMED_PHASES or (o.deleting(pv) and not self._claimed(pv)):
            self._delete_observed(pv, has_finalizer=has_finalizer)

    def _claimed(self, pv: Obj) -> bool:
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        pvc = self._claims.get(f"{ref.get('namespace')}/{ref.get('name')}")
        return pvc is not None and o.uid(pvc) == ref.get("uid")

    def _delete_observed(self, pv: Obj, *, has_finalizer: bool) -> None:
        with self._reporter.observed(
            "delete",
            involved=pv,
            reason=FAILED_DELETE,
            failure=lambda err: f"deleting the Heketi volume failed: {err}",
        ):
            current = pv
            if has_finalizer:
                self._delete_backing(pv)
                current = self._remove_finalizer(pv)
            self._delete_pv(current)

    def _delete_backing(self, pv: Obj) -> None:
        class_name = str((pv.get("spec") or {}).get("storageClassName") or "")
        heketi = self._connections.for_object(pv, class_name=class_name)
        with self._connections.rereading_object_key_if_refused(pv):
            self._writes.delete_volume(heketi=heketi, volume_id=o.volume_handle(pv))
        log.info("deleted backing volume", pv=o.name(pv), volume_id=o.volume_handle(pv))

    def _remove_finalizer(self, pv: Obj) -> Obj:
        patch = {
            "metadata": {
                "resourceVersion": o.resource_version(pv),
                "finalizers": [f for f in o.finalizers(pv) if f != names.PV_FINALIZER],
            }
        }
        try:
            return self._writes.patch_pv(pv, patch)
        except KubeNotFound:
            return pv

    def _delete_pv(self, pv: Obj) -> None:
        if o.deleting(pv):
            return  # already being deleted: removing our finalizer lets it go
        try:
            self._writes.delete_pv(pv)
        except KubeNotFound:
            return
