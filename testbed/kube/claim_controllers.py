"""More of kube-controller-manager's storage controllers, beside the PV binder's core.

From kubernetes/kubernetes 1.36 (read in openshift/microshift's vendor tree, and observed
on kube-controller-manager with `make contract-kube`):

- `pkg/controller/volume/pvcprotection/pvc_protection_controller.go` (`processPVC`): a
  claim being deleted loses the `kubernetes.io/pvc-protection` finalizer (which the
  StorageObjectInUseProtection admission plugin put on it) once no pod uses it; a pod
  uses it when its `spec.volumes` name the claim and it has not finished
  (`isBeingUsed`, `podUsesPVC`; phase Succeeded or Failed means finished).
- `pkg/controller/volume/expand/expand_controller.go` (`syncHandler`): a claim whose
  request is larger than its `status.capacity`, bound to a CSI volume (no in-tree plugin
  of kube-controller-manager expands those, and it is not a migrated in-tree volume),
  gets a Normal Event `ExternalExpanding` "waiting for an external controller to expand
  this PVC" from component `volume_expand`, and is left to that controller. The real
  recorder counts repeats of one Event; here it is recorded once per claim and size.
- `pkg/controller/volume/persistentvolume/pv_controller_base.go`
  (`modifyDeletionFinalizers`, HonorPVReclaimPolicy, GA in 1.33): a PV dynamically
  provisioned by an in-tree plugin that is not migrated to CSI (annotation
  `pv.kubernetes.io/provisioned-by: kubernetes.io/glusterfs`, …) gets the
  `kubernetes.io/pv-controller` finalizer while its reclaim policy is Delete and loses it
  when the policy becomes Retain (or Recycle).
"""

import threading
from typing import Any

from testbed.kube.quantity import parse_quantity
from testbed.kube.resources import BY_GROUP_VERSION
from testbed.kube.store import Store

JSON = dict[str, Any]
PVC = BY_GROUP_VERSION[("", "v1")]["persistentvolumeclaims"]
PVC_PROTECTION = "kubernetes.io/pvc-protection"
EXTERNAL_EXPANDING = "waiting for an external controller to expand this PVC"
FINISHED = ("Succeeded", "Failed")
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
IN_TREE_DELETION = "kubernetes.io/pv-controller"
#: In-tree plugins whose volumes csi-translation-lib migrates (the finalizer is dropped).
MIGRATED = frozenset(
    {
        "kubernetes.io/aws-ebs",
        "kubernetes.io/gce-pd",
        "kubernetes.io/cinder",
        "kubernetes.io/azure-disk",
        "kubernetes.io/azure-file",
        "kubernetes.io/vsphere-volume",
        "kubernetes.io/portworx-volume",
    }
)


def deletion_finalizers(pv: JSON) -> list[str] | None:
    """`modifyDeletionFinalizers`: the PV's new finalizers, or None when unchanged."""
    meta = pv["metadata"]
    provisioner = (meta.get("annotations") or {}).get(ANN_PROVISIONED_BY, "")
    if not provisioner.startswith("kubernetes.io/") or meta.get("deletionTimestamp"):
        return None
    finalizers = list(meta.get("finalizers") or [])
    policy = (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy")
    present = IN_TREE_DELETION in finalizers
    if provisioner in MIGRATED or policy in ("Retain", "Recycle"):
        return [f for f in finalizers if f != IN_TREE_DELETION] if present else None
    return [*finalizers, IN_TREE_DELETION] if policy == "Delete" and not present else None


def _in_use(store: Store, namespace: str, name: str) -> bool:
    for pod in store.objects("pods", namespace):
        if (pod.obj.get("status") or {}).get("phase") in FINISHED:
            continue
        for volume in (pod.obj.get("spec") or {}).get("volumes") or []:
            if (volume.get("persistentVolumeClaim") or {}).get("claimName") == name:
                return True
    return False


def release_claim(store: Store, namespace: str, name: str) -> None:
    """pvc_protection_controller.go `processPVC` for a claim being deleted."""
    claim = store.find("persistentvolumeclaims", namespace, name)
    if claim is None or not claim.obj["metadata"].get("deletionTimestamp"):
        return
    finalizers = list(claim.obj["metadata"].get("finalizers") or [])
    if PVC_PROTECTION not in finalizers or _in_use(store, namespace, name):
        return
    finalizers.remove(PVC_PROTECTION)

    def change(doc: JSON) -> JSON:
        doc["metadata"]["finalizers"] = finalizers
        return doc

    store.mutate(PVC, namespace, name, change)


class ExpandController:
    """expand_controller.go `syncHandler` for claims on CSI volumes."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._reported: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def wants_external(self, namespace: str, name: str) -> str | None:
        """The claim's uid when it waits for an external resizer and was not reported yet."""
        claim = self._store.find("persistentvolumeclaims", namespace, name)
        if claim is None:
            return None
        spec, status = claim.obj.get("spec") or {}, claim.obj.get("status") or {}
        request = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        current = (status.get("capacity") or {}).get("storage")
        if status.get("phase") != "Bound" or not request or not current:
            return None
        if parse_quantity(request) <= parse_quantity(current):
            return None
        volume = self._store.find("persistentvolumes", "", spec.get("volumeName") or "")
        if volume is None or "csi" not in (volume.obj.get("spec") or {}):
            return None
        key = (claim.obj["metadata"]["uid"], str(request))
        with self._lock:
            if key in self._reported:
                return None
            self._reported.add(key)
        return str(claim.obj["metadata"]["uid"])
