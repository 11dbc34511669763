"""List + watch cache of one resource, on plain dicts.

`kubernetes.informer.SharedInformer` decodes every object into generated model
classes, which at 10,000 PVC/PV pairs costs more than everything else this
controller does; this informer keeps the API's JSON dicts (with `managedFields`
and the kubectl last-applied annotation stripped to save memory).

Loop: list (paginated) → remember the list's resourceVersion → watch from it →
on a normal end of the stream watch again from the last version seen (BOOKMARK
events only advance it) → on 410 Gone (HTTP status or an ERROR event) list again
and deliver the difference → on a dropped connection reconnect with backoff.
"""

import random
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from provisioner.controller.workqueue import BackoffPolicy
from provisioner.kube.api import KubeError, KubeGone, Obj
from provisioner.log import get_logger

log = get_logger("informer")

#: Objects per list page: bounded response size and memory while listing 10,000 PVCs.
DEFAULT_PAGE_SIZE: Final = 500
#: Server-side watch timeout; client-go picks 5-10 minutes at random to spread relists.
DEFAULT_WATCH_TIMEOUT_SECONDS: Final = 300
#: Extra read time beyond the server timeout before a silent connection counts as dead.
WATCH_READ_GRACE_SECONDS: Final = 30.0
#: Reconnect backoff after a dropped watch or failed list: fast first, capped at 30 s.
DEFAULT_RECONNECT_BACKOFF: Final = BackoffPolicy(base_seconds=0.2, cap_seconds=30.0, jitter=0.2)
LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"


class EventStream(Protocol):
    """An open watch: iterate for events; `close()` ends it from any thread."""

    def __iter__(self) -> Iterator[Obj]: ...
    def close(self) -> None: ...


class ListWatchApi(Protocol):
    """What the informer needs of the API (KubeApi provides it)."""

    def list(self, path: str, *, query: Sequence[tuple[str, str]] = ()) -> Obj: ...
    def watch(
        self, path: str, *, query: Sequence[tuple[str, str]], read_timeout: float
    ) -> EventStream: ...


class Handler(Protocol):
    def on_add(self, obj: Obj) -> None: ...
    def on_update(self, old: Obj, new: Obj) -> None: ...
    def on_delete(self, obj: Obj) -> None: ...


@dataclass(frozen=True)
class InformerSettings:
    page_size: int = DEFAULT_PAGE_SIZE
    watch_timeout_seconds: int = DEFAULT_WATCH_TIMEOUT_SECONDS
    reconnect_backoff: BackoffPolicy = field(default=DEFAULT_RECONNECT_BACKOFF)


def object_key(obj: Obj) -> str:
    """`namespace/name` for namespaced objects, `name` otherwise."""
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])


