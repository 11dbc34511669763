"""Heketi's asynchronous operations as the test server runs them, and the faults
tests inject into them.

An accepted create, expand, delete or clone answers 202 with `Location:
/queue/ID`; the operation runs in a thread and then commits or rolls back under
the server's lock. The queue entry answers "pending" until then and is removed
on its first read once done (rest/asynchttp.go). `max_inflight_operations`
bounds the running ones (429, "Server busy"). A restart loses the queue (it is
in memory only) and leaves the running operations pending, as stale ones, until
the background cleaner runs.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from testbed.heketi import gluster
from testbed.heketi.bodies import RequestError
from testbed.heketi.httpd import Response
from testbed.heketi.store import VolumeRecord, new_id

OP_KINDS = frozenset(
    {
        "volume_create",
        "volume_expand",
        "volume_delete",
        "volume_clone",
        "volume_get",
        "volume_list",
        "queue_get",
        "cluster_list",
        "node_get",
        "cluster_get",
        "operations_info",
        "node_tags",
        "device_tags",
        "any",
    }
)
ASYNC_KINDS = frozenset({"volume_create", "volume_expand", "volume_delete", "volume_clone"})
_BUSY = "Server busy. Retry operation later."


@dataclass
class Fault:
    """A failure injected into the next `remaining` requests of one kind."""

    kind: str
    remaining: int
    status: int = 500
    message: str = ""
    in_queue: bool = False
    drop: bool = False
    after_commit: bool = False


@dataclass
class QueueEntry:
    done: bool = False
    status: int = 0  # 303, 204 or 500 once done
    location: str = ""
    message: str = ""


@dataclass
class Operation:
    """An accepted async operation: runs in the background, then commits or rolls back."""

    kind: str
    execute: Callable[[], None]  # outside the lock (gluster CLI)
    commit: Callable[[], QueueEntry]  # under the lock
    rollback: Callable[[], None]  # under the lock
    volume: VolumeRecord
    fail_message: str | None = None
    queue_id: str = field(default_factory=new_id)
    generation: int = 0
    worker: threading.Thread | None = None
    #: Set when the server stops or restarts: the operation stops where it is.
    interrupted: threading.Event = field(default_factory=threading.Event)


class Operations:
    """The queue, the running and stale operations, the in-flight count and the
    injected faults. Every method runs under the server's `lock`."""

    def __init__(self, lock: threading.RLock, *, max_inflight: int, latency: float) -> None:
        self._lock = lock
        self._max_inflight = max_inflight
        #: Seconds each operation runs before it completes.
        self.latency = latency
        self._queue: dict[str, QueueEntry] = {}
        self._faults: list[Fault] = []
        self._running: dict[str, Operation] = {}
        self._stale: list[Operation] = []
        self._workers: set[threading.Thread] = set()
        self._generation = 0
        self.inflight = 0
        self.peak_inflight = 0

    # -- faults -------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        if fault.kind not in OP_KINDS:
            raise ValueError(
                f"unknown operation kind {fault.kind!r}; use one of {sorted(OP_KINDS)}"
            )
        with self._lock:
            self._faults.append(fault)

    def take_fault(self, kind: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind in (kind, "any"):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # -- running ------------------------------------------------------------------

    def check_capacity(self) -> None:
        if self.inflight >= self._max_inflight:
            raise RequestError(429, _BUSY)

    def accept(self, fault: Fault | None, op: Operation) -> Response:
        if fault is not None and fault.in_queue:
            op.fail_message = fault.message
        op.generation = self._generation
        self.inflight += 1
        self.peak_inflight = max(self.peak_inflight, self.inflight)
        self._queue[op.queue_id] = QueueEntry()
        self._running[op.queue_id] = op
        worker = threading.Thread(
            target=self._run, args=(op,), daemon=True, name=f"heketi-op-{op.queue_id[:8]}"
        )
        op.worker = worker
        self._workers.add(worker)
        worker.start()
        return Response(202, headers={"Location": f"/queue/{op.queue_id}"})

    def _run(self, op: Operation) -> None:
        """Run one accepted operation; it commits only if `execute` returned normally."""
        error: str | None = "operation did not run to its end"
        try:
            if self.latency and op.interrupted.wait(self.latency):
                error = "Heketi test server stopped"
            elif op.fail_message is not None:
                error = op.fail_message
            else:
                op.execute()
                error = None
        except Exception as exc:  # any failure (a CLI timeout too) rolls back, never commits
            error = str(exc) or type(exc).__name__
        finally:
            self._finish(op, error)

    def _finish(self, op: Operation, error: str | None) -> None:
        with self._lock:
            self._workers.discard(threading.current_thread())
            if op.generation != self._generation:
                return  # abandoned by a restart: pending until the cleaner runs
            del self._running[op.queue_id]
            if error is None:
                entry = op.commit()
            else:
                op.rollback()
                entry = QueueEntry(True, 500, message=error)
            self.inflight -= 1
            if op.queue_id in self._queue:
                self._queue[op.queue_id] = entry

    # -- reads --------------------------------------------------------------------

    def queue_get(self, queue_id: str) -> Response:
        with self._lock:
            entry = self._queue.get(queue_id)
            if entry is None:
                return Response.text(404, "Id not found")
            if not entry.done:
                return Response(200, headers={"X-Pending": "true"})
            del self._queue[queue_id]
        if entry.status == 303:
            return Response.redirect(303, entry.location, "See Other")
        if entry.status == 500:
            return Response.text(500, entry.message)
        return Response(204)

    def info(self) -> Response:
        """Heketi's OperationsInfo (apps/glusterfs/app_operations.go OperationsInfo):
        `total` and the state counts from the pending operations in its database,
        `in_flight` from its operations tracker. Here the running operations are the
        "new" ones, and those a restart left pending are "stale" (`ServerReset`)."""
        with self._lock:
            running, stale = self.inflight, len(self._stale)
        return Response.json(
            {
                "total": running + stale,
                "in_flight": running,
                "stale": stale,
                "failed": 0,
                "new": running,
            }
        )

    def stale_count(self) -> int:
        with self._lock:
            return len(self._stale)

    # -- stop and restart ---------------------------------------------------------

    def interrupt(self) -> None:
        """The server stops: running operations stop where they are."""
        with self._lock:
            for op in self._running.values():
                op.interrupted.set()

    def join_workers(self) -> None:
        for worker in list(self._workers):
            worker.join(timeout=gluster.COMMAND_TIMEOUT_SECONDS)

    def restart(self) -> None:
        """Queue entries lost, the limit's count back at zero (a new OpTracker);
        running operations stop and stay pending as stale ones."""
        with self._lock:
            self._queue.clear()
            self._generation += 1
            self.interrupt()
            self._stale.extend(self._running.values())
            self._running.clear()
            self.inflight = 0

    def take_stale(self) -> list[Operation]:
        """The stale operations, for the cleaner; each one's thread has ended."""
        with self._lock:
            stale, self._stale = self._stale, []
        for op in stale:
            if op.worker is not None:  # the abandoned thread is this server's, not Heketi's
                op.worker.join(timeout=gluster.COMMAND_TIMEOUT_SECONDS)
        return stale
