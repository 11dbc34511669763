"""Claim reconciler: pending PVC → Heketi volume → PV → bind; abandoned claims.

Order of writes for one claim (each step idempotent, so a crash anywhere and a
restart converge on exactly one volume and one PV):

1. PVC: our finalizer + where the volume will live (Heketi URL, user, Secret, the
   deterministic volume name) and its GID — the intent, recorded *before* Heketi is
   called (a restart rebuilds the GID allocator from PVs and from these claims);
2. Heketi, through the provisioning core (VolumeService.ensure_volume, or
   ensure_clone for a claim whose dataSource is a claim): the volume of that name,
   created if absent (on the first attempt the core skips the lookup);
3. PV `pvc-<uid>` pre-bound to the claim (AlreadyExists for our own PV = done);
4. PVC: `spec.volumeName` set and our finalizer removed in one patch (the PV's
   finalizer and reclaim policy take over from here).

A claim deleted before step 4 keeps our finalizer: we delete the Heketi volume
found under the recorded name (unless the PV exists to do so) and let it go.
"""

from collections.abc import Callable
from typing import Final, Protocol

from provisioner import errors, names
from provisioner.controller import objects as o
from provisioner.controller.classes import StorageClasses
from provisioner.controller.clone_source import CloneSource, CloneSources, source_problem
from provisioner.controller.connections import Connections
from provisioner.controller.expansion import Expander
from provisioner.controller.gid_reservations import GidReservations
from provisioner.controller.informer import Informer
from provisioner.controller.refusals import Refusals
from provisioner.controller.reporting import Reporter
from provisioner.controller.writes import KubeReads, NotLeading, Writes
from provisioner.heketi.client import HeketiConfig
from provisioner.heketi.types import Volume
from provisioner.kube.api import KubeAlreadyExists, KubeConflict, KubeInvalid, KubeNotFound, Obj
from provisioner.log import get_logger
from provisioner.pv_annotations import heketi_annotations
from provisioner.storageclass import ProvisioningParams
from provisioner.volume_naming import heketi_volume_name
from provisioner.volumes import size_gib

log = get_logger("provision")

#: Attempts to set spec.volumeName when another writer keeps changing the claim.
BIND_ATTEMPTS: Final = 3

PROVISIONING: Final = "Provisioning"
SUCCEEDED: Final = "ProvisioningSucceeded"
FAILED: Final = "ProvisioningFailed"


class VolumeLookup(Protocol):
    """Heketi as the reconciler reads it directly (its writes go through `Writes`)."""

    def find_volume_by_name(self, name: str) -> Volume | None: ...


