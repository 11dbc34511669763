"""The CSI PV that replaces an in-tree one: same name, same claim, same Gluster volume."""

import hashlib
from typing import Any, Final

from provisioner.core import annotations
from provisioner.core.annotations import heketi_annotations
from provisioner.core.storageclass import ProvisioningParams
from provisioner.kube.api import Obj
from provisioner.migrate.cluster import annotations_of, meta, spec_of
from provisioner.migrate.intree import HEKETI, Source

#: Prefix of the volumeHandle of a migrated static PV. kubelet derives the staging path
#: from the handle, so two PVs must never share one: it is made from the PV name (unique
#: in the cluster), hashed so a 253-character name still fits CSI's 128-byte volume_id.
STATIC_HANDLE_PREFIX: Final = "gluster-static-"
#: Spec fields kept as they are.
_KEPT_SPEC: Final = (
    "capacity",
    "accessModes",
    "mountOptions",
    "storageClassName",
    "nodeAffinity",
    "volumeMode",
)
#: Annotations of the in-tree plugin that would mislead once the PV is CSI.
_DROPPED_ANNOTATIONS: Final = (annotations.ANN_PROVISIONED_BY,)


def static_handle(pv_name: str) -> str:
    return STATIC_HANDLE_PREFIX + hashlib.sha256(pv_name.encode()).hexdigest()[:40]


def build_target(
    pv: Obj,
    source: Source,
    *,
    servers: tuple[str, ...],
    driver: str,
    params: ProvisioningParams | None,
) -> Obj:
    """The CSI PV for `pv`. Heketi volumes keep their reclaim policy and get what our
    controller needs to delete them (`params` of the old class); static ones are Retain."""
    heketi = source.kind == HEKETI
    ann = {k: v for k, v in annotations_of(pv).items() if k not in _DROPPED_ANNOTATIONS}
    ann[annotations.ANN_MIGRATED_FROM] = annotations.IN_TREE_PLUGIN
    if heketi and params is not None:
        ann.update(heketi_annotations(params, volume_name=source.volume))
        ann[annotations.ANN_PROVISIONED_BY] = driver
    spec: dict[str, Any] = {k: v for k, v in spec_of(pv).items() if k in _KEPT_SPEC}
    spec["persistentVolumeReclaimPolicy"] = source.reclaim_policy if heketi else "Retain"
    ref = spec_of(pv).get("claimRef") or {}
    spec["claimRef"] = {k: v for k, v in ref.items() if k != "resourceVersion"}
    spec["csi"] = {
        "driver": driver,
        "volumeHandle": source.heketi_id if heketi else static_handle(source.name),
        "readOnly": source.read_only,
        "volumeAttributes": {
            annotations.CTX_SERVERS: ",".join(servers),
            annotations.CTX_VOLUME: source.volume,
        },
    }
    metadata: dict[str, Any] = {"name": source.name, "annotations": ann}
    if meta(pv).get("labels"):
        metadata["labels"] = dict(meta(pv)["labels"])
    if heketi:
        metadata["finalizers"] = [annotations.PV_FINALIZER]
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": metadata, "spec": spec}
