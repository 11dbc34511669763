"""The part of kube-controller-manager's PV controllers a provisioner depends on.

It binds claims to volumes that name each other (PVC `spec.volumeName`, PV
`spec.claimRef`), fills claim status from the volume, marks volumes Released
when their claim is gone, and annotates pending claims with the provisioner of
their StorageClass. It is driven by the store's event history, like a watch.

From kubernetes/kubernetes `pkg/controller/volume/persistentvolume/pv_controller.go`:
`syncClaim` splits on the `pv.kubernetes.io/bind-completed` annotation; `syncBoundClaim`
sets a bound claim whose volume is gone (or whose `spec.volumeName` was emptied) to phase
`Lost` with a Warning `ClaimLost` Event and clears its status accessModes/capacity
(`updateClaimStatusWithEvent` with no volume), and binds it again (`bind`, phase `Bound`)
when a volume of that name returns whose `claimRef.uid` is the claim's UID; a volume
whose `claimRef.uid` is another claim's makes it `Lost` with `ClaimMisbound`.

From `pkg/controller/volume/pvprotection/pv_protection_controller.go` (`processPV`): every
PV not being deleted gets the `kubernetes.io/pv-protection` finalizer (the admission plugin
adds it at create; the controller adds it to PVs without it), and a PV being deleted loses
it only while its phase is not `Bound` (`isBeingUsed`).
"""

import threading
import uuid
from collections.abc import Callable
from typing import Any

from testbed.kube.claim_controllers import (
    EXTERNAL_EXPANDING,
    ExpandController,
    deletion_finalizers,
    release_claim,
)
from testbed.kube.errors import ApiError
from testbed.kube.objectmeta import now_rfc3339
from testbed.kube.resources import BY_GROUP_VERSION
from testbed.kube.store import Event, Store, Stored

JSON = dict[str, Any]
ClaimKey = tuple[str, str]

PVC = BY_GROUP_VERSION[("", "v1")]["persistentvolumeclaims"]
PV = BY_GROUP_VERSION[("", "v1")]["persistentvolumes"]
ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
PV_PROTECTION = "kubernetes.io/pv-protection"
EVENT = BY_GROUP_VERSION[("", "v1")]["events"]
CLAIM_LOST = "Bound claim has lost its PersistentVolume. Data on the volume is lost!"
CLAIM_LOST_REFERENCE = (
    "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!"
)
CLAIM_MISBOUND = "Two claims are bound to the same volume, this one is bound incorrectly"
#: How long the binder thread waits for events before looking at its stop flag.
POLL_SECONDS = 0.2


class BinderError(ValueError):
    """A bind the test asked for cannot be done (missing claim or volume)."""


def _claim_of(pv: JSON) -> ClaimKey | None:
    ref = (pv.get("spec") or {}).get("claimRef")
    if not ref or not ref.get("name"):
        return None
    return ref.get("namespace", ""), ref["name"]


def _bind_completed(claim: JSON) -> bool:
    return ANN_BIND_COMPLETED in (claim["metadata"].get("annotations") or {})


def _ref_matches(ref: JSON, claim: JSON) -> bool:
    meta = claim["metadata"]
    return (ref.get("namespace"), ref.get("name")) == (meta["namespace"], meta["name"]) and (
        not ref.get("uid") or ref["uid"] == meta["uid"]
    )


