"""core/v1 Events on PVCs and PVs, aggregated and sent off the workers' path.

`record()` never blocks a worker: events go to a bounded queue drained by one
sender thread. A *progress* Event (`progress()`, e.g. "Provisioning") is held back
for a short delay and dropped when a later Event about the same object (e.g.
"ProvisioningSucceeded") arrives first: a claim bound within the delay needs no
progress report, which saves one API write per claim; a slow one still gets it.
A repeat of the same (object, type, reason, message) patches the
existing Event's `count` and `lastTimestamp` instead of creating another, like
client-go's correlator; an Event the API already expired is created anew.
Messages are user-facing: callers pass error texts that never carry a secret.
"""

import datetime
import heapq
import itertools
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from provisioner import errors
from provisioner.controller.metrics import Metrics
from provisioner.controller.writes import NotLeading
from provisioner.kube.api import KubeApi, KubeConflict, KubeError, KubeNotFound, Obj, path_for
from provisioner.log import get_logger

log = get_logger("events")

NORMAL: Final = "Normal"
WARNING: Final = "Warning"
#: Component name shown by `kubectl describe` ("From").
COMPONENT: Final = "glusterfs-provisioner"
#: The API rejects longer messages; client-go truncates at the same length.
MAX_MESSAGE: Final = 1024
#: Events waiting to be sent; beyond this new ones are dropped (and logged).
QUEUE_SIZE: Final = 10_000
#: Aggregation memory: the most recent distinct events remembered for count bumps.
AGGREGATION_ENTRIES: Final = 4096
#: Cluster-scoped objects (PVs) get their Events in this namespace, as in client-go.
CLUSTER_EVENT_NAMESPACE: Final = "default"


#: Wakes the sender thread to look at held progress Events.
_WAKE: Final = object()
#: How long a progress Event waits for the outcome before it is sent anyway.
DEFAULT_PROGRESS_DELAY: Final = 2.0


@dataclass(frozen=True)
class _Pending:
    involved: Obj
    namespace: str
    type: str
    reason: str
    message: str
    #: monotonic time before which a progress Event is held back (0: send now)
    hold_until: float = 0.0


def _timestamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def involved_object(obj: Obj) -> Obj:
    """The `involvedObject` reference of an Event about `obj`."""
    meta = obj.get("metadata") or {}
    ref: Obj = {
        "apiVersion": obj.get("apiVersion", "v1"),
        "kind": obj.get("kind", ""),
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
    }
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    return ref


def _pending(
    obj: Obj, type_: str, reason: str, message: str, *, hold_until: float = 0.0
) -> _Pending:
    involved = involved_object(obj)
    namespace = involved.get("namespace") or CLUSTER_EVENT_NAMESPACE
    return _Pending(involved, namespace, type_, reason, message[:MAX_MESSAGE], hold_until)


