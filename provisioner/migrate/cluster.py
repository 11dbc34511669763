"""The Kubernetes reads and writes of `migrate`, on plain dicts (see provisioner.kube.api)."""

import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from provisioner import errors
from provisioner.kube.api import KubeApi, KubeInvalid, KubeNotFound, Obj, path_for

#: Page size of list calls: memory stays flat with 10,000s of objects.
PAGE_SIZE: Final = 500
#: Poll interval while waiting for the PV controller (it reacts within a second).
POLL_SECONDS: Final = 0.2


def meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = obj.get("metadata") or {}
    return value


def name_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("name", ""))


def namespace_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("namespace", ""))


def uid_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("uid", ""))


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    value: dict[str, str] = meta(obj).get("annotations") or {}
    return value


def finalizers_of(obj: Mapping[str, Any]) -> list[str]:
    value: list[str] = meta(obj).get("finalizers") or []
    return value


def deleting(obj: Mapping[str, Any]) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def phase_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("status") or {}).get("phase", ""))


def spec_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = obj.get("spec") or {}
    return value


def pv_path(name: str) -> str:
    return path_for(plural="persistentvolumes", name=name)


def pvc_path(namespace: str, name: str) -> str:
    return path_for(plural="persistentvolumeclaims", namespace=namespace, name=name)


def class_path(name: str | None = None) -> str:
    return path_for(group="storage.k8s.io", plural="storageclasses", name=name)


@dataclass(frozen=True)
class Snapshot:
    """Everything `plan` looks at, read once; look-ups by name are indexed (10,000s of
    PVs and claims must not cost a scan each)."""

    pvs: tuple[Obj, ...]
    claims: tuple[Obj, ...]
    endpoints: tuple[Obj, ...]
    classes: tuple[Obj, ...]

    @functools.cached_property
    def _claims(self) -> dict[tuple[str, str], Obj]:
        return {(namespace_of(c), name_of(c)): c for c in self.claims}

    @functools.cached_property
    def _endpoints(self) -> dict[tuple[str, str], Obj]:
        return {(namespace_of(e), name_of(e)): e for e in self.endpoints}

    @functools.cached_property
    def _classes(self) -> dict[str, Obj]:
        return {name_of(c): c for c in self.classes}

    @functools.cached_property
    def _pvs(self) -> dict[str, Obj]:
        return {name_of(p): p for p in self.pvs}

    def claim(self, namespace: str, name: str) -> Obj | None:
        return self._claims.get((namespace, name))

    def endpoints_named(self, namespace: str, name: str) -> Obj | None:
        return self._endpoints.get((namespace, name))

    def storage_class(self, name: str) -> Obj | None:
        return self._classes.get(name)

    def pv(self, name: str) -> Obj | None:
        return self._pvs.get(name)


class Cluster:
    """Reads (None for 404), writes and bounded waits against one API server."""

    def __init__(self, api: KubeApi, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self._clock = clock

    def list(self, path: str) -> Iterator[Obj]:
        token = ""
        while True:
            query = [("limit", str(PAGE_SIZE))] + ([("continue", token)] if token else [])
            page = self.api.list(path, query=query)
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return

    def snapshot(self) -> Snapshot:
        return Snapshot(
            pvs=tuple(self.list(path_for(plural="persistentvolumes"))),
            claims=tuple(self.list(path_for(plural="persistentvolumeclaims"))),
            endpoints=tuple(self.list(path_for(plural="endpoints"))),
            classes=tuple(self.list(class_path())),
        )

    def get(self, path: str) -> Obj | None:
        try:
            return self.api.get(path)
        except KubeNotFound:
            return None

    def annotate(self, path: str, annotations: Mapping[str, str | None]) -> Obj:
        """Merge-patch annotations (None removes one)."""
        return self.api.merge_patch(path, {"metadata": {"annotations": dict(annotations)}})

    def remove_finalizer(self, path: str, obj: Obj, finalizer: str) -> None:
        """Remove `finalizer` only if it is still where we saw it (JSON patch test + remove)."""
        current = finalizers_of(obj)
        if finalizer not in current:
            return
        at = f"/metadata/finalizers/{current.index(finalizer)}"
        ops: Sequence[Mapping[str, Any]] = [
            {"op": "test", "path": at, "value": finalizer},
            {"op": "remove", "path": at},
        ]
        try:
            self.api.json_patch(path, ops)
        except (KubeNotFound, KubeInvalid):
            return  # gone, or the list changed (the test op failed): the caller reads again

    def delete(self, path: str, *, uid: str) -> None:
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
        try:
            self.api.delete(path, body=body)
        except KubeNotFound:
            return

    def wait_for(self, what: str, ready: Callable[[], bool], *, timeout: float) -> None:
        """Poll `ready` until it holds; DeadlineExceeded naming `what` after `timeout` s."""
        deadline = self._clock() + timeout
        while not ready():
            if self._clock() >= deadline:
                raise errors.DeadlineExceeded(f"{what} did not happen within {timeout:g}s")
            time.sleep(POLL_SECONDS)
