"""Per-type create/update rules: defaults, server-set fields, validation (422 Invalid).

Each rule follows what the kube-apiserver's registry strategy for the type does,
limited to what a storage provisioner can observe.
"""

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

from testbed.kube import events, network
from testbed.kube.errors import invalid
from testbed.kube.quantity import QuantityError, parse_quantity
from testbed.kube.resources import ResourceType
from testbed.kube.selectors import LABEL_VALUE, NAME_PART

JSON = dict[str, Any]
Cause = tuple[str, str, str]  # field, reason, message

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
_RECLAIM = ("Retain", "Delete", "Recycle")
_PV_SOURCES = (
    "csi",
    "hostPath",
    "nfs",
    "glusterfs",
    "local",
    "iscsi",
    "fc",
    "rbd",
    "cephfs",
    "azureFile",
    "azureDisk",
    "awsElasticBlockStore",
    "gcePersistentDisk",
    "cinder",
    "flexVolume",
    "vsphereVolume",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "quobyte",
    "photonPersistentDisk",
    "flocker",
)
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"

FORBIDDEN = "FieldValueForbidden"
REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
UNSUPPORTED = "FieldValueNotSupported"


def _name_causes(rt: ResourceType, name: str) -> list[Cause]:
    if rt.plural == "namespaces":
        if len(name) > 63 or not _LABEL.match(name):
            return [
                (
                    "metadata.name",
                    INVALID,
                    f'Invalid value: "{name}": a lowercase RFC 1123 '
                    "label must consist of lower case alphanumeric characters or '-', and must "
                    "start and end with an alphanumeric character",
                )
            ]
        return []
    if len(name) > 253 or not _SUBDOMAIN.match(name):
        return [
            (
                "metadata.name",
                INVALID,
                f'Invalid value: "{name}": a lowercase RFC 1123 '
                "subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
                "must start and end with an alphanumeric character",
            )
        ]
    return []


def _label_causes(meta: JSON) -> list[Cause]:
    causes: list[Cause] = []
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        return [("metadata.labels", INVALID, "Invalid value: labels must be a map of strings")]
    for key, value in labels.items():
        name = key.rpartition("/")[2]
        if not NAME_PART.match(name) or len(name) > 63:
            causes.append(
                (
                    "metadata.labels",
                    INVALID,
                    f'Invalid value: "{key}": name part must '
                    "consist of alphanumeric characters, '-', '_' or '.'",
                )
            )
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            causes.append(
                (
                    "metadata.labels",
                    INVALID,
                    f'Invalid value: "{value}": a valid '
                    "label must be an empty string or consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character",
                )
            )
    return causes


def _quantity_causes(field: str, value: Any, *, required: bool) -> list[Cause]:
    if value is None:
        return [(field, REQUIRED, "Required value")] if required else []
    try:
        amount = parse_quantity(value)
    except QuantityError as err:
        return [(field, INVALID, f'Invalid value: "{value}": {err}')]
    if amount <= 0:
        return [(field, INVALID, f'Invalid value: "{value}": must be greater than zero')]
    return []


def _access_mode_causes(spec: JSON) -> list[Cause]:
    modes = spec.get("accessModes") or []
    if not modes:
        return [
            ("spec.accessModes", REQUIRED, "Required value: at least 1 access mode is required")
        ]
    bad = [m for m in modes if m not in _ACCESS_MODES]
    if bad:
        supported = ", ".join(f'"{m}"' for m in _ACCESS_MODES)
        return [
            (
                "spec.accessModes",
                UNSUPPORTED,
                f'Unsupported value: "{bad[0]}": supported values: {supported}',
            )
        ]
    return []


# --- PersistentVolumeClaim ----------------------------------------------------------------


def _pvc_validate(obj: JSON) -> list[Cause]:
    spec = obj.get("spec") or {}
    requests = (spec.get("resources") or {}).get("requests") or {}
    causes = _access_mode_causes(spec)
    causes += _quantity_causes("spec.resources[storage]", requests.get("storage"), required=True)
    return causes


def _storage(obj: JSON, section: str, field: str) -> Any:
    return ((obj.get(section) or {}).get(field) or {}).get("storage")


