"""The resource types the server serves, and the discovery documents describing them."""

from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

_ALL_VERBS = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)


@dataclass(frozen=True)
class ResourceType:
    """One REST resource (a group/version/plural) and how it behaves."""

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    #: Whether `/status` exists; then main writes keep status and status writes keep the rest.
    has_status: bool = False
    #: Store bucket; events.k8s.io/v1 Events share core/v1's.
    store: str = ""
    #: Field selector labels the real server accepts beyond metadata.name/namespace.
    fields: tuple[str, ...] = ()
    #: Strategic-merge list rules: dotted path -> merge key ("" = set of primitives).
    merge_lists: tuple[tuple[str, str], ...] = ()
    #: DELETE answers with the deleted object (not a Status), as the apiserver's store for
    #: the type is configured (ReturnDeletedObject); the client's return types follow it.
    returns_deleted: bool = False
    #: metadata.generation is the type's own business (its registry strategy.go): Pods set it
    #: to 1 on create and bump it when the spec changes (pkg/registry/core/pod/strategy.go);
    #: Leases, PVs, PVCs, Secrets, ConfigMaps, Events, Namespaces and StorageClasses never
    #: set it (their PrepareForCreate/PrepareForUpdate leave it alone).
    sets_generation: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def bucket(self) -> str:
        return self.store or self.plural


_META_LISTS = (("metadata.finalizers", ""), ("metadata.ownerReferences", "uid"))

_EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)

_EVENTS_V1_FIELDS = (
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reason",
    "reportingController",
    "type",
)

_PVC_LISTS = (*_META_LISTS, ("status.conditions", "type"))


def _core(kind: str, plural: str, namespaced: bool, **extra: Any) -> ResourceType:
    return ResourceType("", "v1", kind, plural, kind.lower(), namespaced, **extra)


def _grouped(group: str, kind: str, plural: str, namespaced: bool, **extra: Any) -> ResourceType:
    return ResourceType(group, "v1", kind, plural, kind.lower(), namespaced, **extra)


RESOURCES: tuple[ResourceType, ...] = (
    _core(
        "Namespace",
        "namespaces",
        False,
        short_names=("ns",),
        has_status=True,
        fields=("status.phase",),
        merge_lists=_META_LISTS,
    ),
    _core(
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        True,
        short_names=("pvc",),
        has_status=True,
        merge_lists=_PVC_LISTS,
        returns_deleted=True,
    ),
    _core(
        "PersistentVolume",
        "persistentvolumes",
        False,
        short_names=("pv",),
        has_status=True,
        merge_lists=_META_LISTS,
        returns_deleted=True,
    ),
    _core(
        "Pod",
        "pods",
        True,
        short_names=("po",),
        has_status=True,
        sets_generation=True,
        merge_lists=_META_LISTS,
        fields=(
            "spec.nodeName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
            "spec.schedulerName",
            "spec.restartPolicy",
        ),
    ),
    _core("Secret", "secrets", True, fields=("type",), merge_lists=_META_LISTS),
    _core("ConfigMap", "configmaps", True, short_names=("cm",), merge_lists=_META_LISTS),
    # In-tree GlusterFS PVs name an Endpoints object (the Gluster servers) and its
    # selector-less Service. Endpoints has no status; a Service has /status and its REST
    # storage answers DELETE with the deleted object (pkg/registry/core/service/storage).
    _core(
        "Endpoints",
        "endpoints",
        True,
        short_names=("ep",),
        merge_lists=_META_LISTS,
    ),
    _core(
        "Service",
        "services",
        True,
        short_names=("svc",),
        has_status=True,
        merge_lists=(*_META_LISTS, ("spec.ports", "port")),
        returns_deleted=True,
    ),
    _core(
        "Event", "events", True, short_names=("ev",), fields=_EVENT_FIELDS, merge_lists=_META_LISTS
    ),
    _grouped(
        "events.k8s.io",
        "Event",
        "events",
        True,
        short_names=("ev",),
        store="events",
        fields=_EVENTS_V1_FIELDS,
        merge_lists=_META_LISTS,
    ),
    _grouped(
        "storage.k8s.io",
        "StorageClass",
        "storageclasses",
        False,
        short_names=("sc",),
        merge_lists=_META_LISTS,
        returns_deleted=True,
    ),
    _grouped(
        "storage.k8s.io",
        "CSIDriver",
        "csidrivers",
        False,
        merge_lists=_META_LISTS,
        returns_deleted=True,
    ),
    _grouped("coordination.k8s.io", "Lease", "leases", True, merge_lists=_META_LISTS),
)

#: (group, version) -> plural -> type
BY_GROUP_VERSION: dict[tuple[str, str], dict[str, ResourceType]] = {}
for _rt in RESOURCES:
    BY_GROUP_VERSION.setdefault((_rt.group, _rt.version), {})[_rt.plural] = _rt

#: Preferred type for each plural name, used by the test-control API (`get("events", ...)`).
BY_PLURAL: dict[str, ResourceType] = {}
for _rt in RESOURCES:
    BY_PLURAL.setdefault(_rt.plural, _rt)

GROUPS: tuple[str, ...] = tuple(dict.fromkeys(rt.group for rt in RESOURCES if rt.group))


def stored_type(rt: ResourceType) -> ResourceType:
    """The type whose shape the store keeps for `rt` (core/v1 for events.k8s.io Events)."""
    return BY_GROUP_VERSION[("", "v1")][rt.plural] if rt.store else rt


def resource_type(plural: str) -> ResourceType:
    """The type served under `plural` (core group preferred); KeyError if unknown."""
    return BY_PLURAL[plural]


def api_versions(server_address: str) -> JSON:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group_doc(group: str) -> JSON:
    versions = sorted({rt.version for rt in RESOURCES if rt.group == group})
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group_list() -> JSON:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group_doc(g) for g in GROUPS]}


def api_group(group: str) -> JSON | None:
    if group not in GROUPS:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group)}


def _resource_entries(rt: ResourceType) -> list[JSON]:
    main: JSON = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(_ALL_VERBS),
    }
    if rt.short_names:
        main["shortNames"] = list(rt.short_names)
    entries = [main]
    if rt.has_status:
        entries.append(
            {
                "name": f"{rt.plural}/status",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": ["get", "patch", "update"],
            }
        )
    return entries


def api_resource_list(group: str, version: str) -> JSON | None:
    types = BY_GROUP_VERSION.get((group, version))
    if types is None:
        return None
    resources = [entry for rt in types.values() for entry in _resource_entries(rt)]
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }
