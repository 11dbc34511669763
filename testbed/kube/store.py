"""The object store: one global resourceVersion, immutable stored objects, event history.

Stored objects are never changed after they are stored, so readers share them
without copying; every write builds a new dict. Each change bumps the global
resourceVersion by exactly one and appends one event, so the event for
resourceVersion R sits at a fixed offset in the history list.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from testbed.kube import errors, network, objectmeta, strategy
from testbed.kube.errors import ApiError
from testbed.kube.normalize import normalize
from testbed.kube.resources import BY_GROUP_VERSION, ResourceType
from testbed.kube.selectors import MATCH_ALL, Filter

JSON = dict[str, Any]
Key = tuple[str, str]  # (namespace or "", name)

#: Resource version of an empty store; opaque to clients, any positive start works.
FIRST_RESOURCE_VERSION = 1
#: History is trimmed in batches of this fraction of its bound (amortises the list copy).
_TRIM_SLACK = 0.1
#: How long a list for a future resourceVersion waits before 504, like the apiserver.
TOO_LARGE_RV_WAIT = 3.0
NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_NAMESPACES_RT = BY_GROUP_VERSION[("", "v1")]["namespaces"]


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@dataclass(slots=True, frozen=True)
class Stored:
    obj: JSON
    raw: bytes


@dataclass(slots=True, frozen=True)
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    bucket: str
    namespace: str
    name: str
    obj: JSON
    raw: bytes
    prev: JSON | None  # the object before this change; None for ADDED


@dataclass(frozen=True)
class ListResult:
    items: list[Stored]
    resource_version: int
    continue_token: str | None
    remaining: int | None


@dataclass(frozen=True)
class DeleteOptions:
    uid: str | None = None
    resource_version: str | None = None
    dry_run: bool = False


class Store:
    """All objects of all types, guarded by one lock; see the module docstring."""

    def __init__(self, *, history: int, pv_protection: bool = False) -> None:
        if history < 1:
            raise ValueError("history must keep at least one event")
        self._history = history
        #: Admission plugin StorageObjectInUseProtection: new PVs get kubernetes.io/pv-protection.
        self.pv_protection = pv_protection
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._rv = FIRST_RESOURCE_VERSION
        self._buckets: dict[str, dict[str, dict[str, Stored]]] = {}
        self._sorted: dict[str, list[Key]] = {}
        self._events: list[Event] = []
        self._first_rv = self._rv + 1
        self.closed = False
        self.cut_epoch = 0
        for name in NAMESPACES:
            self.create(_NAMESPACES_RT, "", {"metadata": {"name": name}})

    # --- reading ---------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def compacted(self) -> int:
        """Watches and continues from a resourceVersion below this get 410 Expired."""
        return self._first_rv - 1

    def get(self, rt: ResourceType, namespace: str, name: str) -> Stored:
        stored = self._buckets.get(rt.bucket, {}).get(namespace, {}).get(name)
        if stored is None:
            raise errors.not_found(rt.plural, rt.group, name)
        return stored

    def find(self, bucket: str, namespace: str, name: str) -> Stored | None:
        return self._buckets.get(bucket, {}).get(namespace, {}).get(name)

    def objects(self, bucket: str, namespace: str | None = None) -> list[Stored]:
        """Current objects of a bucket in key order (a snapshot; safe to iterate)."""
        with self._lock:
            spaces = self._buckets.get(bucket, {})
            return [spaces[ns][name] for ns, name in self._keys(bucket, namespace)]

    def _keys(self, bucket: str, namespace: str | None) -> list[Key]:
        keys = self._sorted.get(bucket)
        if keys is None:
            spaces = self._buckets.get(bucket, {})
            keys = sorted((ns, name) for ns, names in spaces.items() for name in names)
            self._sorted[bucket] = keys
        if namespace is None:
            return keys
        low = bisect.bisect_left(keys, (namespace, ""))
        high = bisect.bisect_left(keys, (namespace + "\x00", ""))
        return keys[low:high]

    def list_page(
        self,
        rt: ResourceType,
        namespace: str | None,
        flt: Filter = MATCH_ALL,
        *,
        limit: int = 0,
        token: str | None = None,
        resource_version: str | None = None,
        match: str | None = None,
    ) -> ListResult:
        with self._lock:
            if token:
                if resource_version:
                    raise errors.bad_request(
                        "specifying resource version is not allowed when using continue"
                    )
                at, start = _decode_continue(token)
                self._check_not_compacted(at, continuing=True)
            else:
                at, start = self._list_rv(resource_version, match), None
            return self._page(rt, namespace, flt, at=at, start=start, limit=limit)

    def _list_rv(self, resource_version: str | None, match: str | None) -> int:
        if not resource_version or resource_version == "0":
            if match == "Exact":
                raise errors.bad_request(
                    "resourceVersionMatch: Forbidden: resourceVersionMatch "
                    '"exact" is forbidden for resourceVersion "0"'
                )
            return self._rv
        wanted = parse_resource_version(resource_version)
        self._wait_for(wanted)
        if match == "Exact":
            self._check_not_compacted(wanted, continuing=False)
            return wanted
        return self._rv

    def _wait_for(self, wanted: int) -> None:
        deadline = time.monotonic() + TOO_LARGE_RV_WAIT
        while wanted > self._rv:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed:
                raise ApiError(
                    504,
                    f"Too large resource version: {wanted}, current: {self._rv}",
                    reason="Timeout",
                    details={
                        "causes": [
                            {
                                "reason": "ResourceVersionTooLarge",
                                "message": "Too large resource version",
                            }
                        ],
                        "retryAfterSeconds": 1,
                    },
                )
            self._changed.wait(remaining)

    def _check_not_compacted(self, rv: int, *, continuing: bool) -> None:
        if rv >= self.compacted:
            return
        if continuing:
            raise errors.expired(
                "The provided continue parameter is too old to display a consistent list "
                "result. You can start a new list without the continue parameter."
            )
        raise errors.expired(f"too old resource version: {rv} ({self.compacted})")

    def _page(
        self,
        rt: ResourceType,
        namespace: str | None,
        flt: Filter,
        *,
        at: int,
        start: Key | None,
        limit: int,
    ) -> ListResult:
        spaces = self._buckets.get(rt.bucket, {})
        keys = self._keys(rt.bucket, namespace)
        past = self._state_at(rt.bucket, at) if at < self._rv else {}
        if past:
            extra = {k for k in past if namespace is None or k[0] == namespace}
            keys = sorted(set(keys) | extra)
        index = bisect.bisect_right(keys, start) if start is not None else 0
        items: list[Stored] = []
        last: Key | None = None
        while index < len(keys):
            key = keys[index]
            index += 1
            stored = _at(spaces, past, key)
            if stored is None or (not flt.empty and not flt.matches(stored.obj)):
                continue
            items.append(stored)
            last = key
            if limit and len(items) >= limit:
                break
        more = limit > 0 and index < len(keys) and last is not None
        token = _encode_continue(at, last) if more and last is not None else None
        remaining = len(keys) - index if more and flt.empty else None
        return ListResult(items, at, token, remaining)

    def _state_at(self, bucket: str, rv: int) -> dict[Key, JSON | None]:
        """For keys changed after `rv`: their object at `rv` (None = did not exist)."""
        past: dict[Key, JSON | None] = {}
        for event in self._events[max(0, rv - self._first_rv + 1) :]:
            key = (event.namespace, event.name)
            if event.bucket == bucket and key not in past:
                past[key] = event.prev
        return past

    # --- writing ---------------------------------------------------------------------------

    def create(
        self, rt: ResourceType, namespace: str, obj: JSON, *, dry_run: bool = False
    ) -> Stored:
        with self._lock:
            meta = objectmeta.prepare_meta(rt, namespace, obj)
            normalize(rt.bucket, obj)
            self._check_namespace(rt, namespace, meta)
            strategy.prepare_create(rt, obj, self._create_context())
            strategy.validate_create(rt, obj)
            if self.find(rt.bucket, namespace, meta["name"]) is not None:
                raise errors.already_exists(rt.plural, rt.group, meta["name"])
            if dry_run:
                return Stored(obj, dumps(obj))
            return self._commit(rt.bucket, namespace, obj, "ADDED", None)

    def _check_namespace(self, rt: ResourceType, namespace: str, meta: JSON) -> None:
        if not rt.namespaced:
            return
        ns = self.find("namespaces", "", namespace)
        if ns is None:
            raise errors.not_found("namespaces", "", namespace)
        if ns.obj["metadata"].get("deletionTimestamp"):
            raise errors.forbidden(
                rt.plural,
                rt.group,
                meta.get("name", ""),
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated",
            )

    def _create_context(self) -> strategy.CreateContext:
        default_class = None
        for stored in self._buckets.get("storageclasses", {}).get("", {}).values():
            annotations = stored.obj["metadata"].get("annotations") or {}
            if annotations.get(strategy.DEFAULT_CLASS_ANNOTATION) == "true":
                default_class = stored.obj["metadata"]["name"]
        services = self._buckets.get("services", {})
        ips = network.cluster_ips(s.obj for space in services.values() for s in space.values())
        return strategy.CreateContext(
            now=objectmeta.now_rfc3339(),
            default_storage_class=default_class,
            cluster_ips=frozenset(ips),
            pv_protection=self.pv_protection,
        )

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        obj: JSON,
        *,
        status: bool = False,
        dry_run: bool = False,
    ) -> Stored:
        """PUT: `obj` replaces the object; its resourceVersion, if set, is a precondition."""
        objectmeta.check_body_identity(rt, namespace, name, obj)
        return self.mutate(
            rt, namespace, name, lambda _current: obj, status=status, dry_run=dry_run
        )

    def mutate(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        change: Callable[[JSON], JSON],
        *,
        status: bool = False,
        dry_run: bool = False,
    ) -> Stored:
        """Read-modify-write: `change` gets a private copy of the current object."""
        with self._lock:
            current = self.get(rt, namespace, name)
            new = change(json.loads(current.raw))
            if not isinstance(new, dict) or not isinstance(new.get("metadata", {}), dict):
                raise errors.bad_request("the object must be a JSON object with metadata")
            objectmeta.check_precondition(rt, new, current.obj)
            new = self._prepare_update(rt, namespace, new, current.obj, status=status)
            if _same(new, current.obj):
                return current
            if dry_run:
                return Stored(new, dumps(new))
            return self._store_update(rt.bucket, namespace, new, current.obj)

    def _prepare_update(
        self, rt: ResourceType, namespace: str, new: JSON, old: JSON, *, status: bool
    ) -> JSON:
        new.setdefault("metadata", {})
        strategy.check_uid_unchanged(rt, new, old)
        normalize(rt.bucket, new)
        new = strategy.prepare_update(rt, new, old, status=status)
        objectmeta.keep_system_meta(rt, namespace, new, old)
        strategy.validate_update(rt, new, old)
        # rest.BeforeUpdate keeps the old generation (in _SYSTEM_META); only a strategy bumps it.
        if rt.sets_generation and objectmeta.spec_changed(new, old):
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        return new

    def _store_update(self, bucket: str, namespace: str, new: JSON, old: JSON) -> Stored:
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            return self._remove(bucket, namespace, new, old)
        return self._commit(bucket, namespace, new, "MODIFIED", old)

    def delete(
        self, rt: ResourceType, namespace: str, name: str, options: DeleteOptions = DeleteOptions()
    ) -> tuple[Stored, bool]:
        """(the object, whether it is gone); with finalizers it is only marked for deletion."""
        with self._lock:
            current = self.get(rt, namespace, name)
            objectmeta.check_delete_preconditions(
                rt, current.obj, uid=options.uid, resource_version=options.resource_version
            )
            if options.dry_run:
                return current, not current.obj["metadata"].get("finalizers")
            return self._delete_object(rt.bucket, namespace, current)

    def _delete_object(self, bucket: str, namespace: str, current: Stored) -> tuple[Stored, bool]:
        meta = current.obj["metadata"]
        if bucket == "namespaces":
            return self._delete_namespace(current)
        if not meta.get("finalizers"):
            return self._remove(bucket, namespace, current.obj, current.obj), True
        if meta.get("deletionTimestamp"):
            return current, False
        marked = json.loads(current.raw)
        marked["metadata"]["deletionTimestamp"] = objectmeta.now_rfc3339()
        marked["metadata"]["deletionGracePeriodSeconds"] = 0
        if meta.get("generation", 0) > 0:  # registry/store.go markAsDeleting: bump if set
            marked["metadata"]["generation"] = meta["generation"] + 1
        return self._commit(bucket, namespace, marked, "MODIFIED", current.obj), False

    def _delete_namespace(self, current: Stored) -> tuple[Stored, bool]:
        name = current.obj["metadata"]["name"]
        if not current.obj["metadata"].get("deletionTimestamp"):
            marked = json.loads(current.raw)
            marked["metadata"]["deletionTimestamp"] = objectmeta.now_rfc3339()
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            marked["status"] = {"phase": "Terminating"}
            current = self._commit("namespaces", "", marked, "MODIFIED", current.obj)
        for bucket, spaces in list(self._buckets.items()):
            for stored in list(spaces.get(name, {}).values()):
                self._delete_object(bucket, name, stored)
        return self._finish_namespace(name) or current, self.find("namespaces", "", name) is None

    def _finish_namespace(self, name: str) -> Stored | None:
        """The namespace controller's last step: remove a terminating namespace once empty."""
        ns = self.find("namespaces", "", name)
        if ns is None or not ns.obj["metadata"].get("deletionTimestamp"):
            return None
        if any(spaces.get(name) for spaces in self._buckets.values()):
            return None
        return self._remove("namespaces", "", ns.obj, ns.obj)

    def _remove(self, bucket: str, namespace: str, final: JSON, old: JSON) -> Stored:
        """Delete; watchers get the last stored state (as etcd reports it), the caller `final`."""
        self._rv += 1
        rv = str(self._rv)
        gone = {**old, "metadata": {**old["metadata"], "resourceVersion": rv}}
        raw = dumps(gone)
        name = gone["metadata"]["name"]
        spaces = self._buckets[bucket]
        del spaces[namespace][name]
        if not spaces[namespace]:
            del spaces[namespace]
        self._sorted.pop(bucket, None)
        self._record(Event(self._rv, "DELETED", bucket, namespace, name, gone, raw, old))
        if namespace and bucket != "namespaces":
            self._finish_namespace(namespace)
        if final is old:
            return Stored(gone, raw)
        answer = {**final, "metadata": {**final["metadata"], "resourceVersion": rv}}
        return Stored(answer, dumps(answer))

    def _commit(
        self, bucket: str, namespace: str, obj: JSON, kind: str, old: JSON | None
    ) -> Stored:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        stored = Stored(obj, dumps(obj))
        name = obj["metadata"]["name"]
        names = self._buckets.setdefault(bucket, {}).setdefault(namespace, {})
        if name not in names:
            self._sorted.pop(bucket, None)
        names[name] = stored
        self._record(Event(self._rv, kind, bucket, namespace, name, obj, stored.raw, old))
        return stored

    def _record(self, event: Event) -> None:
        self._events.append(event)
        if len(self._events) > self._history * (1 + _TRIM_SLACK):
            drop = len(self._events) - self._history
            del self._events[:drop]
            self._first_rv += drop
        self._changed.notify_all()

    # --- bulk and history ------------------------------------------------------------------

    def seed(self, entries: Iterable[tuple[ResourceType, str, JSON]]) -> None:
        """Create many (type, namespace, object) entries under one lock hold."""
        with self._lock:
            for rt, namespace, obj in entries:
                self.create(rt, namespace, obj)

    def compact(self) -> None:
        """Forget all history: every resourceVersion before now is too old."""
        with self._lock:
            self._events.clear()
            self._first_rv = self._rv + 1
            self._changed.notify_all()

    def events_after(self, rv: int, timeout: float, epoch: int) -> list[Event] | None:
        """Events newer than `rv`, waiting up to `timeout`; None when `rv` was compacted."""
        with self._lock:
            deadline = time.monotonic() + timeout
            while self._rv <= rv and not self.closed and epoch == self.cut_epoch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            if rv < self.compacted:
                return None
            return self._events[rv - self._first_rv + 1 :]

    def wake_all(self, *, cut: bool = False, close: bool = False) -> None:
        with self._lock:
            if cut:
                self.cut_epoch += 1
            if close:
                self.closed = True
            self._changed.notify_all()

    def reopen(self) -> None:
        """Serve again after `wake_all(close=True)` (a restarted server)."""
        with self._lock:
            self.closed = False

    def snapshot(self, bucket: str, namespace: str | None) -> tuple[int, list[Stored]]:
        with self._lock:
            spaces = self._buckets.get(bucket, {})
            keys = self._keys(bucket, namespace)
            return self._rv, [spaces[ns][name] for ns, name in keys]