class PVBinder:
    """Binding rules as functions on the store, plus an optional background loop."""

    def __init__(self, store: Store, *, pv_protection: bool = False) -> None:
        self._store = store
        self._pv_protection = pv_protection
        self._expand = ExpandController(store)
        self._claims: dict[ClaimKey, set[str]] = {}
        #: The claim each indexed volume names: re-indexing one volume is O(1) at 50,000 pairs.
        self._claim_of_volume: dict[str, ClaimKey] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- explicit helpers (tests call these) ------------------------------------------------

    def bind_claim(self, namespace: str, name: str) -> None:
        """Bind a claim to the volume its `spec.volumeName` names, as the PV controller does."""
        with self._lock:
            claim = self._store.find("persistentvolumeclaims", namespace, name)
            if claim is None:
                raise BinderError(f"claim {namespace}/{name} does not exist")
            volume_name = (claim.obj.get("spec") or {}).get("volumeName")
            volume = self._store.find("persistentvolumes", "", volume_name or "")
            if volume is None:
                raise BinderError(
                    f"claim {namespace}/{name} names no existing volume "
                    f"(spec.volumeName={volume_name!r})"
                )
            self._bind(claim, volume)

    def release_volume(self, pv_name: str) -> None:
        """Mark a volume Released (its claim is gone), as the PV controller does."""
        with self._lock:
            if self._store.find("persistentvolumes", "", pv_name) is None:
                raise BinderError(f"volume {pv_name} does not exist")
            self._set_pv_phase(pv_name, "Released")

    # --- background loop -------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="kube-pv-binder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        cursor = self._resync()
        while not self._stop.is_set():
            events = self._store.events_after(cursor, POLL_SECONDS, self._store.cut_epoch)
            if self._store.closed:
                return
            if events is None:
                cursor = self._resync()
                continue
            for event in events:
                cursor = event.rv
                self._handle(event)

    def _resync(self) -> int:
        cursor = self._store.resource_version
        for stored in self._store.objects("persistentvolumes"):
            self._index(stored.obj["metadata"]["name"], stored.obj)
            self._guarded(self._sync_volume, stored.obj["metadata"]["name"])
        for stored in self._store.objects("persistentvolumeclaims"):
            meta = stored.obj["metadata"]
            self._guarded(self._sync_claim, meta["namespace"], meta["name"])
            self._guarded(self._claim_controllers, meta["namespace"], meta["name"])
        return cursor

    def _handle(self, event: Event) -> None:
        if event.bucket == "persistentvolumes":
            self._index(event.name, None if event.type == "DELETED" else event.obj)
            claim = _claim_of(event.obj)
            if event.type != "DELETED":
                self._guarded(self._sync_volume, event.name)
            if claim is not None:
                self._guarded(self._sync_claim, *claim)
        elif event.bucket == "pods" and self._pv_protection:
            for volume in (event.obj.get("spec") or {}).get("volumes") or []:
                claim_name = (volume.get("persistentVolumeClaim") or {}).get("claimName")
                if claim_name:
                    self._guarded(self._release_claim, event.namespace, claim_name)
        elif event.bucket == "storageclasses" and event.type != "DELETED":
            for stored in self._store.objects("persistentvolumeclaims"):
                if (stored.obj.get("spec") or {}).get("storageClassName") == event.name:
                    meta = stored.obj["metadata"]
                    self._guarded(self._sync_claim, meta["namespace"], meta["name"])
        elif event.bucket == "persistentvolumeclaims":
            if event.type != "DELETED":
                self._guarded(self._sync_claim, event.namespace, event.name)
                self._guarded(self._claim_controllers, event.namespace, event.name)
            for pv_name in list(self._claims.get((event.namespace, event.name), ())):
                self._guarded(self._sync_volume, pv_name)

    def _guarded(self, fn: Callable[..., None], *args: str) -> None:
        with self._lock:
            try:
                fn(*args)
            except ApiError:
                return  # the object changed or went away under us; its next event re-syncs

    def _index(self, pv_name: str, pv: JSON | None) -> None:
        previous = self._claim_of_volume.pop(pv_name, None)
        if previous is not None:
            names = self._claims.get(previous, set())
            names.discard(pv_name)
            if not names:
                self._claims.pop(previous, None)
        claim = _claim_of(pv) if pv is not None else None
        if claim is not None:
            self._claims.setdefault(claim, set()).add(pv_name)
            self._claim_of_volume[pv_name] = claim

    # --- rules -----------------------------------------------------------------------------

    def _sync_claim(self, namespace: str, name: str) -> None:
        claim = self._store.find("persistentvolumeclaims", namespace, name)
        if claim is None:
            return
        if _bind_completed(claim.obj):
            self._sync_bound_claim(claim)
            return
        volume_name = (claim.obj.get("spec") or {}).get("volumeName")
        if not volume_name:
            self._annotate_provisioner(claim)
            volume_name = self._prebound_volume(claim.obj)
            if volume_name is None:
                return
        volume = self._store.find("persistentvolumes", "", volume_name)
        if volume is None:
            return
        ref = (volume.obj.get("spec") or {}).get("claimRef")
        if ref and not _ref_matches(ref, claim.obj):
            return
        self._bind(claim, volume)

    def _sync_bound_claim(self, claim: Stored) -> None:
        """pv_controller.go `syncBoundClaim`."""
        volume_name = (claim.obj.get("spec") or {}).get("volumeName")
        if not volume_name:
            self._lose_claim(claim, "ClaimLost", CLAIM_LOST_REFERENCE)
            return
        volume = self._store.find("persistentvolumes", "", volume_name)
        if volume is None:
            self._lose_claim(claim, "ClaimLost", CLAIM_LOST)
            return
        ref = (volume.obj.get("spec") or {}).get("claimRef") or {}
        if ref.get("uid") and ref["uid"] != claim.obj["metadata"]["uid"]:
            self._lose_claim(claim, "ClaimMisbound", CLAIM_MISBOUND)
            return
        self._bind(claim, volume)

    def _lose_claim(self, claim: Stored, reason: str, message: str) -> None:
        """`updateClaimStatusWithEvent(claim, ClaimLost, nil, Warning, ...)`: only on change."""
        if (claim.obj.get("status") or {}).get("phase") == "Lost":
            return
        meta = claim.obj["metadata"]

        def change(doc: JSON) -> JSON:
            status = {k: v for k, v in (doc.get("status") or {}).items()}
            status.pop("accessModes", None)
            status.pop("capacity", None)
            doc["status"] = {**status, "phase": "Lost"}
            return doc

        self._store.mutate(PVC, meta["namespace"], meta["name"], change, status=True)
        self._warn(claim.obj, reason, message)

    def _claim_controllers(self, namespace: str, name: str) -> None:
        """The pvc-protection and expand controllers (`claim_controllers`)."""
        if self._pv_protection:
            self._release_claim(namespace, name)
        claim = self._store.find("persistentvolumeclaims", namespace, name)
        if claim is not None and self._expand.wants_external(namespace, name):
            self._warn(
                claim.obj,
                "ExternalExpanding",
                EXTERNAL_EXPANDING,
                kind="Normal",
                component="volume_expand",
            )

    def _release_claim(self, namespace: str, name: str) -> None:
        release_claim(self._store, namespace, name)

    def _warn(
        self,
        claim: JSON,
        reason: str,
        message: str,
        *,
        kind: str = "Warning",
        component: str = "persistentvolume-controller",
    ) -> None:
        meta, now = claim["metadata"], now_rfc3339()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}"},
            "involvedObject": {
                "kind": "PersistentVolumeClaim",
                "apiVersion": "v1",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self._store.create(EVENT, meta["namespace"], event)

    def _prebound_volume(self, claim: JSON) -> str | None:
        meta = claim["metadata"]
        for pv_name in sorted(self._claims.get((meta["namespace"], meta["name"]), ())):
            volume = self._store.find("persistentvolumes", "", pv_name)
            if volume is not None and _ref_matches(volume.obj["spec"]["claimRef"], claim):
                return pv_name
        return None

    def _annotate_provisioner(self, claim: Stored) -> None:
        class_name = (claim.obj.get("spec") or {}).get("storageClassName")
        sc = self._store.find("storageclasses", "", class_name or "")
        annotations = claim.obj["metadata"].get("annotations") or {}
        if sc is None or ANN_STORAGE_PROVISIONER in annotations:
            return
        provisioner = sc.obj.get("provisioner", "")
        self._annotate_claim(
            claim, {ANN_STORAGE_PROVISIONER: provisioner, ANN_BETA_STORAGE_PROVISIONER: provisioner}
        )

    def _annotate_claim(
        self, claim: Stored, annotations: dict[str, str], volume_name: str | None = None
    ) -> None:
        meta = claim.obj["metadata"]

        def change(doc: JSON) -> JSON:
            doc["metadata"]["annotations"] = {
                **(doc["metadata"].get("annotations") or {}),
                **annotations,
            }
            if volume_name is not None:
                doc.setdefault("spec", {})["volumeName"] = volume_name
            return doc

        self._store.mutate(PVC, meta["namespace"], meta["name"], change)

    def _bind(self, claim: Stored, volume: Stored) -> None:
        meta, pv_name = claim.obj["metadata"], volume.obj["metadata"]["name"]
        spec = claim.obj.get("spec") or {}
        if spec.get("volumeName") != pv_name:
            self._annotate_claim(
                claim, {ANN_BIND_COMPLETED: "yes", ANN_BOUND_BY_CONTROLLER: "yes"}, pv_name
            )
        elif (meta.get("annotations") or {}).get(ANN_BIND_COMPLETED) != "yes":
            self._annotate_claim(claim, {ANN_BIND_COMPLETED: "yes"})
        self._bind_volume(volume, claim.obj)
        pv_spec = volume.obj.get("spec") or {}
        status: JSON = {"phase": "Bound", "accessModes": pv_spec.get("accessModes", [])}
        if (claim.obj.get("status") or {}).get("phase") != "Bound":
            # capacity only when the claim becomes Bound (pv_controller updateClaimStatus):
            # after that, status.capacity belongs to the resizer
            status["capacity"] = pv_spec.get("capacity", {})
        self._set_claim_status(meta["namespace"], meta["name"], status)

    def _bind_volume(self, volume: Stored, claim: JSON) -> None:
        meta = claim["metadata"]
        ref = {
            "kind": "PersistentVolumeClaim",
            "apiVersion": "v1",
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
        }

        def change(doc: JSON) -> JSON:
            current = doc.setdefault("spec", {}).get("claimRef") or {}
            doc["spec"]["claimRef"] = {**ref, **{k: v for k, v in current.items() if v}}
            return doc

        self._store.mutate(PV, "", volume.obj["metadata"]["name"], change)
        self._set_pv_phase(volume.obj["metadata"]["name"], "Bound")

    def _sync_volume(self, pv_name: str) -> None:
        volume = self._store.find("persistentvolumes", "", pv_name)
        if volume is None:
            return
        self._sync_volume_phase(volume)
        self._anneal_finalizers(pv_name)
        if self._pv_protection:
            current = self._store.find("persistentvolumes", "", pv_name)
            if current is not None:
                self._protect(current)

    def _anneal_finalizers(self, pv_name: str) -> None:
        volume = self._store.find("persistentvolumes", "", pv_name)
        finalizers = None if volume is None else deletion_finalizers(volume.obj)
        if finalizers is None:
            return

        def change(doc: JSON) -> JSON:
            doc["metadata"]["finalizers"] = finalizers
            return doc

        self._store.mutate(PV, "", pv_name, change)

    def _protect(self, volume: Stored) -> None:
        """pv_protection_controller.go `processPV`."""
        meta = volume.obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if meta.get("deletionTimestamp"):
            in_use = (volume.obj.get("status") or {}).get("phase") == "Bound"
            if PV_PROTECTION not in finalizers or in_use:
                return
            finalizers.remove(PV_PROTECTION)
        elif PV_PROTECTION in finalizers:
            return
        else:
            finalizers.append(PV_PROTECTION)

        def change(doc: JSON) -> JSON:
            doc["metadata"]["finalizers"] = finalizers
            return doc

        self._store.mutate(PV, "", meta["name"], change)

    def _sync_volume_phase(self, volume: Stored) -> None:
        pv_name = volume.obj["metadata"]["name"]
        ref = (volume.obj.get("spec") or {}).get("claimRef")
        if not ref:
            self._set_pv_phase(pv_name, "Available")
            return
        claim = self._store.find(
            "persistentvolumeclaims", ref.get("namespace", ""), ref.get("name", "")
        )
        if claim is None or not _ref_matches(ref, claim.obj):
            self._set_pv_phase(pv_name, "Released" if ref.get("uid") else "Available")

    def _set_pv_phase(self, pv_name: str, phase: str) -> None:
        def change(doc: JSON) -> JSON:
            status = doc.get("status") or {}
            if status.get("phase") != phase:
                doc["status"] = {**status, "phase": phase, "lastPhaseTransitionTime": now_rfc3339()}
            return doc

        self._store.mutate(PV, "", pv_name, change, status=True)

    def _set_claim_status(self, namespace: str, name: str, fields: JSON) -> None:
        def change(doc: JSON) -> JSON:
            doc["status"] = {**(doc.get("status") or {}), **fields}
            return doc

        self._store.mutate(PVC, namespace, name, change, status=True)
