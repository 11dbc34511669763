"""Watch streams: which events a watcher sees, as newline-delimited JSON lines."""

import time
from collections.abc import Callable
from dataclasses import dataclass

from testbed.kube import errors
from testbed.kube.resources import ResourceType
from testbed.kube.selectors import Filter
from testbed.kube.store import Event, Store, Stored, dumps, parse_resource_version

Encode = Callable[[Stored], bytes]

#: Annotation on the bookmark that ends the initial events (sendInitialEvents=true).
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


def line(kind: str, raw: bytes) -> bytes:
    return b'{"type":"' + kind.encode() + b'","object":' + raw + b"}\n"


def error_line(err: errors.ApiError) -> bytes:
    return line("ERROR", dumps(err.status()))


@dataclass(frozen=True)
class WatchRequest:
    rt: ResourceType
    namespace: str | None
    flt: Filter
    resource_version: str | None
    send_initial: bool | None
    bookmarks: bool
    deadline: float  # time.monotonic()


class WatchStream:
    """Produces batches of event lines for one watch request."""

    def __init__(
        self, store: Store, request: WatchRequest, *, encode: Encode, bookmark_interval: float
    ) -> None:
        self._store = store
        self._req = request
        self._encode = encode
        self._bookmark_interval = bookmark_interval
        self._cursor = 0
        self._last_bookmark = time.monotonic()
        self._epoch = store.cut_epoch
        self.finished = False
        self.cut = False

    def start(self) -> list[bytes]:
        """Initial lines: synthetic ADDED events, or a 410 ERROR for a too-old version."""
        req = self._req
        rv = req.resource_version
        synthetic = req.send_initial if req.send_initial is not None else rv in (None, "", "0")
        if not synthetic:
            wanted = parse_resource_version(rv or "0")
            if wanted < self._store.compacted:
                self.finished = True
                return [error_line(_too_old(wanted, self._store.compacted))]
            self._cursor = wanted
            return []
        current, objects = self._store.snapshot(req.rt.bucket, req.namespace)
        self._cursor = current
        lines = [
            line("ADDED", self._encode(s))
            for s in objects
            if req.flt.empty or req.flt.matches(s.obj)
        ]
        if req.send_initial and req.bookmarks:
            lines.append(self._bookmark({INITIAL_EVENTS_END: "true"}))
        return lines

    def next_batch(self) -> list[bytes]:
        """Lines for what happened since the last batch; waits up to one bookmark interval."""
        wait = min(self._bookmark_interval, self._req.deadline - time.monotonic())
        if wait <= 0:
            self.finished = True
            return []
        events = self._store.events_after(self._cursor, wait, self._epoch)
        if self._store.cut_epoch != self._epoch or self._store.closed:
            self.cut = self._store.cut_epoch != self._epoch
            self.finished = True
            return []
        if events is None:
            self.finished = True
            return [error_line(_too_old(self._cursor, self._store.compacted))]
        lines = [text for event in events if (text := self._line_for(event)) is not None]
        if events:
            self._cursor = events[-1].rv
        if self._req.bookmarks and time.monotonic() - self._last_bookmark >= (
            self._bookmark_interval
        ):
            lines.append(self._bookmark(None))
        return lines

    def _line_for(self, event: Event) -> bytes | None:
        req = self._req
        if event.bucket != req.rt.bucket:
            return None
        if req.namespace is not None and event.namespace != req.namespace:
            return None
        flt = req.flt
        now = event.type != "DELETED" and (flt.empty or flt.matches(event.obj))
        before = event.prev is not None and (flt.empty or flt.matches(event.prev))
        if now:
            return line("ADDED" if not before else "MODIFIED", self._encode(_stored(event)))
        if not before:
            return None
        if event.type == "DELETED":
            return line("DELETED", self._encode(_stored(event)))
        assert event.prev is not None
        left = {
            **event.prev,
            "metadata": {**event.prev["metadata"], "resourceVersion": str(event.rv)},
        }
        return line("DELETED", self._encode(Stored(left, dumps(left))))

    def _bookmark(self, annotations: dict[str, str] | None) -> bytes:
        self._last_bookmark = time.monotonic()
        meta: dict[str, object] = {"resourceVersion": str(self._cursor)}
        if annotations:
            meta["annotations"] = annotations
        obj = {"kind": self._req.rt.kind, "apiVersion": self._req.rt.api_version, "metadata": meta}
        return line("BOOKMARK", dumps(obj))


def _stored(event: Event) -> Stored:
    return Stored(event.obj, event.raw)


def _too_old(rv: int, oldest: int) -> errors.ApiError:
    return errors.expired(f"too old resource version: {rv} ({oldest})")