def _pvc_validate_update(new: JSON, old: JSON) -> list[Cause]:
    causes = _pvc_validate(new)
    if causes:
        return causes
    new_spec, old_spec = dict(new.get("spec") or {}), dict(old.get("spec") or {})
    if not old_spec.get("volumeName"):
        old_spec["volumeName"] = new_spec.get("volumeName")
    if old_spec.get("storageClassName") is None and new_spec.get("storageClassName"):
        old_spec["storageClassName"] = new_spec["storageClassName"]
    bound = (old.get("status") or {}).get("phase") == "Bound"
    old_size = old_spec.get("resources", {}).get("requests", {}).get("storage")
    new_size = new_spec.get("resources", {}).get("requests", {}).get("storage")
    if bound:
        new_spec = _with_storage(new_spec, old_size)
    old_spec = {k: v for k, v in old_spec.items() if v is not None}
    new_spec = {k: v for k, v in new_spec.items() if v is not None}
    if _normalised(new_spec) != _normalised(old_spec):
        causes.append(
            (
                "spec",
                FORBIDDEN,
                "Forbidden: spec is immutable after creation except "
                "resources.requests and volumeAttributesClassName for bound claims",
            )
        )
    if parse_quantity(new_size) < parse_quantity(old_size):
        causes.append(
            (
                "spec.resources.requests.storage",
                FORBIDDEN,
                "Forbidden: field can not be less than previous value",
            )
        )
    return causes


def _with_storage(spec: JSON, size: Any) -> JSON:
    resources = dict(spec.get("resources") or {})
    resources["requests"] = {**(resources.get("requests") or {}), "storage": size}
    return {**spec, "resources": resources}


def _normalised(spec: JSON) -> JSON:
    """Quantities compared by value, as Semantic.DeepEqual does."""
    resources = spec.get("resources") or {}
    out = dict(spec)
    out["resources"] = {
        section: {k: parse_quantity(v) for k, v in (resources.get(section) or {}).items()}
        for section in ("requests", "limits")
        if resources.get(section)
    }
    return out


def _pvc_create(obj: JSON, ctx: "CreateContext") -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("volumeMode", "Filesystem")
    if spec.get("storageClassName") is None and ctx.default_storage_class:
        annotations = obj["metadata"].get("annotations") or {}
        if "volume.beta.kubernetes.io/storage-class" not in annotations:
            spec["storageClassName"] = ctx.default_storage_class
    finalizers = obj["metadata"].get("finalizers") or []
    if ctx.pv_protection and isinstance(finalizers, list) and PVC_PROTECTION not in finalizers:
        obj["metadata"]["finalizers"] = [*finalizers, PVC_PROTECTION]
    obj["status"] = {"phase": "Pending"}


# --- PersistentVolume ---------------------------------------------------------------------


def _pv_sources(spec: JSON) -> list[str]:
    return [s for s in _PV_SOURCES if spec.get(s) is not None]


def _pv_validate(obj: JSON) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes = _access_mode_causes(spec)
    causes += _quantity_causes("spec.capacity", _storage(obj, "spec", "capacity"), required=True)
    sources = _pv_sources(spec)
    if not sources:
        causes.append(("spec", REQUIRED, "Required value: must specify a volume type"))
    elif len(sources) > 1:
        causes.append(
            (f"spec.{sources[1]}", FORBIDDEN, "Forbidden: may not specify more than 1 volume type")
        )
    csi = spec.get("csi")
    if isinstance(csi, dict):
        for field in ("driver", "volumeHandle"):
            if not csi.get(field):
                causes.append((f"spec.csi.{field}", REQUIRED, "Required value"))
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy not in _RECLAIM:
        supported = ", ".join(f'"{p}"' for p in _RECLAIM)
        causes.append(
            (
                "spec.persistentVolumeReclaimPolicy",
                UNSUPPORTED,
                f'Unsupported value: "{policy}": supported values: {supported}',
            )
        )
    return causes


def _pv_validate_update(new: JSON, old: JSON) -> list[Cause]:
    causes = _pv_validate(new)
    new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    if {s: new_spec.get(s) for s in _PV_SOURCES} != {s: old_spec.get(s) for s in _PV_SOURCES}:
        causes.append(
            (
                "spec.persistentvolumesource",
                FORBIDDEN,
                "Forbidden: spec.persistentvolumesource is immutable after creation",
            )
        )
    return causes


