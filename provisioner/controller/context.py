"""What the reconcilers share: caches, clients, recorder, and small bookkeeping."""

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from provisioner import errors, names
from provisioner.controller.events import EventRecorder
from provisioner.controller.informer import Informer
from provisioner.controller.metrics import Metrics
from provisioner.controller.objects import (
    annotations,
    claim_gid,
    finalizers,
    migrated_gid,
    pv_gid,
    reclaim_policy,
    uid,
)
from provisioner.gids import GidAllocator
from provisioner.heketi.client import HeketiClient, HeketiConfig
from provisioner.heketi.errors import HeketiAuthError
from provisioner.kube.api import KubeApi, KubeConflict, Obj
from provisioner.kube.secrets import SecretKeys
from provisioner.storageclass import ProvisioningParams, parse_parameters
from provisioner.volumes import VolumeService, heketi_config

#: How long a reconcile trusts that the watch will deliver our own write before it
#: acts on the (older) cached object anyway.
EXPECTATION_TTL_SECONDS: Final = 30.0


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


Holder = tuple[str, str]


class GidLedger:
    """Who holds which GID; a GID is free only while nothing holds it.

    Holders are PVs (of any provisioner), claims being provisioned and the volumes
    of deleted PVs that outlive them. Several may hold one GID (an in-tree PV and
    ours on the same Heketi, a static PV re-created for a retained volume), so one
    of them going away must not free it for the others: the allocator sees a GID
    as used exactly while its count of holders is above zero.
    """

    def __init__(self, allocator: GidAllocator) -> None:
        self._allocator = allocator
        self._lock = threading.Lock()
        self._holders: dict[Holder, int] = {}
        self._counts: dict[int, int] = {}

    def hold(self, holder: Holder, gid: int, *, replace: bool = True) -> int:
        """`holder` holds `gid` (instead of what it held; with `replace=False` a GID it
        already holds is kept). Returns the GID it holds now."""
        with self._lock:
            current = self._holders.get(holder)
            if current is not None and (current == gid or not replace):
                return current
            self._unset(holder)
            self._holders[holder] = gid
            self._count(gid, +1)
            return gid

    def drop(self, holder: Holder) -> None:
        """`holder` holds nothing any more (idempotent)."""
        with self._lock:
            self._unset(holder)

    def allocate(self, holder: Holder, *, gid_min: int, gid_max: int) -> int:
        """The GID `holder` holds, else a free one of the range, now held by it."""
        with self._lock:
            current = self._holders.get(holder)
            if current is not None:
                return current
            gid = self._allocator.allocate(gid_min=gid_min, gid_max=gid_max)
            self._holders[holder] = gid
            self._count(gid, +1)
            return gid

    def _unset(self, holder: Holder) -> None:
        gid = self._holders.pop(holder, None)
        if gid is not None:
            self._count(gid, -1)

    def _count(self, gid: int, delta: int) -> None:
        before = self._counts.get(gid, 0)
        after = before + delta
        if after > 0:
            self._counts[gid] = after
            if before == 0:
                self._allocator.mark_used(gid)
        else:
            self._counts.pop(gid, None)
            self._allocator.release(gid)


def _claim(claim_uid: str) -> Holder:
    return ("claim", claim_uid)


def _migrated(claim_uid: str) -> Holder:
    return ("migrated", claim_uid)


def _pv(pv_name: str) -> Holder:
    return ("pv", pv_name)


