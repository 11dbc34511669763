"""Reading PVC / PV / StorageClass dicts, and the PV this controller writes."""

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

from provisioner import errors, names
from provisioner.controller.quantity import gib_quantity, parse_bytes
from provisioner.heketi.types import Volume
from provisioner.kube.api import Obj, path_for
from provisioner.pv_annotations import heketi_annotations
from provisioner.storageclass import ProvisioningParams, parse_rest_url
from provisioner.volumes import volume_context

ACCESS_MODES: Final = frozenset(
    {"ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"}
)
DEFAULT_RECLAIM_POLICY: Final = "Delete"
WAIT_FOR_FIRST_CONSUMER: Final = "WaitForFirstConsumer"


def meta(obj: Obj) -> dict[str, Any]:
    value: dict[str, Any] = obj.get("metadata") or {}
    return value


def annotations(obj: Obj) -> dict[str, str]:
    value: dict[str, str] = meta(obj).get("annotations") or {}
    return value


def finalizers(obj: Obj) -> list[str]:
    value: list[str] = meta(obj).get("finalizers") or []
    return value


def uid(obj: Obj) -> str:
    return str(meta(obj).get("uid", ""))


def name(obj: Obj) -> str:
    return str(meta(obj).get("name", ""))


def namespace(obj: Obj) -> str:
    return str(meta(obj).get("namespace", ""))


def resource_version(obj: Obj) -> str:
    return str(meta(obj).get("resourceVersion", ""))


def deleting(obj: Obj) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def remove_finalizer_ops(obj: Obj, finalizer: str) -> list[dict[str, Any]]:
    """JSON patch removing `finalizer` only if it is still where we saw it (race-free
    without a resourceVersion, so unrelated changes by others do not conflict)."""
    current = finalizers(obj)
    if finalizer not in current:
        return []
    at = f"/metadata/finalizers/{current.index(finalizer)}"
    return [{"op": "test", "path": at, "value": finalizer}, {"op": "remove", "path": at}]


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def add_finalizer_ops(obj: Obj, finalizer: str, extra: Mapping[str, str]) -> list[dict[str, Any]]:
    """JSON patch adding `finalizer` and the `extra` annotations. Preconditions: the
    finalizer list is unchanged; only where a whole list or map must be created does
    the patch fall back to the resourceVersion (which then also guards the rest)."""
    current, present = finalizers(obj), annotations(obj)
    ops: list[dict[str, Any]] = []
    if not current or not present:
        ops.append(
            {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version(obj)}
        )
    if current:
        ops += [
            {"op": "test", "path": "/metadata/finalizers", "value": current},
            {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer},
        ]
    else:
        ops.append({"op": "add", "path": "/metadata/finalizers", "value": [finalizer]})
    if present:
        ops += [
            {"op": "add", "path": f"/metadata/annotations/{_pointer(k)}", "value": v}
            for k, v in extra.items()
        ]
    else:
        ops.append({"op": "add", "path": "/metadata/annotations", "value": dict(extra)})
    return ops


def claim_ref(pvc: Obj) -> str:
    return f"{namespace(pvc)}/{name(pvc)}"


def claim_class(pvc: Obj) -> str:
    """StorageClass name of a claim (spec, else the legacy beta annotation)."""
    spec = pvc.get("spec") or {}
    return str(
        spec.get("storageClassName") or annotations(pvc).get(names.ANN_BETA_STORAGE_CLASS) or ""
    )


def claim_names_provisioner(pvc: Obj, driver: str) -> bool:
    ann = annotations(pvc)
    named = ann.get(names.ANN_STORAGE_PROVISIONER) or ann.get(names.ANN_BETA_STORAGE_PROVISIONER)
    return named == driver