# --- helpers ---------------------------------------------------------------------------------


def parse_resource_version(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise errors.bad_request(
            f'resourceVersion: Invalid value: "{text}": must be a valid '
            "resourceVersion returned by the server"
        )
    return value


def _at(
    spaces: dict[str, dict[str, Stored]], past: dict[Key, JSON | None], key: Key
) -> Stored | None:
    if key in past:
        obj = past[key]
        return None if obj is None else Stored(obj, dumps(obj))
    return spaces.get(key[0], {}).get(key[1])


def _encode_continue(rv: int, last: Key) -> str:
    start = f"{last[0]}/{last[1]}" if last[0] else last[1]
    body = {"v": "meta.k8s.io/v1", "rv": rv, "start": start + "\x00"}
    return base64.urlsafe_b64encode(dumps(body)).decode()


def _decode_continue(token: str) -> tuple[int, Key]:
    try:
        body = json.loads(base64.urlsafe_b64decode(token.encode()))
        rv, start = int(body["rv"]), str(body["start"]).rstrip("\x00")
    except (ValueError, KeyError, TypeError, binascii.Error) as err:
        raise errors.bad_request(f"continue key is not valid: {err}") from err
    namespace, _, name = start.rpartition("/")
    return rv, (namespace, name)


def _same(new: JSON, old: JSON) -> bool:
    return new == old
