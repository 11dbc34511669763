"""A Heketi server for tests, demos and benchmarks, faithful to Heketi v10.4.1's REST contract.

Only routes of v10.4.1's route table (`heketi_routes`), answered by its router's
rules (unknown path: 404 `Invalid path or request`; wrong method: 405); of them it
serves the ones in `docs/heketi.md` and answers the rest 501 (a limit of this
server, never a route real Heketi lacks). Same status codes, headers and
plain-text messages as Heketi:
JWT checks (middleware/jwt.go wording), the `user` role limited to exactly
`/volumes`, async operations (202 + `Location: /queue/ID`, the entry removed
on first read once done), name uniqueness, capacity accounting with "No space",
durability validation and `max_inflight_operations` (429).

Modes: `memory` (bookkeeping only) and `gluster` (real volumes on the local
glusterd, directory bricks under `bricks_dir`).

Test controls: `set_latency`, `fail_next`, `drop_next`, `pause`/`resume`
(outage: connections refused), `restart` (queue lost, volumes kept; operations
that were running stay pending, name taken, until the stale-operation cleaner
runs: `clean_stale_operations`), `set_node_state`/`set_device_state`, and a
request log.

    python -m testbed.heketi --listen 127.0.0.1:8080 --admin-key KEY
"""

import argparse
import contextlib
import json
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

from provisioner.heketi.placement import placement_of
from provisioner.log import get_logger
from testbed.heketi import clone as heketi_clone
from testbed.heketi import gluster as heketi_gluster
from testbed.heketi import routes as heketi_routes
from testbed.heketi.auth import check_request
from testbed.heketi.store import (
    DEFAULT_DEVICE_GIB,
    KIB_PER_GIB,
    Brick,
    RequestError,
    Store,
    VolumeRecord,
    applied_tags,
    new_id,
    tags_change,
)

_log = get_logger("heketi-test-server")

Mode = Literal["memory", "gluster"]
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
_ASYNC_KINDS = frozenset({"volume_create", "volume_expand", "volume_delete", "volume_clone"})
#: Heketi's ErrConflict: the volume (or a brick of it) has a pending operation.
_CONFLICT = "The target exists, contains other items, or is in use."
#: Heketi's prefixes (app_volume.go) for errors of an operation's synchronous Build step.
_CREATE_FAILED = "Failed to allocate new volume: "
_EXPAND_FAILED = "Failed to allocate volume expansion: "
_DELETE_FAILED = "Failed to set up volume delete: "
_BUSY = "Server busy. Retry operation later."
_MAX_BODY = 1 << 20
#: app.go initBackgroundCleaner: StartTimeBackgroundCleaner defaults to 60 s.
STALE_CLEANUP_SECONDS = 60.0


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it. `status` 0 = connection dropped."""

    method: str
    path: str
    status: int
    duration: float
    time: float


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False

    @classmethod
    def text(cls, status: int, message: str) -> "Response":
        """Go's http.Error: plain text ending in a newline."""
        return cls(
            status,
            (message + "\n").encode(),
            {"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"},
        )

    @classmethod
    def json(cls, payload: Any) -> "Response":
        return cls(
            200,
            (json.dumps(payload) + "\n").encode(),
            {"Content-Type": "application/json; charset=UTF-8"},
        )

    @classmethod
    def redirect(cls, status: int, location: str, reason: str) -> "Response":
        body = f'<a href="{location}">{reason}</a>.\n\n'.encode()
        return cls(status, body, {"Location": location, "Content-Type": "text/html; charset=utf-8"})


@dataclass
class _Fault:
    kind: str
    remaining: int
    status: int = 500
    message: str = ""
    in_queue: bool = False
    drop: bool = False
    after_commit: bool = False


@dataclass
class _QueueEntry:
    done: bool = False
    status: int = 0  # 303, 204 or 500 once done
    location: str = ""
    message: str = ""