def slim(obj: Obj) -> Obj:
    """Drop fields the controller never reads that dominate object size."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
        annotations = meta.get("annotations")
        if isinstance(annotations, dict):
            annotations.pop(LAST_APPLIED, None)
    return obj


class Informer:
    """Keeps `store` in step with the API and tells `handler` about each change."""

    def __init__(
        self,
        api: ListWatchApi,
        *,
        path: str,
        handler: Handler,
        name: str,
        settings: InformerSettings | None = None,
        transform: Callable[[Obj], Obj] = slim,
    ) -> None:
        self._api = api
        self._path = path
        self._handler = handler
        self.name = name
        self._settings = settings or InformerSettings()
        self._transform = transform
        self._store: dict[str, Obj] = {}
        self._version = ""
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._stream: EventStream | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.relists = 0
        #: The last list/watch failure (for a startup error message), "" if none.
        self.last_error = ""

    # -- reads (any thread) -------------------------------------------------
    def get(self, key: str) -> Obj | None:
        return self._store.get(key)

    def items(self) -> list[Obj]:
        return list(self._store.values())

    def keys(self) -> list[str]:
        return list(self._store.keys())

    def __len__(self) -> int:
        return len(self._store)

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def wait_synced(self, timeout: float) -> bool:
        return self._synced.wait(timeout)

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"informer-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, *, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        failures = 0
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    self._relist()
                    need_list = False
                failures = 0 if self._watch_once() else failures
            except KubeGone as exc:
                if need_list:  # 410 while listing (expired continue token): back off
                    failures = self._back_off(failures, exc)
                else:
                    log.info("resource version expired; relisting", informer=self.name)
                    need_list = True
            except (KubeError, ValueError, OSError) as exc:
                failures = self._back_off(failures, exc)
            except Exception as exc:  # a bug must not silently stop the cache
                log.exception("informer loop crashed; restarting it", informer=self.name)
                failures = self._back_off(failures, exc)

    def _back_off(self, failures: int, exc: Exception) -> int:
        self.last_error = str(exc)
        delay = self._settings.reconnect_backoff.delay(failures)
        log.warning(
            "list/watch failed; retrying",
            informer=self.name,
            error=str(exc),
            retry_in=round(delay, 2),
        )
        self._stop.wait(delay)
        return failures + 1

    # -- list -----------------------------------------------------------------
    def _relist(self) -> None:
        objects, version = self._list_all()
        if self._stop.is_set():
            return
        fresh = {object_key(obj): obj for obj in objects}
        old_store = self._store
        self._store = fresh
        self._version = version
        self.relists += 1
        self._deliver_diff(old_store, fresh)
        self._synced.set()
        log.debug("listed", informer=self.name, objects=len(fresh), version=version)

    def _list_all(self) -> tuple[list[Obj], str]:
        objects: list[Obj] = []
        token = ""
        while True:
            query = [("limit", str(self._settings.page_size))]
            if token:
                query.append(("continue", token))
            page = self._api.list(self._path, query=query)
            objects.extend(self._transform(item) for item in page.get("items") or ())
            meta = page.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                return objects, str(meta.get("resourceVersion", ""))

    def _deliver_diff(self, old: dict[str, Obj], new: dict[str, Obj]) -> None:
        for key, obj in new.items():
            previous = old.get(key)
            if previous is None:
                self._handler.on_add(obj)
            else:
                self._handler.on_update(previous, obj)
        for key, obj in old.items():
            if key not in new:
                self._handler.on_delete(obj)

    # -- watch ----------------------------------------------------------------
    def _watch_once(self) -> bool:
        """One watch stream to its end; True when at least one event arrived."""
        timeout = self._settings.watch_timeout_seconds
        timeout = int(timeout * (1 + random.random()))  # noqa: S311 - spreading, not security
        query = [
            ("resourceVersion", self._version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout)),
        ]
        stream = self._api.watch(
            self._path, query=query, read_timeout=timeout + WATCH_READ_GRACE_SECONDS
        )
        with self._lock:
            self._stream = stream
        if self._stop.is_set():
            stream.close()
        try:
            return self._consume(stream)
        finally:
            with self._lock:
                self._stream = None

    def _consume(self, events: Iterable[dict[str, Any]]) -> bool:
        seen = False
        for event in events:
            if self._stop.is_set():
                break
            seen = True
            self._apply(str(event.get("type", "")), event.get("object") or {})
        return seen

    def _apply(self, kind: str, obj: Obj) -> None:
        if kind == "ERROR":
            code = obj.get("code", 0)
            if code == 410:
                raise KubeGone(410, str(obj.get("message", "too old resource version")))
            raise KubeError(int(code or 0), str(obj.get("message", "watch error")))
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            self._version = str(version or self._version)
            return
        obj = self._transform(obj)
        key = object_key(obj)
        if kind == "DELETED":
            old = self._store.pop(key, None)
            self._handler.on_delete(old if old is not None else obj)
        elif kind in ("ADDED", "MODIFIED"):
            old = self._store.get(key)
            self._store[key] = obj
            if old is None:
                self._handler.on_add(obj)
            else:
                self._handler.on_update(old, obj)
        if version:
            self._version = str(version)