class EventRecorder:
    """Sends Events from a background thread; `flush()` waits until all are sent."""

    def __init__(
        self, api: KubeApi, *, instance: str, progress_delay: float = DEFAULT_PROGRESS_DELAY
    ) -> None:
        self._api = api
        self._instance = instance
        self._progress_delay = progress_delay
        self._held: dict[str, _Pending] = {}
        self._due: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._held_lock = threading.Lock()
        self._queue: queue.Queue[object] = queue.Queue(QUEUE_SIZE)
        self._seen: OrderedDict[tuple[str, str, str, str], tuple[str, str, int]] = OrderedDict()
        self._thread = threading.Thread(target=self._run, name="event-recorder", daemon=True)
        self._thread.start()

    def record(self, obj: Obj, *, type: str, reason: str, message: str) -> None:
        """Queue an Event about `obj` (a PVC or PV dict); it supersedes a held progress Event."""
        pending = _pending(obj, type, reason, message)
        with self._held_lock:
            self._held.pop(str(pending.involved.get("uid")), None)
        self._enqueue(pending)

    def progress(self, obj: Obj, reason: str, message: str) -> None:
        """A Normal progress Event, sent only if no other Event about `obj` follows soon."""
        due = time.monotonic() + self._progress_delay
        pending = _pending(obj, NORMAL, reason, message, hold_until=due)
        uid = str(pending.involved.get("uid"))
        with self._held_lock:
            self._held[uid] = pending
            heapq.heappush(self._due, (due, next(self._seq), uid))
        self._enqueue(_WAKE)

    def normal(self, obj: Obj, reason: str, message: str) -> None:
        self.record(obj, type=NORMAL, reason=reason, message=message)

    def warning(self, obj: Obj, reason: str, message: str) -> None:
        self.record(obj, type=WARNING, reason=reason, message=message)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait (up to `timeout`) until every queued Event was sent (held ones excepted)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def close(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        self._queue.put(None)
        self._thread.join(timeout)

    def _enqueue(self, item: object) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            log.warning("event queue full; event dropped")

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._next_due_in())
            except queue.Empty:
                self._send_due()
                continue
            try:
                if item is None:
                    return
                if isinstance(item, _Pending):
                    self._send_logged(item)
                self._send_due()
            finally:
                self._queue.task_done()

    def _next_due_in(self) -> float | None:
        with self._held_lock:
            return max(0.0, self._due[0][0] - time.monotonic()) if self._due else None

    def _send_due(self) -> None:
        """Send the held progress Events whose delay passed and that nothing superseded."""
        while True:
            with self._held_lock:
                if not self._due or self._due[0][0] > time.monotonic():
                    return
                due, _, uid = heapq.heappop(self._due)
                pending = self._held.get(uid)
                if pending is None or pending.hold_until != due:
                    continue
                del self._held[uid]
            self._send_logged(pending)

    def _send_logged(self, pending: _Pending) -> None:
        try:
            self._send(pending)
        except KubeError as exc:
            log.warning("could not record event", reason=pending.reason, error=str(exc))

    def _send(self, pending: _Pending) -> None:
        key = (str(pending.involved.get("uid")), pending.type, pending.reason, pending.message)
        known = self._seen.get(key)
        if known is not None:
            namespace, name, count = known
            try:
                self._bump(namespace, name, count + 1)
                self._remember(key, (namespace, name, count + 1))
                return
            except KubeNotFound:
                pass  # expired by the API server (default TTL one hour): create anew
        name = self._create(pending)
        self._remember(key, (pending.namespace, name, 1))

    def _remember(self, key: tuple[str, str, str, str], value: tuple[str, str, int]) -> None:
        self._seen[key] = value
        self._seen.move_to_end(key)
        while len(self._seen) > AGGREGATION_ENTRIES:
            self._seen.popitem(last=False)

    def _bump(self, namespace: str, name: str, count: int) -> None:
        path = path_for(plural="events", namespace=namespace, name=name)
        self._api.merge_patch(path, {"count": count, "lastTimestamp": _timestamp()})

    def _create(self, pending: _Pending) -> str:
        now = _timestamp()
        name = f"{pending.involved.get('name')}.{uuid.uuid4().hex[:16]}"
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": pending.namespace},
            "involvedObject": pending.involved,
            "reason": pending.reason,
            "message": pending.message,
            "type": pending.type,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self._api.create(path_for(plural="events", namespace=pending.namespace), body)
        return name


# What was already reported about a claim, so a refusal gets one Event, not one per update.
#: Claims whose refusal is remembered; beyond this the oldest are forgotten (such a
#: claim gets its Event once more at its next update).
REFUSALS_REMEMBERED: Final = 10_000

V = TypeVar("V", bound=Hashable)


class Refusals(Generic[V]):
    """Per claim UID, the refusal last reported (a reason, a requested size). Thread-safe:
    the workers and the informer thread (a claim deleted) use it at once. A claim's
    entry goes when the claim is deleted, when it is no longer refused, or, the oldest
    first, beyond `limit` entries."""

    def __init__(self, limit: int = REFUSALS_REMEMBERED) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._reported: OrderedDict[str, V] = OrderedDict()

    def first(self, claim_uid: str, refusal: V) -> bool:
        """Whether this refusal is new (and remember it)."""
        with self._lock:
            if self._reported.get(claim_uid) == refusal:
                return False
            self._reported[claim_uid] = refusal
            self._reported.move_to_end(claim_uid)
            while len(self._reported) > self._limit:
                self._reported.popitem(last=False)
            return True

    def forget(self, claim_uid: str) -> None:
        with self._lock:
            self._reported.pop(claim_uid, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._reported)


# What the reconcilers tell people: Events on the objects, and the operation metrics.
class Reporter:
    """Events and metrics of provision / delete / expand operations."""

    def __init__(self, *, events: EventRecorder, metrics: Metrics) -> None:
        self.events = events
        self._metrics = metrics

    @contextmanager
    def observed(
        self,
        operation: str,
        *,
        involved: Obj,
        reason: str,
        failure: Callable[[Exception], str],
        permanent: tuple[type[errors.ProvisionerError], ...] = (),
    ) -> Iterator[None]:
        """Count and time one `operation`; a domain error becomes a Warning Event
        `reason` on `involved` with the message `failure(err)` and is re-raised.
        Losing the lease and write conflicts are retries, not failures; `permanent`
        errors pass through unreported (the caller reports them once, `rejected`)."""
        started = time.monotonic()
        try:
            yield
        except (NotLeading, KubeConflict):
            raise
        except permanent:
            raise
        except errors.ProvisionerError as err:
            self._metrics.operations.labels(operation, "failure").inc()
            self.events.warning(involved, reason, failure(err))
            raise
        self._metrics.operations.labels(operation, "success").inc()
        self._metrics.duration.labels(operation).observe(time.monotonic() - started)
        self._metrics.last_success.labels(operation).set_to_current_time()

    def rejected(self, operation: str, *, involved: Obj, reason: str, message: str) -> None:
        """An operation refused for a cause only the user can remove (one Event)."""
        self.events.warning(involved, reason, message)
        self._metrics.operations.labels(operation, "rejected").inc()