class ClaimReconciler:
    """Provisions pending claims of our classes; hands bound ones to the `expander`."""

    def __init__(
        self,
        *,
        api: KubeReads,
        claims: Informer,
        pvs: Informer,
        classes: StorageClasses,
        connections: Connections,
        heketi: Callable[[HeketiConfig], VolumeLookup],
        gids: GidReservations,
        writes: Writes,
        reporter: Reporter,
        expander: Expander,
    ) -> None:
        self._api = api
        self._claims = claims
        self._pvs = pvs
        self._classes = classes
        self._connections = connections
        self._heketi = heketi
        self._gids = gids
        self._writes = writes
        self._reporter = reporter
        self.expander = expander
        self._rejected: Refusals[str] = Refusals()
        self._sources = CloneSources(claims=claims, pvs=pvs, driver=classes.driver)

    def forget(self, pvc: Obj) -> None:
        """The claim is gone: drop what was remembered about it."""
        self._rejected.forget(o.uid(pvc))
        self.expander.refusals.forget(o.uid(pvc))

    def reconcile(self, key: str) -> None:
        pvc = self._claims.get(key)
        if pvc is None:
            return
        if o.deleting(pvc):
            if names.PVC_FINALIZER in o.finalizers(pvc):
                self._abandon(pvc)
            return
        volume_name = (pvc.get("spec") or {}).get("volumeName")
        if volume_name:
            if names.PVC_FINALIZER in o.finalizers(pvc):
                self._drop_intent(pvc)
            self.expander.reconcile(pvc, str(volume_name))
            return
        storage_class = self._our_class(pvc)
        if storage_class is None or self._waits_for_consumer(pvc, storage_class):
            return
        reason = o.rejection(pvc) or source_problem(pvc)
        if reason is not None:
            self._reject(pvc, reason)
            return
        self._provision_observed(pvc, storage_class)

    def _reject(self, pvc: Obj, reason: str) -> None:
        """One Event per claim and reason: the fields at fault are immutable, so a
        retry or a resync could only repeat it."""
        if self._rejected.first(o.uid(pvc), reason):
            self._reporter.rejected("provision", involved=pvc, reason=FAILED, message=reason)

    # -- which claims -----------------------------------------------------------
    def _our_class(self, pvc: Obj) -> Obj | None:
        class_name = o.claim_class(pvc)
        storage_class = self._classes.get(class_name)
        if storage_class is not None:
            return storage_class if self._classes.is_ours(storage_class) else None
        if o.claim_names_provisioner(pvc, self._classes.driver):
            self._reporter.events.warning(
                pvc,
                FAILED,
                f"StorageClass {class_name!r} not found"
                if class_name
                else "the claim names no StorageClass",
            )
            raise errors.FailedPrecondition(f"StorageClass {class_name!r} not found")
        return None

    @staticmethod
    def _waits_for_consumer(pvc: Obj, storage_class: Obj) -> bool:
        if storage_class.get("volumeBindingMode") != o.WAIT_FOR_FIRST_CONSUMER:
            return False
        return not o.annotations(pvc).get(names.ANN_SELECTED_NODE)

    # -- provisioning -------------------------------------------------------------
    def _provision_observed(self, pvc: Obj, storage_class: Obj) -> None:
        """Provision; a failure is an Event and a retry with backoff, except a request
        that can never succeed as it stands (`Unsatisfiable`: the class asks for a
        placement Heketi refuses or no topology offers), reported once per claim and
        tried again only when the claim changes or at the periodic resync."""
        class_name = o.name(storage_class)

        def failure(err: Exception) -> str:
            return f"failed to provision a volume with StorageClass {class_name!r}: {err}"

        try:
            with self._reporter.observed(
                "provision",
                involved=pvc,
                reason=FAILED,
                failure=failure,
                permanent=(errors.Unsatisfiable,),
            ):
                self._provision(pvc, storage_class)
        except errors.Unsatisfiable as err:
            log.warning(
                "claim cannot be provisioned as it stands", pvc=o.claim_ref(pvc), error=str(err)
            )
            self._reject(pvc, failure(err))

    def _provision(self, pvc: Obj, storage_class: Obj) -> None:
        """parse class → reserve GID → ensure volume → create PV → bind."""
        params = self._classes.params(storage_class)
        existing = self._pvs.get(o.pv_name_for(pvc))
        if existing is not None and o.pv_claim_uid(existing) == o.uid(pvc):
            self._gids.hand_over(o.uid(pvc), existing)
            self._bind(pvc, existing)  # an earlier attempt got as far as the PV
            self._succeeded(pvc, existing, volume=None)
            return
        # a claim with our intent recorded is finished where that intent says (its
        # Heketi, volume name and GID), whatever its class says now; a clone gets its
        # source's GID from Heketi, so it holds that one
        fresh = names.PVC_FINALIZER not in o.finalizers(pvc)
        if not fresh:
            params = o.recorded_location(pvc, params)
        heketi = self._connections.for_class(params)
        source = self._sources.of(pvc, params)
        recorded = o.claim_gid(pvc) if not fresh else source.gid if source else None
        gid = self._gids.for_claim(o.uid(pvc), params, recorded=recorded)
        name = (not fresh and o.recorded_volume_name(pvc)) or self._heketi_name(pvc, params)
        pvc = self._record_intent(pvc, params, name, gid, source)
        volume, gid = self._ensure_volume(pvc, heketi, params, name, gid, fresh, source)
        pv = self._create_pv(pvc, storage_class, params, volume, gid, source)
        self._gids.hand_over(o.uid(pvc), pv)
        self._bind(pvc, pv)
        self._succeeded(pvc, pv, volume=volume)

    def _succeeded(self, pvc: Obj, pv: Obj, *, volume: Volume | None) -> None:
        message = f"Successfully provisioned volume {o.name(pv)}"
        if volume is not None:
            message += f" (Heketi volume {volume.name}, {volume.size_gib} GiB)"
            log.info("provisioned", pvc=o.claim_ref(pvc), pv=o.name(pv), volume_id=volume.id)
        self._reporter.events.normal(pvc, SUCCEEDED, message)

    @staticmethod
    def _heketi_name(pvc: Obj, params: ProvisioningParams) -> str:
        return heketi_volume_name(
            uid=o.uid(pvc),
            namespace=o.namespace(pvc),
            claim=o.name(pvc),
            prefix=params.volume_name_prefix,
        )

    def _record_intent(
        self,
        pvc: Obj,
        params: ProvisioningParams,
        heketi_name: str,
        gid: int,
        source: CloneSource | None,
    ) -> Obj:
        if names.PVC_FINALIZER in o.finalizers(pvc):
            return pvc
        intent = heketi_annotations(params, volume_name=heketi_name)
        intent[names.ANN_CLAIM_GID] = str(gid)
        if source is not None:
            intent[names.ANN_CLONE_OF] = source.volume_id
        ops = o.add_finalizer_ops(pvc, names.PVC_FINALIZER, intent)
        try:
            updated = self._writes.patch_claim(pvc, ops)
        except KubeInvalid as exc:  # a precondition failed: the claim changed meanwhile
            raise KubeConflict(409, f"claim {o.claim_ref(pvc)} changed; retrying") from exc
        events = self._reporter.events
        events.progress(
            updated,
            PROVISIONING,
            f"External provisioner is provisioning volume for claim {o.claim_ref(pvc)}",
        )
        for warning in params.warnings:
            events.warning(updated, "StorageClassWarning", warning)
        return updated

    def _ensure_volume(
        self,
        pvc: Obj,
        heketi: HeketiConfig,
        params: ProvisioningParams,
        name: str,
        gid: int,
        fresh: bool,
        source: CloneSource | None,
    ) -> tuple[Volume, int]:
        """The claim's volume through the provisioning core (a clone of `source` if
        given). A `fresh` claim's intent was recorded just now, so no earlier attempt
        can have called Heketi: the core may skip its name lookup."""
        size = size_gib(o.requested_bytes(pvc))
        with self._connections.rereading_key_if_refused(
            params.secret_namespace, params.secret_name
        ):
            if source is not None:
                volume = self._writes.ensure_clone(
                    heketi=heketi, name=name, source_id=source.volume_id, params=params,
                    size_gib=size, unused_name=fresh,
                )  # fmt: skip
            else:
                volume = self._writes.ensure_volume(
                    heketi=heketi, name=name, params=params, gid=gid, size_gib=size,
                    unused_name=fresh,
                )  # fmt: skip
        gid = volume.gid or gid
        self._gids.settle(o.uid(pvc), gid)
        return volume, gid

    def _create_pv(
        self,
        pvc: Obj,
        storage_class: Obj,
        params: ProvisioningParams,
        volume: Volume,
        gid: int,
        source: CloneSource | None,
    ) -> Obj:
        body = o.build_pv(
            pvc=pvc,
            storage_class=storage_class,
            params=params,
            volume=volume,
            driver=self._classes.driver,
            gid=gid,
            cloned_from=source.volume_id if source is not None else None,
        )
        try:
            return self._writes.create_pv(body)
        except KubeAlreadyExists:
            existing = self._api.get(o.pv_path(o.name(body)))
            if o.pv_claim_uid(existing) != o.uid(pvc):
                raise errors.AlreadyExists(
                    f"PersistentVolume {o.name(body)} exists and is not bound to this claim"
                ) from None
            return existing

    # -- binding ------------------------------------------------------------------
    def _bind(self, pvc: Obj, pv: Obj) -> None:
        """Set spec.volumeName and drop our finalizer in one JSON patch; when another
        writer (the in-cluster binder) changed the claim first, re-read and retry."""
        for _ in range(BIND_ATTEMPTS):
            spec_name = (pvc.get("spec") or {}).get("volumeName")
            if spec_name and spec_name != o.name(pv):
                self._reporter.events.warning(
                    pvc,
                    FAILED,
                    f"the claim was bound to {spec_name} "
                    f"meanwhile; volume {o.name(pv)} will be released",
                )
                return
            ops = o.remove_finalizer_ops(pvc, names.PVC_FINALIZER)
            if not spec_name:
                ops.append({"op": "add", "path": "/spec/volumeName", "value": o.name(pv)})
            if not ops:
                return
            try:
                self._writes.patch_claim(pvc, ops)
                return
            except (KubeConflict, KubeInvalid):
                pvc = self._api.get(o.claim_path(pvc))
        raise KubeConflict(409, f"claim {o.claim_ref(pvc)} kept changing while binding it")

    def _drop_intent(self, pvc: Obj) -> None:
        ops = o.remove_finalizer_ops(pvc, names.PVC_FINALIZER)
        if ops:
            try:
                self._writes.patch_claim(pvc, ops)
            except KubeInvalid as exc:  # the finalizer moved: retry from a fresh read
                raise KubeConflict(409, f"finalizers of {o.claim_ref(pvc)} changed") from exc

    # -- claims deleted mid-provisioning -------------------------------------------
    def _abandon(self, pvc: Obj) -> None:
        """Delete what an unfinished provisioning made (unless its PV will), then let go."""
        try:
            self._abandon_unreported(pvc)
        except (NotLeading, KubeConflict):
            raise
        except errors.ProvisionerError as err:
            self._reporter.events.warning(
                pvc,
                "VolumeFailedDelete",
                f"the claim is being deleted; deleting its unfinished volume failed: {err}",
            )
            raise

    def _abandon_unreported(self, pvc: Obj) -> None:
        pv = self._pv_of(pvc)
        if pv is not None:
            self._gids.hand_over(o.uid(pvc), pv)  # the PV deletes the volume, frees the GID
        else:
            self._delete_unfinished_volume(pvc)
            self._gids.cancel(o.uid(pvc))
        self._drop_intent(pvc)

    def _delete_unfinished_volume(self, pvc: Obj) -> None:
        heketi = self._connections.for_object(pvc, class_name=o.claim_class(pvc))
        name = o.annotations(pvc).get(names.ANN_HEKETI_VOLUME_NAME, "")
        volume = self._heketi(heketi).find_volume_by_name(name) if name else None
        if volume is None:
            return
        self._writes.delete_volume(heketi=heketi, volume_id=volume.id)
        log.info(
            "deleted the volume of a claim deleted mid-provisioning",
            pvc=o.claim_ref(pvc),
            volume_id=volume.id,
        )

    def _pv_of(self, pvc: Obj) -> Obj | None:
        """Our PV for this claim; asks the API when the cache has none (rare path)."""
        pv = self._pvs.get(o.pv_name_for(pvc))
        if pv is None:
            try:
                pv = self._api.get(o.pv_path(o.pv_name_for(pvc)))
            except KubeNotFound:
                return None
        return pv if o.pv_claim_uid(pv) == o.uid(pvc) else None