#: plugin/pkg/admission/storage/storageobjectinuseprotection (admission.go): on create,
#: every PV and every PVC gets its finalizer unless it has it already.
PV_PROTECTION = "kubernetes.io/pv-protection"
PVC_PROTECTION = "kubernetes.io/pvc-protection"


def _pv_create(obj: JSON, ctx: "CreateContext") -> None:
    finalizers = obj["metadata"].get("finalizers") or []
    if ctx.pv_protection and isinstance(finalizers, list) and PV_PROTECTION not in finalizers:
        obj["metadata"]["finalizers"] = [*finalizers, PV_PROTECTION]
    spec = obj.setdefault("spec", {})
    spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
    spec.setdefault("volumeMode", "Filesystem")
    obj["status"] = {"phase": "Pending", "lastPhaseTransitionTime": ctx.now}


# --- StorageClass, Secret, Namespace, Event, Lease ----------------------------------------


def _sc_validate(obj: JSON) -> list[Cause]:
    if not obj.get("provisioner"):
        return [("provisioner", REQUIRED, "Required value")]
    return []


def _sc_validate_update(new: JSON, old: JSON) -> list[Cause]:
    causes = _sc_validate(new)
    for field in ("parameters", "provisioner", "reclaimPolicy", "volumeBindingMode"):
        if (new.get(field) or None) != (old.get(field) or None):
            causes.append((field, FORBIDDEN, f"Forbidden: updates to {field} are forbidden."))
    return causes


def _sc_create(obj: JSON, ctx: "CreateContext") -> None:
    obj.setdefault("reclaimPolicy", "Delete")
    obj.setdefault("volumeBindingMode", "Immediate")