class GidReservations:
    """The GIDs of PVs and of claims whose PV does not exist yet.

    A claim holds its reserved GID (or its volume's) until its PV holds it, and
    frees it when given up. Every PV's `pv.beta.kubernetes.io/gid` counts, also
    those of other provisioners; a PV whose reclaim policy is not `Delete` leaves
    its GID held after it is deleted (its volume still exists) for the life of the
    process.
    """

    def __init__(self, gids: GidAllocator) -> None:
        self.ledger = GidLedger(gids)

    def for_claim(
        self, claim_uid: str, params: ProvisioningParams, *, recorded: int | None = None
    ) -> int:
        """The claim's GID: the one it holds (its volume's, or reserved earlier), else
        the one `recorded` with its intent, else a free one of the class's range."""
        if recorded is not None:
            return self.ledger.hold(_claim(claim_uid), recorded, replace=False)
        return self.ledger.allocate(
            _claim(claim_uid), gid_min=params.gid_min, gid_max=params.gid_max
        )

    def settle(self, claim_uid: str, actual: int) -> None:
        """The volume exists with GID `actual`: the claim holds that one from now on (a
        retry gets it again, `cancel` frees it); a different reservation is freed."""
        self.ledger.hold(_claim(claim_uid), actual)

    def hand_over(self, claim_uid: str, pv: Obj) -> None:
        """The claim's PV exists and holds its GID now (freed when the PV goes)."""
        self.observe_pv(pv)
        self.ledger.drop(_claim(claim_uid))

    def cancel(self, claim_uid: str) -> None:
        """The claim was given up and its volume deleted: free its GID."""
        self.ledger.drop(_claim(claim_uid))

    def observe_claim(self, pvc: Obj) -> None:
        """A claim as it is now. One carrying our intent holds the GID recorded with it
        (at start, before any worker runs, this rebuilds what the PVs do not show:
        the GIDs of volumes Heketi may have made for claims that have no PV yet); once
        bound without our finalizer, its PV holds the GID instead."""
        if names.PVC_FINALIZER in finalizers(pvc):
            gid = claim_gid(pvc)
            if gid is not None:
                self.ledger.hold(_claim(uid(pvc)), gid, replace=False)
        elif (pvc.get("spec") or {}).get("volumeName"):
            self.ledger.drop(_claim(uid(pvc)))
        self._observe_migration(pvc)

    def _observe_migration(self, pvc: Obj) -> None:
        """A claim `migrate` moved (or is moving) to a CSI PV holds its volume's GID for
        its life: the GID stays used while its PV is briefly gone mid-migration, also
        across a controller restart."""
        gid = migrated_gid(pvc)
        if gid is None:
            self.ledger.drop(_migrated(uid(pvc)))
        else:
            self.ledger.hold(_migrated(uid(pvc)), gid)

    def claim_deleted(self, pvc: Obj) -> None:
        self.ledger.drop(_claim(uid(pvc)))
        self.ledger.drop(_migrated(uid(pvc)))

    def observe_pv(self, pv: Obj) -> None:
        """A PV as it is now: it holds the GID it carries (or none)."""
        gid = pv_gid(pv)
        if gid is None:
            self.ledger.drop(_pv(str(pv["metadata"]["name"])))
        else:
            self.ledger.hold(_pv(str(pv["metadata"]["name"])), gid)

    def pv_deleted(self, pv: Obj) -> None:
        """A PV is gone. With reclaim policy `Delete` its volume went first (we, or the
        PV's own provisioner, delete the volume before the object); any other policy
        leaves the volume and its GID in use."""
        gid = pv_gid(pv)
        if gid is not None and reclaim_policy(pv) != "Delete":
            self.ledger.hold(("retained", str(pv["metadata"].get("uid", ""))), gid)
        self.ledger.drop(_pv(str(pv["metadata"]["name"])))


