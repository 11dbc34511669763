"""Kubernetes reads of the audit, and the ConfigMap ledger of first orphan sightings."""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

from provisioner import errors
from provisioner.audit.findings import ClusterState, OrphanVolume, Report, _meta
from provisioner.kube.api import KubeApi, KubeNotFound, path_for
from provisioner.kube.secrets import SecretKeys

#: ConfigMap holding first sightings of orphans (only written by --delete-orphans runs).
DEFAULT_STATE_CONFIGMAP: Final = "glusterfs-provisioner-audit"
STATE_KEY: Final = "orphans.json"
#: Page size of Kubernetes list calls (keeps memory flat with 10,000s of objects).
KUBE_PAGE_SIZE: Final = 500


def iso(ts: float) -> str:
    """Epoch seconds as an ISO 8601 UTC timestamp."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeReader:
    """The few Kubernetes reads and writes the audit makes, on plain dicts."""

    def __init__(self, api: KubeApi) -> None:
        self._api = api

    def list(self, path: str) -> Iterator[dict[str, Any]]:
        """All items of a collection, page by page."""
        token = ""
        while True:
            query = [("limit", str(KUBE_PAGE_SIZE))] + ([("continue", token)] if token else [])
            page = self._api.list(path, query=query)
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return

    def snapshot(self) -> ClusterState:
        return ClusterState(
            pvs=tuple(self.list(path_for(plural="persistentvolumes"))),
            pvcs=tuple(self.list(path_for(plural="persistentvolumeclaims"))),
            storage_classes=tuple(
                self.list(path_for(group="storage.k8s.io", plural="storageclasses"))
            ),
            events=tuple(self.list(path_for(plural="events"))),
        )

    def get(self, path: str) -> dict[str, Any] | None:
        try:
            return self._api.get(path)
        except KubeNotFound:
            return None

    def secret_key(self, namespace: str, name: str) -> str:
        """The Heketi key of a `kubernetes.io/glusterfs` Secret, as the controller reads it."""
        return SecretKeys(self._api).key(namespace, name)

    def put(self, path: str, collection: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Replace (when `obj` has a resourceVersion) or create; the stored object."""
        if _meta(obj).get("resourceVersion"):
            return self._api.update(path, obj)
        return self._api.create(collection, obj)


# ---------------------------------------------------------------------------- ledger


@dataclass
class OrphanLedger:
    """First sightings of orphans, per Heketi URL, kept in a ConfigMap.

    ``seen`` maps volume id → first-seen epoch seconds for the audited Heketi URL.
    """

    namespace: str
    name: str
    heketi_url: str
    seen: dict[str, float] = field(default_factory=dict)
    _doc: dict[str, Any] = field(default_factory=dict)
    _configmap: dict[str, Any] | None = None

    @property
    def _path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/configmaps/{self.name}"

    def load(self, kube: KubeReader) -> None:
        self._configmap = kube.get(self._path)
        raw = ((self._configmap or {}).get("data") or {}).get(STATE_KEY, "{}")
        try:
            self._doc = json.loads(raw)
            entries = self._doc.get(self.heketi_url.rstrip("/"), {})
            self.seen = {str(vid): float(ts) for vid, ts in entries.items()}
        except (ValueError, TypeError, AttributeError) as exc:  # JSONDecodeError is a ValueError
            raise errors.FailedPrecondition(
                f"ConfigMap {self.namespace}/{self.name} key {STATE_KEY} is not JSON of "
                f"{{heketi url: {{volume id: epoch seconds}}}} ({exc}); "
                "delete the ConfigMap to start the orphan clock again"
            ) from exc

    def save(self, kube: KubeReader) -> None:
        self._doc[self.heketi_url.rstrip("/")] = self.seen
        obj = dict(self._configmap or {})
        obj.setdefault("apiVersion", "v1")
        obj.setdefault("kind", "ConfigMap")
        meta = dict(obj.get("metadata") or {"name": self.name, "namespace": self.namespace})
        meta.setdefault("labels", {})["app.kubernetes.io/managed-by"] = "glusterfs-provisioner"
        obj["metadata"] = meta
        obj["data"] = {STATE_KEY: json.dumps(self._doc, sort_keys=True)}
        collection = f"/api/v1/namespaces/{self.namespace}/configmaps"
        self._configmap = kube.put(self._path, collection, obj)


def record_sightings(
    report: Report, ledger: OrphanLedger, *, now: float
) -> tuple[OrphanVolume, ...]:
    """Keep first sightings of current orphans, forget the rest; orphans with first_seen."""
    current = {o.id for o in report.orphaned_volumes}
    ledger.seen = {vid: ts for vid, ts in ledger.seen.items() if vid in current}
    for vid in current:
        ledger.seen.setdefault(vid, now)
    return tuple(replace(o, first_seen=iso(ledger.seen[o.id])) for o in report.orphaned_volumes)
