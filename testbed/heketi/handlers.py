"""What the Heketi test server does for each route it serves: reads of clusters,
nodes and volumes, tag changes, and the volume operations (create, expand,
delete, clone) with their Build step's checks, commit and rollback.

Each handler answers as the handler of the same app.go route name in Heketi
v10.4.1's `apps/glusterfs/` (named on each), under the server's lock. In
`gluster` mode an operation's work runs on the local glusterd (`gluster`,
`clone`); in `memory` mode it is bookkeeping only.
"""

import json
import socket
import threading
from collections.abc import Callable
from typing import Any

from provisioner.heketi.placement import placement_of
from testbed.heketi import clone, gluster
from testbed.heketi.bodies import RequestError, applied_tags, tags_change
from testbed.heketi.httpd import Response
from testbed.heketi.operations import Fault, Operation, Operations, QueueEntry
from testbed.heketi.store import Brick, Store, VolumeRecord

#: A route's handler: the request body and the fault injected into it, if any.
Handler = Callable[[bytes, Fault | None], Response]

#: Heketi's ErrConflict: the volume (or a brick of it) has a pending operation.
_CONFLICT = "The target exists, contains other items, or is in use."
#: Heketi's prefixes (app_volume.go) for errors of an operation's synchronous Build step.
_CREATE_FAILED = "Failed to allocate new volume: "
_EXPAND_FAILED = "Failed to allocate volume expansion: "
_DELETE_FAILED = "Failed to set up volume delete: "


class Handlers:
    """The served routes' handlers over one store and one set of operations."""

    def __init__(
        self, lock: threading.RLock, store: Store, ops: Operations, *, gluster_mode: bool
    ) -> None:
        self._lock = lock
        self._store = store
        self._ops = ops
        self.bricks = GlusterBricks(enabled=gluster_mode)

    def table(self, item: str) -> dict[str, tuple[str, Handler]]:
        """The served subset of the route table, by app.go route name, with each
        route's operation kind (for faults); `item` is the id in the path."""
        return {
            "Async": ("queue_get", lambda b, f: self._ops.queue_get(item)),
            "ClusterList": ("cluster_list", lambda b, f: self._cluster_list()),
            "ClusterInfo": ("cluster_get", lambda b, f: self._cluster_get(item)),
            "NodeInfo": ("node_get", lambda b, f: self._node_get(item)),
            "VolumeList": ("volume_list", lambda b, f: self._volume_list()),
            "VolumeCreate": ("volume_create", self._volume_create),
            "VolumeInfo": ("volume_get", lambda b, f: self._volume_get(item)),
            "VolumeDelete": ("volume_delete", lambda b, f: self._volume_delete(item, f)),
            "VolumeExpand": ("volume_expand", lambda b, f: self._volume_expand(item, b, f)),
            "VolumeClone": ("volume_clone", lambda b, f: self._volume_clone(item, b, f)),
            "OperationsInfo": ("operations_info", lambda b, f: self._ops.info()),
            "NodeSetTags": ("node_tags", lambda b, f: self._set_tags(item, b, node=True)),
            "DeviceSetTags": ("device_tags", lambda b, f: self._set_tags(item, b, node=False)),
        }

    # -- reads --------------------------------------------------------------------

    def _cluster_list(self) -> Response:
        with self._lock:
            return Response.json({"clusters": sorted(self._store.clusters)})

    def _cluster_get(self, cluster: str) -> Response:
        with self._lock:
            if cluster not in self._store.clusters:
                return Response.text(404, "Id not found")
            return Response.json(self._store.cluster_json(cluster))

    def _node_get(self, node_id: str) -> Response:
        with self._lock:
            node = self._store.node(node_id)
            if node is None:
                return Response.text(404, "Id not found")
            return Response.json(self._store.node_json(node))

    def _set_tags(self, item: str, body: bytes, *, node: bool) -> Response:
        """app_node.go NodeSetTags / app_device.go DeviceSetTags: decode (422), validate
        (400), look up (404), apply; the answer is the tags as they now are."""
        change, tags = tags_change(parse_json(body))
        with self._lock:
            target = self._store.node(item) if node else self._store.device(item)
            if target is None:
                return Response.text(404, "Id not found")
            target.tags = applied_tags(target.tags, change, tags)
            return Response.json(dict(target.tags))

    def _volume_list(self) -> Response:
        with self._lock:
            return Response.json({"volumes": sorted(v.id for v in self._store.visible_volumes())})

    def _volume_get(self, volume_id: str) -> Response:
        with self._lock:
            volume = self._any_volume(volume_id)
            if volume.state != "online":  # Heketi hides volumes being created or deleted
                raise RequestError(404, "Id not found")
            return Response.json(self._store.volume_json(volume))

    def _any_volume(self, volume_id: str) -> VolumeRecord:
        """Any volume record, also one with a pending operation (as Heketi's
        expand and delete handlers look volumes up)."""
        volume = self._store.volumes.get(volume_id)
        if volume is None:
            raise RequestError(404, "Id not found")
        return volume

    # -- operations ---------------------------------------------------------------

    def _volume_create(self, body: bytes, fault: Fault | None) -> Response:
        payload = parse_json(body)
        with self._lock:
            spec = self._store.validate_create(payload)
            self._ops.check_capacity()
            try:
                volume = self._store.allocate_volume(spec)
            except RequestError as exc:
                raise RequestError(exc.status, _CREATE_FAILED + exc.message) from None
            bricks = list(volume.bricks)

            def commit() -> QueueEntry:
                volume.state, volume.busy = "online", False
                return QueueEntry(True, 303, f"/volumes/{volume.id}")

            return self._ops.accept(
                fault,
                Operation(
                    "volume_create",
                    execute=lambda: self.bricks.create(volume, bricks),
                    commit=commit,
                    rollback=lambda: self._store.drop_volume(volume),
                    volume=volume,
                ),
            )

    def _volume_expand(self, volume_id: str, body: bytes, fault: Fault | None) -> Response:
        size = _expand_size(parse_json(body))
        with self._lock:
            volume = self._claim(volume_id, _EXPAND_FAILED)
            try:
                bricks = self._store.allocate_expand(volume, size)
            except RequestError as exc:
                volume.busy = False
                raise RequestError(exc.status, _EXPAND_FAILED + exc.message) from None

            def commit() -> QueueEntry:
                volume.bricks.extend(bricks)
                volume.size += size
                volume.busy = False
                return QueueEntry(True, 303, f"/volumes/{volume.id}")

            def rollback() -> None:
                self._store.release_bricks(bricks)
                volume.busy = False

            return self._ops.accept(
                fault,
                Operation(
                    "volume_expand",
                    execute=lambda: self.bricks.expand(volume, bricks),
                    commit=commit,
                    rollback=rollback,
                    volume=volume,
                ),
            )

    def _volume_delete(self, volume_id: str, fault: Fault | None) -> Response:
        with self._lock:
            volume = self._claim(volume_id, _DELETE_FAILED)
            volume.state = "deleting"  # hidden from reads, like Heketi's pending volumes

            def commit() -> QueueEntry:
                self._store.drop_volume(volume)
                return QueueEntry(True, 204)

            def rollback() -> None:
                volume.state, volume.busy = "online", False

            return self._ops.accept(
                fault,
                Operation(
                    "volume_delete",
                    execute=lambda: self.bricks.delete(volume),
                    commit=commit,
                    rollback=rollback,
                    volume=volume,
                ),
            )

    def _volume_clone(self, source_id: str, body: bytes, fault: Fault | None) -> Response:
        """app_volume.go VolumeClone → VolumeCloneOperation (see `clone`)."""
        name = clone.clone_name(parse_json(body))
        with self._lock:
            source = self._any_volume(source_id)
            if source.state != "online":
                raise RequestError(500, clone.PANIC_MESSAGE)
            self._ops.check_capacity()
            if source.busy:  # an expand runs: refused as `_claim` refuses it
                raise RequestError(500, f"Failed clone volume {source_id}: {_CONFLICT}")
            copy = clone.clone_record(self._store, source, name)
            clash = clone.name_clash(self._store, copy)
            if clash is None:
                self._store.add_volume(copy)
                clone.add_bricks_to_devices(self._store, copy.bricks)
            source.state, source.busy = "cloning", True  # RecordCloneVolume: pending

            def commit() -> QueueEntry:
                source.state, source.busy = "online", False
                copy.state, copy.busy = "online", False
                return QueueEntry(True, 303, f"/volumes/{copy.id}")

            def rollback() -> None:
                source.state, source.busy = "online", False
                self._store.drop_volume(copy)

            op = Operation(
                "volume_clone",
                execute=lambda: self.bricks.clone(source, copy),
                commit=commit,
                rollback=rollback,
                volume=copy,
                fail_message=clash,
            )
            return self._ops.accept(fault, op)

    def _claim(self, volume_id: str, failed: str) -> VolumeRecord:
        """The volume for a new operation, in Heketi's order: 404 unknown, 429 server
        full, then the Build step's 500 conflict when an operation on it is pending.

        Heketi's delete refuses a volume or brick with a pending operation exactly
        so. Its expand checks nothing and would start a second operation; this
        server refuses that the same way instead of modelling concurrent brick
        changes of one volume.
        """
        volume = self._any_volume(volume_id)
        self._ops.check_capacity()
        if volume.busy:
            raise RequestError(500, failed + _CONFLICT)
        volume.busy = True
        return volume


