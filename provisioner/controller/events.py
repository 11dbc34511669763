"""core/v1 Events on PVCs and PVs, aggregated and sent off the workers' path.

`record()` never blocks a worker: events go to a bounded queue drained by one
sender thread. A repeat of the same (object, type, reason, message) patches the
existing Event's `count` and `lastTimestamp` instead of creating another, like
client-go's correlator; an Event the API already expired is created anew.
Messages are user-facing: callers pass error texts that never carry a secret.
"""

import datetime
import queue
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from provisioner.controller.kube import KubeApi, KubeError, KubeNotFound, Obj, path_for
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


@dataclass(frozen=True)
class _Pending:
    involved: Obj
    namespace: str
    type: str
    reason: str
    message: str


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


class EventRecorder:
    """Sends Events from a background thread; `flush()` waits until all are sent."""

    def __init__(self, api: KubeApi, *, instance: str) -> None:
        self._api = api
        self._instance = instance
        self._queue: queue.Queue[_Pending | None] = queue.Queue(QUEUE_SIZE)
        self._seen: OrderedDict[tuple[str, str, str, str], tuple[str, str, int]] = OrderedDict()
        self._thread = threading.Thread(target=self._run, name="event-recorder", daemon=True)
        self._thread.start()

    def record(self, obj: Obj, *, type: str, reason: str, message: str) -> None:
        """Queue an Event about `obj` (a PVC or PV dict)."""
        involved = involved_object(obj)
        namespace = involved.get("namespace") or CLUSTER_EVENT_NAMESPACE
        pending = _Pending(involved, namespace, type, reason, message[:MAX_MESSAGE])
        try:
            self._queue.put_nowait(pending)
        except queue.Full:
            log.warning("event queue full; event dropped", reason=reason)

    def normal(self, obj: Obj, reason: str, message: str) -> None:
        self.record(obj, type=NORMAL, reason=reason, message=message)

    def warning(self, obj: Obj, reason: str, message: str) -> None:
        self.record(obj, type=WARNING, reason=reason, message=message)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait (up to `timeout`) until every queued Event was sent."""
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

    def _run(self) -> None:
        while True:
            pending = self._queue.get()
            try:
                if pending is None:
                    return
                self._send(pending)
            except KubeError as exc:
                log.warning(
                    "could not record event", reason=pending and pending.reason, error=str(exc)
                )
            finally:
                self._queue.task_done()

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