def requested_bytes(pvc: Obj) -> int:
    storage = ((pvc.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")
    if not storage:
        return 0
    return parse_bytes(str(storage))


def pv_name_for(pvc: Obj) -> str:
    return f"pvc-{uid(pvc)}"


def capacity_bytes(obj: Obj, *, status: bool = False) -> int:
    section = (obj.get("status") if status else obj.get("spec")) or {}
    storage = (section.get("capacity") or {}).get("storage")
    return parse_bytes(str(storage)) if storage else 0


def rejection(pvc: Obj) -> str | None:
    """Why we cannot provision this claim at all (no retry helps), or None."""
    spec = pvc.get("spec") or {}
    if spec.get("volumeMode", "Filesystem") == "Block":
        return "volumeMode Block is not supported: GlusterFS volumes are file systems"
    if spec.get("selector"):
        return "claims with a selector cannot be dynamically provisioned; remove spec.selector"
    modes = spec.get("accessModes") or []
    if not modes:
        return "the claim has no accessModes"
    unknown = sorted(set(modes) - ACCESS_MODES)
    if unknown:
        return f"unsupported access modes {', '.join(unknown)}"
    if requested_bytes(pvc) <= 0:
        return "the claim requests no storage (spec.resources.requests.storage)"
    return None


def is_ours_pv(pv: Obj, driver: str) -> bool:
    csi = (pv.get("spec") or {}).get("csi") or {}
    return annotations(pv).get(names.ANN_PROVISIONED_BY) == driver and csi.get("driver") == driver


def pv_phase(pv: Obj) -> str:
    return str((pv.get("status") or {}).get("phase", ""))


def reclaim_policy(pv: Obj) -> str:
    return str((pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") or "")


def volume_handle(pv: Obj) -> str:
    return str(((pv.get("spec") or {}).get("csi") or {}).get("volumeHandle", ""))


def pv_claim_uid(pv: Obj) -> str:
    return str(((pv.get("spec") or {}).get("claimRef") or {}).get("uid", ""))


def pv_gid(pv: Obj) -> int | None:
    return _int_annotation(pv, names.ANN_GID)


def claim_path(pvc: Obj, *, subresource: str | None = None) -> str:
    return path_for(
        plural="persistentvolumeclaims",
        namespace=namespace(pvc),
        name=name(pvc),
        subresource=subresource,
    )


def pv_path(pv_name: str) -> str:
    return path_for(plural="persistentvolumes", name=pv_name)


def claim_gid(pvc: Obj) -> int | None:
    """The GID recorded with our provisioning intent on a claim, if any."""
    return _int_annotation(pvc, names.ANN_CLAIM_GID)


def recorded_location(pvc: Obj, params: ProvisioningParams) -> ProvisioningParams:
    """`params` with the Heketi the claim's intent names (URL, user, Secret, CA: what
    `heketi_annotations` recorded before the first create), so a retry finishes the
    first attempt's volume where it was made, even if the class changed since. The
    class's inline key is kept only for the same URL. No recorded URL: `params`."""
    ann = annotations(pvc)
    url = ann.get(names.ANN_HEKETI_URL)
    if not url:
        return params
    url = parse_rest_url(url, source=f"annotation {names.ANN_HEKETI_URL} of the claim")
    ca_file = ann.get(names.ANN_HEKETI_CA) or None
    if ca_file is not None and not ca_file.startswith("/"):
        raise errors.FailedPrecondition(
            f"annotation {names.ANN_HEKETI_CA} of the claim must be an absolute path; "
            f"got {ca_file!r}"
        )
    namespace, secret = ann.get(names.ANN_SECRET_NAMESPACE), ann.get(names.ANN_SECRET_NAME)
    recorded_secret = (namespace, secret) if namespace and secret else (None, None)
    return replace(
        params,
        rest_url=url,
        rest_user=ann.get(names.ANN_HEKETI_USER) or params.rest_user,
        rest_auth_enabled=params.rest_auth_enabled or recorded_secret[1] is not None,
        rest_user_key=params.rest_user_key if url == params.rest_url else None,
        secret_namespace=recorded_secret[0],
        secret_name=recorded_secret[1],
        rest_ca_file=ca_file,
    )


def recorded_volume_name(pvc: Obj) -> str | None:
    """The Heketi volume name the claim's intent recorded, if any."""
    return annotations(pvc).get(names.ANN_HEKETI_VOLUME_NAME) or None


def migrated_gid(pvc: Obj) -> int | None:
    """The GID of the in-tree PV `migrate` recorded on a claim (names.ANN_MIGRATION_RECORD)."""
    raw = annotations(pvc).get(names.ANN_MIGRATION_RECORD)
    if not raw:
        return None
    try:
        original = json.loads(raw)["original"]
        return _int_annotation(original, names.ANN_GID)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _int_annotation(obj: Obj, key: str) -> int | None:
    raw = annotations(obj).get(key)
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


def build_pv(
    *,
    pvc: Obj,
    storage_class: Mapping[str, Any],
    params: ProvisioningParams,
    volume: Volume,
    driver: str,
    gid: int,
    cloned_from: str | None = None,
) -> Obj:
    """The PV for `pvc` backed by Heketi `volume`, pre-bound to the claim; a clone's
    `volumeAttributes` name the volume it was `cloned_from`."""
    ann = {
        names.ANN_PROVISIONED_BY: driver,
        names.ANN_GID: str(gid),
        **heketi_annotations(params, volume_name=volume.name),
    }
    clone = {names.CTX_CLONE_OF: cloned_from} if cloned_from is not None else {}
    spec: dict[str, Any] = {
        "capacity": {"storage": gib_quantity(volume.size_gib)},
        "accessModes": list((pvc.get("spec") or {}).get("accessModes") or []),
        "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy")
        or DEFAULT_RECLAIM_POLICY,
        "storageClassName": name(dict(storage_class)),
        "volumeMode": "Filesystem",
        "claimRef": {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "namespace": namespace(pvc), "name": name(pvc), "uid": uid(pvc),
        },
        "csi": {"driver": driver, "volumeHandle": volume.id,
                "volumeAttributes": volume_context(volume) | clone},
    }  # fmt: skip
    if storage_class.get("mountOptions"):
        spec["mountOptions"] = list(storage_class["mountOptions"])
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv_name_for(pvc), "annotations": ann,
                     "finalizers": [names.PV_FINALIZER]},
        "spec": spec,
    }  # fmt: skip
