"""Expansion of bound claims: Heketi expand → PV capacity → PVC status.capacity.

Each step is idempotent: Heketi is not called when the volume already has the
size, the PV is patched only when smaller, and a claim whose PV already grew (a
crash between the two) only gets its status finished. An expand is recorded on the
PV (names.ANN_EXPAND_IN_FLIGHT) before it is sent and the record is removed with the
capacity update, so a restarted controller sends no second expand while Heketi may
still run the first (Heketi would accept it and grow the volume twice).
"""

import datetime
import json
from typing import Any, Final

from provisioner import errors, names
from provisioner.controller import objects as o
from provisioner.controller.classes import StorageClasses
from provisioner.controller.connections import Connections
from provisioner.controller.informer import Informer
from provisioner.controller.quantity import gib_quantity
from provisioner.controller.refusals import Refusals
from provisioner.controller.reporting import Reporter
from provisioner.controller.writes import Writes
from provisioner.expands import EarlierExpand, ExpansionInProgress
from provisioner.heketi.errors import HeketiOutcomeUnknown
from provisioner.heketi.types import Volume
from provisioner.kube.api import Obj
from provisioner.log import get_logger
from provisioner.volumes import size_gib

log = get_logger("expansion")

RESIZING: Final = "Resizing"
RESIZE_DONE: Final = "VolumeResizeSuccessful"
RESIZE_FAILED: Final = "VolumeResizeFailed"
#: Conditions the resize flow owns; cleared when the new size is in place.
RESIZE_CONDITIONS: Final = frozenset({"Resizing", "FileSystemResizePending"})


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def in_flight_record(*, size: int, by: str, queue_path: str | None = None) -> str:
    """The ANN_EXPAND_IN_FLIGHT value: an expand to `size` GiB sent (or its outcome
    lost) now by controller `by`, with Heketi's queue entry when known."""
    since = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    record: dict[str, Any] = {"sizeGiB": size, "since": since.replace("+00:00", "Z"), "by": by}
    if queue_path:
        record["queue"] = queue_path
    return json.dumps(record, separators=(",", ":"), sort_keys=True)


def earlier_expand(pv: Obj, *, identity: str) -> EarlierExpand | None:
    """What the PV records of an expand another controller process may still be
    running; None when nothing is recorded, or this process recorded it (its own
    memory is exact), or the record is unreadable (logged)."""
    raw = o.annotations(pv).get(names.ANN_EXPAND_IN_FLIGHT)
    if not raw:
        return None
    try:
        record = json.loads(raw)
        since = datetime.datetime.fromisoformat(str(record["since"]).replace("Z", "+00:00"))
        by, queue = str(record.get("by", "")), record.get("queue")
        size = record.get("sizeGiB")
        target = size if isinstance(size, int) and not isinstance(size, bool) else None
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("unreadable expand record ignored", pv=o.name(pv), value=raw[:200])
        return None
    if by == identity:
        return None
    age = (datetime.datetime.now(datetime.UTC) - since).total_seconds()
    return EarlierExpand(queue_path=str(queue) if queue else None, age_seconds=age, size_gib=target)


def _settled(pvc: Obj, pv: Obj) -> bool:
    """Fast path for the common case (no quantity parsing): request, PV capacity and
    claim status all spell the same size."""
    capacity = ((pv.get("spec") or {}).get("capacity") or {}).get("storage")
    spec = pvc.get("spec") or {}
    requested = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    status = ((pvc.get("status") or {}).get("capacity") or {}).get("storage")
    return (
        capacity is not None
        and requested == capacity
        and status in (capacity, None)
        and not _resizing(pvc)
    )


def _resizing(pvc: Obj) -> bool:
    """The claim still carries a condition of the resize flow."""
    conditions = (pvc.get("status") or {}).get("conditions") or []
    return any(c.get("type") in RESIZE_CONDITIONS for c in conditions)


def _pv_cache_behind(pvc: Obj, pv: Obj) -> bool:
    """The claim's status shows more than the cached PV: status.capacity is only ever
    copied from the PV (by the binder, or by us after the PV grew), so the PV's watch
    event has not arrived yet. Acting on it would expand what already grew and set a
    `Resizing` condition after the resize finished."""
    return o.capacity_bytes(pvc, status=True) > o.capacity_bytes(pv)