@dataclass
class Context:
    api: KubeApi
    driver: str
    claims: Informer
    pvs: Informer
    classes: Informer
    volumes: VolumeService
    secrets: SecretKeys
    events: EventRecorder
    metrics: Metrics
    gids: GidReservations
    leading: Callable[[], bool]
    #: The Heketi client of a connection config (instrumented, shared per config).
    heketi_clients: Callable[[HeketiConfig], HeketiClient]
    expectations: Expectations = field(default_factory=Expectations)
    #: HeketiConfig fields set for every Heketi server (timeouts, retry policy).
    heketi_settings: Mapping[str, Any] = field(default_factory=dict)
    #: This process (unique per start): marks the records it leaves on objects.
    identity: str = "controller"

    def guard(self) -> None:
        """Raise NotLeading unless this instance may act now (checked before each write)."""
        if not self.leading():
            raise NotLeading("not the leader")

    @contextmanager
    def observed(
        self, operation: str, *, involved: Obj, reason: str, failure: Callable[[Exception], str]
    ) -> Iterator[None]:
        """Count and time one `operation`; a domain error becomes a Warning Event
        `reason` on `involved` with the message `failure(err)` and is re-raised.
        Losing the lease and write conflicts are retries, not failures."""
        started = time.monotonic()
        try:
            yield
        except (NotLeading, KubeConflict):
            raise
        except errors.ProvisionerError as err:
            self.metrics.operations.labels(operation, "failure").inc()
            self.events.warning(involved, reason, failure(err))
            raise
        self.metrics.operations.labels(operation, "success").inc()
        self.metrics.duration.labels(operation).observe(time.monotonic() - started)

    def write_claim(self, before: Obj, write: Callable[[], Obj]) -> Obj:
        """Run `write` (a change of claim `before`) and remember that neither `before`
        nor the copy cached before the write describes the claim any more."""
        key = f"{before['metadata']['namespace']}/{before['metadata']['name']}"
        cached = self.claims.get(key)
        obsolete = {str(before["metadata"].get("resourceVersion", ""))}
        if cached is not None:
            obsolete.add(str(cached["metadata"].get("resourceVersion", "")))
        updated = write()
        obsolete.discard(str(updated.get("metadata", {}).get("resourceVersion", "")))
        self.expectations.wrote(key, obsolete=obsolete)
        return updated

    def class_params(self, class_name: str) -> ProvisioningParams | None:
        sc = self.classes.get(class_name)
        if sc is None or sc.get("provisioner") != self.driver:
            return None
        return parse_parameters(sc.get("parameters") or {})

    def heketi_for_class(self, params: ProvisioningParams) -> HeketiConfig:
        """Connection settings for a class, the key read from its Secret (or inline)."""
        key = params.rest_user_key
        if params.rest_auth_enabled and params.secret_namespace and params.secret_name:
            key = self.secrets.key(params.secret_namespace, params.secret_name)
        return self._tuned(heketi_config(params, key=key))

    @contextmanager
    def rereading_key_if_refused(self, namespace: str | None, name: str | None) -> Iterator[None]:
        """Heketi refused the key from Secret namespace/name: forget the cached copy, so the
        retry reads the Secret afresh (a rotated key is used at once, not after the TTL)."""
        try:
            yield
        except HeketiAuthError:
            if namespace and name:
                self.secrets.invalidate(namespace, name)
            raise

    def rereading_object_key_if_refused(self, obj: Obj) -> "AbstractContextManager[None]":
        """`rereading_key_if_refused` for the Secret recorded on a PV/PVC."""
        ann = annotations(obj)
        return self.rereading_key_if_refused(
            ann.get(names.ANN_SECRET_NAMESPACE), ann.get(names.ANN_SECRET_NAME)
        )

    def heketi_for_object(self, obj: Obj, *, class_name: str) -> HeketiConfig:
        """Connection settings recorded on a PV/PVC, usable when the class is gone."""
        ann = annotations(obj)
        url = ann.get(names.ANN_HEKETI_URL)
        if not url:
            raise errors.FailedPrecondition(
                f"annotation {names.ANN_HEKETI_URL} is missing: cannot tell which Heketi "
                "holds the volume"
            )
        key: str | None = None
        if ann.get(names.ANN_SECRET_NAMESPACE) and ann.get(names.ANN_SECRET_NAME):
            key = self.secrets.key(ann[names.ANN_SECRET_NAMESPACE], ann[names.ANN_SECRET_NAME])
        else:
            key = self._inline_key(class_name, url)
        config = HeketiConfig(
            url=url,
            user=ann.get(names.ANN_HEKETI_USER) or "admin",
            key=key,
            ca_bundle=ann.get(names.ANN_HEKETI_CA),
        )
        return self._tuned(config)

    def _inline_key(self, class_name: str, url: str) -> str | None:
        """A deprecated inline `restuserkey` of the class, if it still exists and matches."""
        try:
            params = self.class_params(class_name)
        except errors.InvalidArgument:
            return None
        if params is None or params.rest_url != url:
            return None
        return params.rest_user_key

    def _tuned(self, config: HeketiConfig) -> HeketiConfig:
        return (
            dataclasses.replace(config, **self.heketi_settings) if self.heketi_settings else config
        )