@dataclass
class _Operation:
    """An accepted async operation: runs in the background, then commits or rolls back."""

    kind: str
    queue_id: str
    generation: int
    execute: Callable[[], None]  # outside the lock (gluster CLI)
    commit: Callable[[], _QueueEntry]  # under the lock
    rollback: Callable[[], None]  # under the lock
    volume: VolumeRecord
    fail_message: str | None = None
    worker: threading.Thread | None = None
    #: Set when the server stops or restarts: the operation stops where it is.
    interrupted: threading.Event = field(default_factory=threading.Event)


class HeketiTestServer:
    """Threaded HTTP server speaking Heketi's REST API. Also a context manager."""

    def __init__(
        self,
        *,
        admin_key: str | None = "admin-secret",
        user_key: str | None = None,
        auth: bool = True,
        mode: Mode = "memory",
        bricks_dir: str | None = None,
        latency_ms: int = 0,
        max_inflight: int = 8,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
        nodes: int = 3,
        device_gib: int = DEFAULT_DEVICE_GIB,
        clock_offset: float = 0.0,
        stale_cleanup_seconds: float = STALE_CLEANUP_SECONDS,
        topology: dict[str, Any] | None = None,
    ) -> None:
        """`nodes`/`device_gib`: memory-mode topology (one cluster); `topology`: instead,
        a heketi-cli topology file's content (zones, tags; every device `device_gib`
        GiB). `clock_offset`:
        seconds added to the server's clock for token checks (simulates clock skew).
        `stale_cleanup_seconds`: how long after a `restart` the background cleaner
        cleans the operations the restart left pending (see `restart`)."""
        if mode == "gluster" and not bricks_dir:
            raise ValueError("gluster mode needs bricks_dir (a directory for the bricks)")
        if max_inflight < 1:
            raise ValueError("max_inflight must be at least 1")
        if auth and not admin_key:
            raise ValueError("auth needs an admin_key (or pass auth=False)")
        self._admin_key, self._user_key, self._auth = admin_key, user_key, auth
        self._mode: Mode = mode
        self._bricks_dir = os.path.abspath(bricks_dir) if bricks_dir else None
        self._latency = latency_ms / 1000
        self._max_inflight = max_inflight
        self._host, self._port, self._tls = host, port, tls
        self._lock = threading.RLock()
        self._store = self._initial_store(nodes, device_gib, topology)
        self._queue: dict[str, _QueueEntry] = {}
        self._faults: list[_Fault] = []
        self._log: list[RequestRecord] = []
        self._inflight = 0
        self._peak_inflight = 0
        self._clock_offset = clock_offset
        self._generation = 0
        self._running: dict[str, _Operation] = {}
        self._stale: list[_Operation] = []
        self._stale_cleanup = stale_cleanup_seconds
        self._cleaner: threading.Timer | None = None
        self._workers: set[threading.Thread] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self.url = ""

    def _initial_store(self, nodes: int, device_gib: int, topology: dict[str, Any] | None) -> Store:
        if topology is not None:
            if self._mode == "gluster":
                raise ValueError("a topology is for the memory mode (gluster mode: this host)")
            store = Store()
            store.load_topology(topology, device_gib=device_gib)
            return store
        if self._mode == "gluster":
            assert self._bricks_dir is not None
            os.makedirs(self._bricks_dir, exist_ok=True)
            stat = os.statvfs(self._bricks_dir)
            store = Store(distinct_nodes=False, brick_root=self._bricks_dir)
            gib = max(1, stat.f_blocks * stat.f_frsize // (KIB_PER_GIB * 1024))
            store.add_cluster(nodes=[(socket.gethostname(), "127.0.0.1", gib)])
            return store
        store = Store()
        store.add_cluster(
            nodes=[
                (f"heketi-node-{i}.test", f"127.0.0.{i}", device_gib) for i in range(1, nodes + 1)
            ]
        )
        return store

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> str:
        """Listen and serve in a background thread; returns the base URL."""
        self._stopping.clear()
        self._listen()
        return self.url

    def stop(self) -> None:
        """Stop serving and wait for running operations to end."""
        self._stopping.set()
        with self._lock:
            for op in self._running.values():
                op.interrupted.set()
        self._close_listener()
        if self._cleaner is not None:
            self._cleaner.cancel()
        for worker in list(self._workers):
            worker.join(timeout=heketi_gluster.COMMAND_TIMEOUT_SECONDS)

    def __enter__(self) -> "HeketiTestServer":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _listen(self) -> None:
        httpd = _HTTPServer((self._host, self._port), self)
        if self._tls is not None:
            httpd.socket = self._tls.wrap_socket(
                httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        self._port = httpd.server_address[1]
        scheme = "https" if self._tls is not None else "http"
        host = f"[{self._host}]" if ":" in self._host else self._host
        self.url = f"{scheme}://{host}:{self._port}"
        self._httpd = httpd
        self._serve_thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="heketi-test-server",
            daemon=True,
        )
        self._serve_thread.start()

    def _close_listener(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()

    # -- test controls ---------------------------------------------------------------

    def set_admin_key(self, key: str) -> None:
        """Key rotation: Heketi restarted with a new `jwt.admin.key` (volumes kept)."""
        self._admin_key = key

    def set_latency(self, ms: int) -> None:
        """How long each async operation runs before it completes."""
        self._latency = ms / 1000

    def fail_next(
        self,
        op: str,
        *,
        count: int = 1,
        status: int = 500,
        message: str = "Injected failure",
        in_queue: bool = False,
    ) -> None:
        """Answer the next `count` requests of kind `op` with `status` and `message`.

        With `in_queue` (create/expand/delete only) the operation is accepted
        (202) and fails while running: the queue answers 500 with `message`.
        """
        self._add_fault(_Fault(op, count, status=status, message=message, in_queue=in_queue))

    def drop_next(self, op: str, *, count: int = 1, after_commit: bool = False) -> None:
        """Close the connection of the next `count` requests of kind `op` without answering.

        `after_commit`: the request takes effect first (a create is accepted and
        runs to completion; a queue read consumes the entry), only the answer is lost.
        """
        self._add_fault(_Fault(op, count, drop=True, after_commit=after_commit))

    def _add_fault(self, fault: _Fault) -> None:
        if fault.kind not in OP_KINDS:
            raise ValueError(
                f"unknown operation kind {fault.kind!r}; use one of {sorted(OP_KINDS)}"
            )
        with self._lock:
            self._faults.append(fault)

    def pause(self) -> None:
        """Outage: stop listening (connections refused) and cut open connections."""
        with self._lock:
            self._close_listener()

    def resume(self) -> None:
        """End an outage: listen again on the same address."""
        with self._lock:
            if self._httpd is None:
                self._listen()

    def restart(self) -> None:
        """Like a real Heketi restart: connections cut, queue entries lost (in memory
        only: rest/asynchttp.go), the operation limit's count back at zero (a new
        OpTracker), volumes kept. An operation that was running stops where it was and
        stays pending in the DB: main.go `setupApp` → `App.ServerReset` marks it stale,
        so its volume stays hidden and its name taken until the background cleaner
        (app.go `initBackgroundCleaner`: first run 60 s after start, then hourly) cleans
        it (operations_cleanup.go): a create or expand rolls back, a delete completes."""
        with self._lock:
            self._close_listener()
            self._queue.clear()
            self._generation += 1
            for op in self._running.values():
                op.interrupted.set()
            self._stale.extend(self._running.values())
            self._running.clear()
            self._inflight = 0
            self._listen()
            if self._cleaner is not None:
                self._cleaner.cancel()
            self._cleaner = threading.Timer(self._stale_cleanup, self.clean_stale_operations)
            self._cleaner.daemon = True
            self._cleaner.start()

    def _holds(self, volume: VolumeRecord) -> bool:
        """Whether `volume` is this server's (a clone refused for its name never was)."""
        with self._lock:
            return self._store.volumes.get(volume.id) is volume

    def stale_operations(self) -> int:
        """Operations a restart left pending and the cleaner has not cleaned yet."""
        with self._lock:
            return len(self._stale)

    def clean_stale_operations(self) -> None:
        """Run the background cleaner now (as `heketi-cli server operations cleanup`)."""
        with self._lock:
            stale, self._stale = self._stale, []
        for op in stale:
            if op.worker is not None:  # the abandoned thread is this server's, not Heketi's
                op.worker.join(timeout=heketi_gluster.COMMAND_TIMEOUT_SECONDS)
            if self._mode == "gluster" and op.kind != "volume_expand" and self._holds(op.volume):
                with contextlib.suppress(Exception):
                    self._gluster_delete(op.volume)
            with self._lock:
                if op.kind == "volume_delete":
                    op.commit()
                else:
                    op.rollback()

    def seed_volumes(self, names: list[str], *, size_gib: int = 1) -> list[str]:
        """Complete replica-3 volumes made at once, with the bookkeeping of a create
        (benchmarks fill thousands without thousands of async operations); their ids."""
        body = {"size": size_gib, "durability": {"type": "replicate", "replicate": {"replica": 3}}}
        made = []
        with self._lock:
            for name in names:
                volume = self._store.allocate_volume(
                    self._store.validate_create({**body, "name": name})
                )
                volume.state, volume.busy = "online", False
                made.append(volume.id)
        return made

    def set_node_state(self, node_id: str, state: str) -> None:
        """A node's state as `POST /nodes/{id}/state` would leave it (online/offline/failed)."""
        with self._lock:
            node = self._store.node(node_id)
            if node is None:
                raise ValueError(f"no node {node_id}")
            node.state = state

    def set_device_state(self, device_id: str, state: str) -> None:
        """A device's state as `POST /devices/{id}/state` would leave it."""
        with self._lock:
            device = self._store.device(device_id)
            if device is None:
                raise ValueError(f"no device {device_id}")
            device.state = state

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def count_status(self, status: int) -> int:
        with self._lock:
            return sum(1 for r in self._log if r.status == status)

    def volumes(self) -> list[dict[str, Any]]:
        """Current complete volumes as Heketi JSON."""
        with self._lock:
            return [self._store.volume_json(v) for v in self._store.visible_volumes()]

    def inflight(self) -> int:
        """Operations running now."""
        with self._lock:
            return self._inflight

    def peak_inflight(self) -> int:
        """Most operations that ever ran at the same time."""
        with self._lock:
            return self._peak_inflight

    # -- request handling (called from handler threads) -----------------------------

    def record(self, record: RequestRecord) -> None:
        with self._lock:
            self._log.append(record)

    def handle(self, method: str, path: str, authorization: str | None, body: bytes) -> Response:
        public = heketi_routes.public_route(method, path)  # main.go: served before the JWT check
        if public is not None and public.name == "Hello":
            return Response(
                200, b"Hello from Heketi", {"Content-Type": "text/plain; charset=UTF-8"}
            )
        if public is not None:
            return Response.text(501, f"the Heketi test server does not serve {public.name}")
        if self._auth:
            failure = check_request(
                authorization,
                method=method,
                path=path,
                admin_key=self._admin_key,
                user_key=self._user_key,
                now=time.time() + self._clock_offset,
            )
            if failure is not None:
                return Response.text(failure.status, failure.message)
        route = self._route(method, path)
        if isinstance(route, Response):
            return route
        kind, handler = route
        fault = self._take_fault(kind)
        if fault is not None and not (fault.drop and fault.after_commit):
            if fault.drop:
                return Response(0, drop=True)
            if not (fault.in_queue and kind in _ASYNC_KINDS):
                return Response.text(fault.status, fault.message)
        response = self._call(handler, body, fault)
        if fault is not None and fault.drop:
            response.drop = True
        return response

    def _call(
        self, handler: Callable[[bytes, _Fault | None], Response], body: bytes, fault: _Fault | None
    ) -> Response:
        try:
            return handler(body, fault)
        except RequestError as exc:
            return Response.text(exc.status, exc.message)

    def _take_fault(self, kind: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind in (kind, "any"):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _route(
        self, method: str, path: str
    ) -> Response | tuple[str, Callable[[bytes, _Fault | None], Response]]:
        """Heketi v10.4.1's router (`heketi_routes`): only its routes, its 301/405/404."""
        found = heketi_routes.match(method, path)
        if found.outcome == "redirect":
            return Response.redirect(301, found.location, "Moved Permanently")
        if found.outcome == "method_not_allowed":
            return Response(405)
        if found.route is None:
            return Response.text(404, heketi_routes.NOT_FOUND_MESSAGE)
        parts = path.strip("/").split("/")
        handler = self._handlers(parts[1] if len(parts) > 1 else "").get(found.route.name)
        if handler is None:
            return Response.text(501, f"the Heketi test server does not serve {found.route.name}")
        return handler

    def served_routes(self) -> frozenset[str]:
        """The routes of the table this server serves (app.go route names)."""
        return frozenset(self._handlers(""))

    def _handlers(
        self, item: str
    ) -> dict[str, tuple[str, Callable[[bytes, _Fault | None], Response]]]:
        """The served subset of the route table, by app.go route name; `item` is the
        id in the path."""
        handlers: dict[str, tuple[str, Callable[[bytes, _Fault | None], Response]]] = {
            "Async": ("queue_get", lambda b, f: self._queue_get(item)),
            "ClusterList": ("cluster_list", lambda b, f: self._cluster_list()),
            "ClusterInfo": ("cluster_get", lambda b, f: self._cluster_get(item)),
            "NodeInfo": ("node_get", lambda b, f: self._node_get(item)),
            "VolumeList": ("volume_list", lambda b, f: self._volume_list()),
            "VolumeCreate": ("volume_create", self._volume_create),
            "VolumeInfo": ("volume_get", lambda b, f: self._volume_get(item)),
            "VolumeDelete": ("volume_delete", lambda b, f: self._volume_delete(item, f)),
            "VolumeExpand": ("volume_expand", lambda b, f: self._volume_expand(item, b, f)),
            "VolumeClone": ("volume_clone", lambda b, f: self._volume_clone(item, b, f)),
            "OperationsInfo": ("operations_info", lambda b, f: self._operations_info()),
            "NodeSetTags": ("node_tags", lambda b, f: self._set_tags(item, b, node=True)),
            "DeviceSetTags": ("device_tags", lambda b, f: self._set_tags(item, b, node=False)),
        }
        return handlers

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
        change, tags = tags_change(_parse_json(body))
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
            volume = self._visible(volume_id)
            return Response.json(self._store.volume_json(volume))

    def _visible(self, volume_id: str) -> VolumeRecord:
        """A complete volume: Heketi hides volumes being created or deleted from reads."""
        volume = self._any_volume(volume_id)
        if volume.state != "online":
            raise RequestError(404, "Id not found")
        return volume

    def _any_volume(self, volume_id: str) -> VolumeRecord:
        """Any volume record, also one with a pending operation (as Heketi's
        expand and delete handlers look volumes up)."""
        volume = self._store.volumes.get(volume_id)
        if volume is None:
            raise RequestError(404, "Id not found")
        return volume

    def _operations_info(self) -> Response:
        """Heketi's OperationsInfo (apps/glusterfs/app_operations.go OperationsInfo):
        `total` and the state counts from the pending operations in its database,
        `in_flight` from its operations tracker. Here the running operations are the
        "new" ones, and those a restart left pending are "stale" (`ServerReset`)."""
        with self._lock:
            running, stale = self._inflight, len(self._stale)
        return Response.json(
            {
                "total": running + stale,
                "in_flight": running,
                "stale": stale,
                "failed": 0,
                "new": running,
            }
        )

    def _queue_get(self, queue_id: str) -> Response:
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

    # -- operations -----------------------------------------------------------------

    def _volume_create(self, body: bytes, fault: _Fault | None) -> Response:
        payload = _parse_json(body)
        with self._lock:
            spec = self._store.validate_create(payload)
            self._check_capacity()
            try:
                volume = self._store.allocate_volume(spec)
            except RequestError as exc:
                raise RequestError(exc.status, _CREATE_FAILED + exc.message) from None
            bricks = list(volume.bricks)

            def commit() -> _QueueEntry:
                volume.state, volume.busy = "online", False
                return _QueueEntry(True, 303, f"/volumes/{volume.id}")

            return self._accept(
                fault,
                _Operation(
                    "volume_create",
                    new_id(),
                    self._generation,
                    execute=lambda: self._gluster_create(volume, bricks),
                    commit=commit,
                    rollback=lambda: self._store.drop_volume(volume),
                    volume=volume,
                ),
            )

    def _volume_expand(self, volume_id: str, body: bytes, fault: _Fault | None) -> Response:
        payload = _parse_json(body)
        size = payload.get("expand_size", 0) if isinstance(payload, dict) else None
        if not isinstance(size, int) or isinstance(size, bool):
            raise RequestError(422, "request unable to be parsed")
        if size < 1:
            problem = "cannot be blank" if size == 0 else "must be no less than 1"
            raise RequestError(400, f"validation failed: expand_size: {problem}.")
        with self._lock:
            volume = self._claim(volume_id, _EXPAND_FAILED)
            try:
                bricks = self._store.allocate_expand(volume, size)
            except RequestError as exc:
                volume.busy = False
                raise RequestError(exc.status, _EXPAND_FAILED + exc.message) from None

            def commit() -> _QueueEntry:
                volume.bricks.extend(bricks)
                volume.size += size
                volume.busy = False
                return _QueueEntry(True, 303, f"/volumes/{volume.id}")

            def rollback() -> None:
                self._store.release_bricks(bricks)
                volume.busy = False

            return self._accept(
                fault,
                _Operation(
                    "volume_expand",
                    new_id(),
                    self._generation,
                    execute=lambda: self._gluster_expand(volume, bricks),
                    commit=commit,
                    rollback=rollback,
                    volume=volume,
                ),
            )

    def _volume_delete(self, volume_id: str, fault: _Fault | None) -> Response:
        with self._lock:
            volume = self._claim(volume_id, _DELETE_FAILED)
            volume.state = "deleting"  # hidden from reads, like Heketi's pending volumes

            def commit() -> _QueueEntry:
                self._store.drop_volume(volume)
                return _QueueEntry(True, 204)

            def rollback() -> None:
                volume.state, volume.busy = "online", False

            return self._accept(
                fault,
                _Operation(
                    "volume_delete",
                    new_id(),
                    self._generation,
                    execute=lambda: self._gluster_delete(volume),
                    commit=commit,
                    rollback=rollback,
                    volume=volume,
                ),
            )

    def _volume_clone(self, source_id: str, body: bytes, fault: _Fault | None) -> Response:
        """app_volume.go VolumeClone → VolumeCloneOperation (see `heketi_clone`)."""
        name = heketi_clone.clone_name(_parse_json(body))
        with self._lock:
            source = self._any_volume(source_id)
            if source.state != "online":
                raise RequestError(500, heketi_clone.PANIC_MESSAGE)
            self._check_capacity()
            if source.busy:  # an expand runs: refused as `_claim` refuses it
                raise RequestError(500, f"Failed clone volume {source_id}: {_CONFLICT}")
            clone = heketi_clone.clone_record(self._store, source, name)
            clash = heketi_clone.name_clash(self._store, clone)
            if clash is None:
                self._store.add_volume(clone)
                heketi_clone.add_bricks_to_devices(self._store, clone.bricks)
            source.state, source.busy = "cloning", True  # RecordCloneVolume: pending

            def commit() -> _QueueEntry:
                source.state, source.busy = "online", False
                clone.state, clone.busy = "online", False
                return _QueueEntry(True, 303, f"/volumes/{clone.id}")

            def rollback() -> None:
                source.state, source.busy = "online", False
                self._store.drop_volume(clone)

            op = _Operation(
                "volume_clone",
                new_id(),
                self._generation,
                execute=lambda: self._gluster_clone(source, clone),
                commit=commit,
                rollback=rollback,
                volume=clone,
                fail_message=clash,
            )
            return self._accept(fault, op)

    def _claim(self, volume_id: str, failed: str) -> VolumeRecord:
        """The volume for a new operation, in Heketi's order: 404 unknown, 429 server
        full, then the Build step's 500 conflict when an operation on it is pending.

        Heketi's delete refuses a volume or brick with a pending operation exactly
        so. Its expand checks nothing and would start a second operation; this
        server refuses that the same way instead of modelling concurrent brick
        changes of one volume.
        """
        volume = self._any_volume(volume_id)
        self._check_capacity()
        if volume.busy:
            raise RequestError(500, failed + _CONFLICT)
        volume.busy = True
        return volume

    def _check_capacity(self) -> None:
        if self._inflight >= self._max_inflight:
            raise RequestError(429, _BUSY)

    def _accept(self, fault: _Fault | None, op: _Operation) -> Response:
        if fault is not None and fault.in_queue:
            op.fail_message = fault.message
        self._inflight += 1
        self._peak_inflight = max(self._peak_inflight, self._inflight)
        self._queue[op.queue_id] = _QueueEntry()
        self._running[op.queue_id] = op
        worker = threading.Thread(
            target=self._run, args=(op,), daemon=True, name=f"heketi-op-{op.queue_id[:8]}"
        )
        op.worker = worker
        self._workers.add(worker)
        worker.start()
        return Response(202, headers={"Location": f"/queue/{op.queue_id}"})

    def _run(self, op: _Operation) -> None:
        """Run one accepted operation; it commits only if `execute` returned normally."""
        error: str | None = "operation did not run to its end"
        try:
            if self._latency and op.interrupted.wait(self._latency):
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

    def _finish(self, op: _Operation, error: str | None) -> None:
        with self._lock:
            self._workers.discard(threading.current_thread())
            if op.generation != self._generation:
                return  # abandoned by a restart: pending until the cleaner runs
            del self._running[op.queue_id]
            if error is None:
                entry = op.commit()
            else:
                op.rollback()
                entry = _QueueEntry(True, 500, message=error)
            self._inflight -= 1
            if op.queue_id in self._queue:
                self._queue[op.queue_id] = entry

    # -- gluster mode ---------------------------------------------------------------

    def _brick_specs(self, bricks: list[Brick]) -> list[heketi_gluster.BrickSpec]:
        host = socket.gethostname()
        return [heketi_gluster.BrickSpec(host, b.path) for b in bricks]

    def _gluster_create(self, volume: VolumeRecord, bricks: list[Brick]) -> None:
        if self._mode == "gluster":
            heketi_gluster.create_volume(
                name=volume.name,
                durability=volume.durability,
                arbiter=placement_of(volume.options).arbiter,
                bricks=self._brick_specs(bricks),
                gid=volume.gid,
                options=volume.options,
            )

    def _gluster_expand(self, volume: VolumeRecord, bricks: list[Brick]) -> None:
        if self._mode == "gluster":
            heketi_gluster.add_brick_set(
                name=volume.name,
                durability=volume.durability,
                arbiter=placement_of(volume.options).arbiter,
                bricks=self._brick_specs(bricks),
                gid=volume.gid,
            )

    def _gluster_clone(self, source: VolumeRecord, clone: VolumeRecord) -> None:
        if self._mode == "gluster":
            bricks = self._brick_specs(clone.bricks)
            heketi_clone.gluster_clone(source=source, clone=clone, bricks=bricks)

    def _gluster_delete(self, volume: VolumeRecord) -> None:
        if self._mode == "gluster":
            heketi_gluster.delete_volume(name=volume.name, bricks=self._brick_specs(volume.bricks))


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body.decode())
    except (UnicodeDecodeError, ValueError):
        raise RequestError(422, "request unable to be parsed") from None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: HeketiTestServer) -> None:
        self.app = app
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("heketi_test_server_connection_error", client=str(client_address))

    def close_connections(self) -> None:
        with self.connections_lock:
            for sock in list(self.connections):
                _abort(sock)
            self.connections.clear()


def _abort(sock: socket.socket) -> None:
    """Reset the connection (RST, no answer), as a crashed or cut-off server would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "heketi-test-server"
    timeout = 30  # idle keep-alive connections are closed after this
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle plus the
        # client's delayed ACK add ~40 ms to every answer.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def handle(self) -> None:
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError):
                return  # a client that does not trust us, or a port scan
        try:
            super().handle()
        except (ConnectionError, TimeoutError, ssl.SSLError):
            return  # the client went away; nothing to answer

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the stdlib's per-request stderr lines; the request log records them."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def _serve(self) -> None:
        started, wall = time.monotonic(), time.time()
        path = urlsplit(self.path).path or "/"
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self._write(Response.text(413, "request body too large"))
            return
        body = self.rfile.read(length) if length else b""
        response = self.server.app.handle(
            self.command, path, self.headers.get("Authorization"), body
        )
        if response.drop:
            self._record(started, wall, path, 0)
            self.close_connection = True
            _abort(self.connection)
            return
        # Recorded before the answer goes out, so a test that got its answer sees the record.
        self._record(started, wall, path, response.status)
        self._write(response)

    def _record(self, started: float, wall: float, path: str, status: int) -> None:
        duration = time.monotonic() - started
        self.server.app.record(RequestRecord(self.command, path, status, duration, wall))

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.body and self.command != "HEAD":
            self.wfile.write(response.body)


# -- command line -----------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m testbed.heketi",
        description="Heketi v10 REST API for tests and demos (memory or real local Gluster).",
    )
    parser.add_argument(
        "--listen", default="127.0.0.1:8080", help="HOST:PORT (default %(default)s)"
    )
    parser.add_argument(
        "--admin-key",
        default=os.environ.get("HEKETI_ADMIN_KEY"),
        help="admin JWT secret (env HEKETI_ADMIN_KEY)",
    )
    parser.add_argument("--admin-key-file", help="read the admin secret from this file")
    parser.add_argument(
        "--user-key",
        default=os.environ.get("HEKETI_USER_KEY"),
        help="user JWT secret (env HEKETI_USER_KEY)",
    )
    parser.add_argument("--no-auth", action="store_true", help="accept requests without JWT")
    parser.add_argument("--mode", choices=["memory", "gluster"], default="memory")
    parser.add_argument("--bricks-dir", help="gluster mode: directory for brick directories")
    parser.add_argument("--latency-ms", type=int, default=0, help="duration of each operation")
    parser.add_argument(
        "--max-inflight",
        type=int,
        default=8,
        help="Heketi's max_inflight_operations (default %(default)s)",
    )
    parser.add_argument(
        "--seed-volumes",
        type=int,
        default=0,
        metavar="N",
        help="start with N complete 1 GiB volumes named seed-00000... (benchmarks)",
    )
    parser.add_argument(
        "--topology",
        help="memory mode: a heketi-cli topology load file (zones, node and device tags)",
    )
    parser.add_argument(
        "--device-gib",
        type=int,
        default=DEFAULT_DEVICE_GIB,
        help="memory mode: size of every device (default %(default)s)",
    )
    parser.add_argument("--tls-cert", help="serve https with this PEM certificate")
    parser.add_argument("--tls-key", help="private key of --tls-cert")
    return parser.parse_args(argv)


def _server_from_args(args: argparse.Namespace) -> HeketiTestServer:
    host, sep, port = args.listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--listen must be HOST:PORT, got {args.listen!r}")
    admin_key = args.admin_key
    if args.admin_key_file:
        with open(args.admin_key_file, encoding="utf-8") as handle:
            admin_key = handle.read().strip()
    if not args.no_auth and not admin_key:
        raise ValueError("give --admin-key, --admin-key-file or HEKETI_ADMIN_KEY, or --no-auth")
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    return HeketiTestServer(
        admin_key=admin_key,
        user_key=args.user_key,
        auth=not args.no_auth,
        mode=args.mode,
        bricks_dir=args.bricks_dir,
        latency_ms=args.latency_ms,
        max_inflight=args.max_inflight,
        host=host.strip("[]"),
        port=int(port),
        tls=tls,
        device_gib=args.device_gib,
        topology=_read_topology(args.topology) if args.topology else None,
    )


def _read_topology(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        topology = json.load(handle)
    if not isinstance(topology, dict) or not isinstance(topology.get("clusters"), list):
        raise ValueError(f'{path}: a topology file holds {{"clusters": [...]}}')
    return topology


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        server = _server_from_args(args)
        server.seed_volumes([f"seed-{i:05d}" for i in range(args.seed_volumes)])
        url = server.start()
    except (ValueError, OSError, ssl.SSLError, KeyError, TypeError) as exc:
        print(f"testbed.heketi: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    print(url, flush=True)
    while not done.wait(1.0):
        pass
    server.stop()
    return 0