class Expander:
    """Grows the volume of a bound claim whose request grew (when its class allows)."""

    def __init__(
        self,
        *,
        pvs: Informer,
        classes: StorageClasses,
        connections: Connections,
        writes: Writes,
        reporter: Reporter,
        identity: str,
    ) -> None:
        self._pvs = pvs
        self._classes = classes
        self._connections = connections
        self._writes = writes
        self._reporter = reporter
        self._identity = identity
        #: Per claim, the requested size whose refusal was reported.
        self.refusals: Refusals[int] = Refusals()

    def reconcile(self, pvc: Obj, pv_name: str) -> None:
        pv = self._pvs.get(pv_name)
        if pv is None or not o.is_ours_pv(pv, self._classes.driver):
            return
        if o.pv_claim_uid(pv) != o.uid(pvc) or _pv_cache_behind(pvc, pv):
            return
        if _settled(pvc, pv):
            self.refusals.forget(o.uid(pvc))
            return
        wanted = o.requested_bytes(pvc)
        if wanted > o.capacity_bytes(pv):
            self._expand_observed(pvc, pv, wanted)
            return
        self.refusals.forget(o.uid(pvc))
        if self._status_behind(pvc, pv) or _resizing(pvc):
            self._finish(pvc, o.capacity_bytes(pv), pv)

    @staticmethod
    def _status_behind(pvc: Obj, pv: Obj) -> bool:
        status = pvc.get("status") or {}
        if status.get("phase") != "Bound" or not (status.get("capacity") or {}).get("storage"):
            return False
        return o.capacity_bytes(pvc, status=True) < o.capacity_bytes(pv)

    def _expand_observed(self, pvc: Obj, pv: Obj, wanted: int) -> None:
        class_name = str((pv.get("spec") or {}).get("storageClassName") or "")
        storage_class = self._classes.get(class_name)
        if storage_class is None or not storage_class.get("allowVolumeExpansion"):
            why = (
                f"StorageClass {class_name!r} does not allow volume expansion "
                "(allowVolumeExpansion is not true)"
                if storage_class is not None
                else f"StorageClass {class_name!r} no longer exists"
            )
            if self.refusals.first(o.uid(pvc), o.requested_bytes(pvc)):
                message = f"cannot expand {o.name(pv)}: {why}"
                self._reporter.rejected(
                    "expand", involved=pvc, reason=RESIZE_FAILED, message=message
                )
            return
        self.refusals.forget(o.uid(pvc))
        pv_name = o.name(pv)
        with self._reporter.observed(
            "expand",
            involved=pvc,
            reason=RESIZE_FAILED,
            failure=lambda err: f"expanding volume {pv_name} failed: {err}",
        ):
            self._expand(pvc, pv, wanted, class_name)

    def _expand(self, pvc: Obj, pv: Obj, wanted: int, class_name: str) -> None:
        target = size_gib(wanted)
        pvc = self._set_conditions(
            pvc, [{"type": RESIZING, "status": "True", "lastTransitionTime": _now()}]
        )
        self._reporter.events.normal(
            pvc, RESIZING, f"External resizer is resizing volume {o.name(pv)}"
        )
        volume, pv = self._expand_volume(pv, target, class_name)
        self._writes.patch_pv(
            pv,
            {
                "metadata": {
                    "resourceVersion": o.resource_version(pv),
                    "annotations": {names.ANN_EXPAND_IN_FLIGHT: None},
                },
                "spec": {"capacity": {"storage": gib_quantity(volume.size_gib)}},
            },
        )
        self._finish(pvc, volume.size_gib << 30, pv)
        log.info("expanded", pvc=o.claim_ref(pvc), pv=o.name(pv), size_gib=volume.size_gib)

    def _expand_volume(self, pv: Obj, target: int, class_name: str) -> tuple[Volume, Obj]:
        """Heketi expand, recorded on the PV before it is sent (so a restarted controller
        sends no second one while it may run); returns the volume and the PV as now."""
        identity = self._identity
        latest: list[Obj] = []

        def record(_: Volume) -> None:
            latest.append(self._record_in_flight(pv, in_flight_record(size=target, by=identity)))

        try:
            with self._connections.rereading_object_key_if_refused(pv):
                volume = self._writes.expand_volume(
                    heketi=self._connections.for_object(pv, class_name=class_name),
                    volume_id=o.volume_handle(pv),
                    size_gib=target,
                    earlier=earlier_expand(pv, identity=identity),
                    before_send=record,
                )
        except HeketiOutcomeUnknown as err:  # may still run: keep its queue entry durable
            if latest:
                value = in_flight_record(size=target, by=identity, queue_path=err.queue_path)
                self._record_in_flight(pv, value, best_effort=True)
            raise
        except ExpansionInProgress:
            raise
        except errors.ProvisionerError:
            # sent, and Heketi answered (refused, or the operation failed): nothing runs
            if latest:
                self._record_in_flight(pv, None, best_effort=True)
            raise
        return volume, (latest[-1] if latest else pv)

    def _record_in_flight(self, pv: Obj, value: str | None, *, best_effort: bool = False) -> Obj:
        patch = {"metadata": {"annotations": {names.ANN_EXPAND_IN_FLIGHT: value}}}
        try:
            return self._writes.patch_pv(pv, patch)
        except errors.ProvisionerError as err:
            if not best_effort:
                raise
            log.warning("could not update the expand record", pv=o.name(pv), error=str(err))
            return pv

    def _finish(self, pvc: Obj, size_bytes: int, pv: Obj) -> None:
        capacity = (
            gib_quantity(size_bytes >> 30) if size_bytes % (1 << 30) == 0 else str(size_bytes)
        )
        updated = self._set_conditions(pvc, [], capacity=capacity)
        self._reporter.events.normal(
            updated, RESIZE_DONE, f"volume {o.name(pv)} now has {capacity}"
        )

    def _set_conditions(
        self, pvc: Obj, extra: list[dict[str, Any]], *, capacity: str | None = None
    ) -> Obj:
        kept = [
            c
            for c in (pvc.get("status") or {}).get("conditions") or []
            if c.get("type") not in RESIZE_CONDITIONS
        ]
        status: dict[str, Any] = {"conditions": kept + extra}
        if capacity is not None:
            status["capacity"] = {"storage": capacity}
        return self._writes.patch_claim_status(pvc, status)