class GlusterBricks:
    """An operation's work on the local glusterd in `gluster` mode; nothing in `memory` mode."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled

    def create(self, volume: VolumeRecord, bricks: list[Brick]) -> None:
        if self.enabled:
            gluster.create_volume(
                name=volume.name,
                durability=volume.durability,
                arbiter=placement_of(volume.options).arbiter,
                bricks=_specs(bricks),
                gid=volume.gid,
                options=volume.options,
            )

    def expand(self, volume: VolumeRecord, bricks: list[Brick]) -> None:
        if self.enabled:
            gluster.add_brick_set(
                name=volume.name,
                durability=volume.durability,
                arbiter=placement_of(volume.options).arbiter,
                bricks=_specs(bricks),
                gid=volume.gid,
            )

    def clone(self, source: VolumeRecord, copy: VolumeRecord) -> None:
        if self.enabled:
            clone.gluster_clone(source=source, clone=copy, bricks=_specs(copy.bricks))

    def delete(self, volume: VolumeRecord) -> None:
        if self.enabled:
            gluster.delete_volume(name=volume.name, bricks=_specs(volume.bricks))


def _specs(bricks: list[Brick]) -> list[gluster.BrickSpec]:
    host = socket.gethostname()
    return [gluster.BrickSpec(host, b.path) for b in bricks]


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body.decode())
    except (UnicodeDecodeError, ValueError):
        raise RequestError(422, "request unable to be parsed") from None


def _expand_size(payload: Any) -> int:
    """app_volume.go VolumeExpand: the body's `expand_size` (422 undecodable, 400 below 1)."""
    size = payload.get("expand_size", 0) if isinstance(payload, dict) else None
    if not isinstance(size, int) or isinstance(size, bool):
        raise RequestError(422, "request unable to be parsed")
    if size < 1:
        problem = "cannot be blank" if size == 0 else "must be no less than 1"
        raise RequestError(400, f"validation failed: expand_size: {problem}.")
    return size
