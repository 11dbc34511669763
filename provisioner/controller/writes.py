"""The reconcilers' writes, in one place: made only while leading, and remembered
until the watch shows them.

Every write a reconciler makes — to a claim, a PV or a Heketi volume — is a method
of `Writes`, which checks the lease before it sends anything. The reconcilers hold
no other writer: they read the API through `KubeReads` and Heketi through read-only
lookups, so a new write cannot skip the check (a test holds them to it). Events and
the Lease are written by their own components (`events.py`, `leader.py`).
"""

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, ParamSpec, Protocol, TypeVar

from provisioner import errors
from provisioner.controller import objects as o
from provisioner.controller.informer import Informer
from provisioner.kube.api import KubeApi, Obj, path_for
from provisioner.volumes import VolumeService

#: How long a reconcile trusts that the watch will deliver our own write before it
#: acts on the (older) cached object anyway.
EXPECTATION_TTL_SECONDS: Final = 30.0

_P = ParamSpec("_P")
_R = TypeVar("_R")


class NotLeading(errors.Aborted):
    """This instance lost (or never had) the lease: it must not act."""


class Expectations:
    """Per key, the resourceVersions our own writes made obsolete.

    A reconcile of a key whose cached copy is one of those (the watch has not yet
    delivered our write) would act on stale data, e.g. provision again a claim we
    just bound; it waits for the watch event instead, which re-queues the key. The
    check needs no ordering of resourceVersions: any other cached version means
    the cache moved on. A TTL bounds the wait should an event never come.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._stale: dict[str, tuple[frozenset[str], float]] = {}

    def wrote(self, key: str, *, obsolete: set[str]) -> None:
        """We changed `key`; versions in `obsolete` no longer describe it."""
        with self._lock:
            self._stale[key] = (frozenset(obsolete), self._clock() + EXPECTATION_TTL_SECONDS)

    def forget(self, key: str) -> None:
        with self._lock:
            self._stale.pop(key, None)

    def waiting(self, key: str, cached_version: str | None) -> float:
        """Seconds to wait for the cache to catch up with our write (0: act now)."""
        with self._lock:
            entry = self._stale.get(key)
            if entry is None:
                return 0.0
            left = entry[1] - self._clock()
            if cached_version not in entry[0] or left <= 0:
                del self._stale[key]
                return 0.0
            return left


class KubeReads(Protocol):
    """The Kubernetes API as the reconcilers use it directly: reads only."""

    def get(self, path: str) -> Obj: ...


class Writes:
    """The reconcilers' writes, one method each; every one raises NotLeading, before
    anything is sent, unless this instance may act now. A claim write also remembers
    which cached versions of the claim it made stale (`expectations`)."""

    def __init__(
        self,
        *,
        api: KubeApi,
        volumes: VolumeService,
        claims: Informer,
        leading: Callable[[], bool],
        expectations: Expectations | None = None,
    ) -> None:
        self._api = api
        self._claims = claims
        self._leading = leading
        self.expectations = expectations or Expectations()
        # Heketi, through the provisioning core: its writes, each after the lease check
        self.ensure_volume = self._guarded(volumes.ensure_volume)
        self.ensure_clone = self._guarded(volumes.ensure_clone)
        self.expand_volume = self._guarded(volumes.expand_volume)
        self.delete_volume = self._guarded(volumes.delete_volume)

    def _guard(self) -> None:
        if not self._leading():
            raise NotLeading("not the leader")

    def _guarded(self, write: Callable[_P, _R]) -> Callable[_P, _R]:
        """`write` (same signature), made only after the lease check."""

        def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            self._guard()
            return write(*args, **kwargs)

        return guarded

    # -- Kubernetes -------------------------------------------------------------------
    def patch_claim(self, pvc: Obj, operations: Sequence[Mapping[str, Any]]) -> Obj:
        """JSON patch of claim `pvc` (its `test` operations guard against a change)."""
        self._guard()
        return self._claim_write(pvc, lambda: self._api.json_patch(o.claim_path(pvc), operations))

    def patch_claim_status(self, pvc: Obj, status: Mapping[str, Any]) -> Obj:
        """Merge patch of the claim's `status` subresource."""
        self._guard()
        path = o.claim_path(pvc, subresource="status")
        return self._claim_write(pvc, lambda: self._api.merge_patch(path, {"status": status}))

    def create_pv(self, body: Mapping[str, Any]) -> Obj:
        self._guard()
        return self._api.create(path_for(plural="persistentvolumes"), body)

    def patch_pv(self, pv: Obj, patch: Mapping[str, Any]) -> Obj:
        """Merge patch of PV `pv` (with `metadata.resourceVersion` in `patch`: only of
        that version)."""
        self._guard()
        return self._api.merge_patch(o.pv_path(o.name(pv)), patch)

    def delete_pv(self, pv: Obj) -> None:
        """Delete PV `pv`, that very object (a precondition on its uid)."""
        self._guard()
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": o.uid(pv)}}
        self._api.delete(o.pv_path(o.name(pv)), body=body)

    def _claim_write(self, before: Obj, write: Callable[[], Obj]) -> Obj:
        """Run `write` (a change of claim `before`) and remember that neither `before`
        nor the copy cached before the write describes the claim any more."""
        key = f"{before['metadata']['namespace']}/{before['metadata']['name']}"
        cached = self._claims.get(key)
        obsolete = {str(before["metadata"].get("resourceVersion", ""))}
        if cached is not None:
            obsolete.add(str(cached["metadata"].get("resourceVersion", "")))
        updated = write()
        obsolete.discard(str(updated.get("metadata", {}).get("resourceVersion", "")))
        self.expectations.wrote(key, obsolete=obsolete)
        return updated