def _secret_fold(obj: JSON) -> None:
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict):
        data = dict(obj.get("data") or {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj["data"] = data


def _secret_validate(obj: JSON) -> list[Cause]:
    for key, value in (obj.get("data") or {}).items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError, ValueError):
            return [(f"data[{key}]", INVALID, "Invalid value: illegal base64 data")]
    return []


def _secret_create(obj: JSON, ctx: "CreateContext") -> None:
    obj.setdefault("type", "Opaque")
    _secret_fold(obj)


def _namespace_create(obj: JSON, ctx: "CreateContext") -> None:
    name = obj["metadata"]["name"]
    labels = dict(obj["metadata"].get("labels") or {})
    labels["kubernetes.io/metadata.name"] = name
    obj["metadata"]["labels"] = labels
    obj["spec"] = {"finalizers": ["kubernetes"]}
    obj["status"] = {"phase": "Active"}


def _no_causes(obj: JSON) -> list[Cause]:
    return []


def _no_update_causes(new: JSON, old: JSON) -> list[Cause]:
    return []


def _nothing(obj: JSON, ctx: "CreateContext") -> None:
    return None


class CreateContext:
    """What create defaults may depend on: the time, the default StorageClass, and the
    ClusterIPs Services hold (a new Service gets a free one)."""

    def __init__(
        self,
        *,
        now: str,
        default_storage_class: str | None,
        cluster_ips: frozenset[str] = frozenset(),
        pv_protection: bool = False,
    ) -> None:
        self.now = now
        self.default_storage_class = default_storage_class
        self.cluster_ips = cluster_ips
        self.pv_protection = pv_protection


Prepare = Callable[[JSON, CreateContext], None]
Validate = Callable[[JSON], list[Cause]]
ValidateUpdate = Callable[[JSON, JSON], list[Cause]]

_PREPARE: dict[str, Prepare] = {
    "persistentvolumeclaims": _pvc_create,
    "persistentvolumes": _pv_create,
    "storageclasses": _sc_create,
    "secrets": _secret_create,
    "namespaces": _namespace_create,
    "endpoints": lambda obj, ctx: network.endpoints_create(obj),
    "services": lambda obj, ctx: network.service_create(obj, ctx.cluster_ips),
}
_VALIDATE: dict[str, Validate] = {
    "persistentvolumeclaims": _pvc_validate,
    "persistentvolumes": _pv_validate,
    "storageclasses": _sc_validate,
    "secrets": _secret_validate,
    "endpoints": network.endpoints_validate,
    "services": network.service_validate,
}
_VALIDATE_UPDATE: dict[str, ValidateUpdate] = {
    "persistentvolumeclaims": _pvc_validate_update,
    "persistentvolumes": _pv_validate_update,
    "storageclasses": _sc_validate_update,
    "secrets": lambda new, old: _secret_validate(new),
    "endpoints": lambda new, old: network.endpoints_validate(new),
    "services": lambda new, old: network.service_validate(new),
}


def _raise(rt: ResourceType, obj: JSON, causes: list[Cause]) -> None:
    if causes:
        raise invalid(rt.kind, rt.group, obj.get("metadata", {}).get("name", ""), causes)


def prepare_create(rt: ResourceType, obj: JSON, ctx: CreateContext) -> None:
    """Apply defaults and reset what a client may not set on create (e.g. PVC status)."""
    _PREPARE.get(rt.bucket, _nothing)(obj, ctx)


def validate_create(rt: ResourceType, obj: JSON) -> None:
    meta = obj["metadata"]
    causes = _name_causes(rt, meta.get("name", "")) + _label_causes(meta)
    causes += _VALIDATE.get(rt.bucket, _no_causes)(obj)
    causes += _event_causes(rt, obj)
    _raise(rt, obj, causes)


def _event_causes(rt: ResourceType, obj: JSON) -> list[Cause]:
    if rt.bucket != "events":
        return []
    namespace = obj["metadata"].get("namespace", "")
    return events.validation_causes(obj, namespace, events_api=rt.group == "events.k8s.io")


def prepare_update(rt: ResourceType, new: JSON, old: JSON, *, status: bool) -> JSON:
    """The object to store: main writes keep status, `/status` writes keep all but status."""
    _UPDATE_DEFAULTS.get(rt.bucket, _no_defaults)(new)
    if not rt.has_status:
        return new
    if status:
        merged = {k: v for k, v in old.items() if k != "status"}
        merged["metadata"] = {
            **old["metadata"],
            "resourceVersion": new["metadata"].get("resourceVersion"),
        }
        if "status" in new:
            merged["status"] = new["status"]
        return merged
    if "status" in old:
        new["status"] = old["status"]
    else:
        new.pop("status", None)
    if rt.plural == "namespaces":
        new["spec"] = old.get("spec", {})
    return new


def _no_defaults(obj: JSON) -> None:
    return None


def _pvc_defaults(obj: JSON) -> None:
    obj.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")


def _pv_defaults(obj: JSON) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
    spec.setdefault("volumeMode", "Filesystem")


def _sc_defaults(obj: JSON) -> None:
    obj.setdefault("reclaimPolicy", "Delete")
    obj.setdefault("volumeBindingMode", "Immediate")


def _secret_defaults(obj: JSON) -> None:
    obj.setdefault("type", "Opaque")
    _secret_fold(obj)


#: Defaulting the real server applies when it decodes any write, updates included.
_UPDATE_DEFAULTS: dict[str, Callable[[JSON], None]] = {
    "persistentvolumeclaims": _pvc_defaults,
    "persistentvolumes": _pv_defaults,
    "storageclasses": _sc_defaults,
    "secrets": _secret_defaults,
}


def validate_update(rt: ResourceType, new: JSON, old: JSON) -> None:
    causes = _label_causes(new["metadata"])
    causes += _finalizer_causes(new, old)
    causes += _VALIDATE_UPDATE.get(rt.bucket, _no_update_causes)(new, old)
    causes += _event_causes(rt, new)
    _raise(rt, new, causes)


def _finalizer_causes(new: JSON, old: JSON) -> list[Cause]:
    if not old["metadata"].get("deletionTimestamp"):
        return []
    before = set(old["metadata"].get("finalizers") or [])
    added = [f for f in new["metadata"].get("finalizers") or [] if f not in before]
    if not added:
        return []
    listed = ", ".join(f'"{f}"' for f in added)
    return [
        (
            "metadata.finalizers",
            FORBIDDEN,
            "Forbidden: no new finalizers can be added if "
            f"the object is being deleted, found new finalizers []string{{{listed}}}",
        )
    ]


def check_uid_unchanged(rt: ResourceType, new: JSON, old: JSON) -> None:
    uid = new["metadata"].get("uid")
    if uid and uid != old["metadata"].get("uid"):
        raise invalid(
            rt.kind,
            rt.group,
            old["metadata"]["name"],
            [("metadata.uid", INVALID, f'Invalid value: "{uid}": field is immutable')],
        )
