"""A Heketi server for tests, demos and benchmarks, faithful to Heketi v10.4.1's REST contract.

Only routes of v10.4.1's route table (`routes`), answered by its router's
rules (unknown path: 404 `Invalid path or request`; wrong method: 405); of them it
serves the ones in `docs/heketi.md` and answers the rest 501 (a limit of this
server, never a route real Heketi lacks). Same status codes, headers and
plain-text messages as Heketi:
JWT checks (middleware/jwt.go wording, `auth`), the `user` role limited to exactly
`/volumes`, async operations (202 + `Location: /queue/ID`, the entry removed
on first read once done: `operations`), name uniqueness, capacity accounting with
"No space", durability validation (`store`, `placer`) and `max_inflight_operations`
(429). What each route does is in `handlers`; the HTTP side in `httpd`.

Modes: `memory` (bookkeeping only) and `gluster` (real volumes on the local
glusterd, directory bricks under `bricks_dir`: `gluster`, `clone`).

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
import sys
import threading
import time
from types import TracebackType
from typing import Any, Literal

from testbed.heketi import routes
from testbed.heketi.auth import check_request
from testbed.heketi.bodies import RequestError
from testbed.heketi.handlers import Handler, Handlers
from testbed.heketi.httpd import HTTPServer, RequestRecord, Response
from testbed.heketi.operations import ASYNC_KINDS, Fault, Operations
from testbed.heketi.store import DEFAULT_DEVICE_GIB, KIB_PER_GIB, Store, VolumeRecord

__all__ = ["HeketiTestServer", "RequestRecord", "main"]

Mode = Literal["memory", "gluster"]
#: app.go initBackgroundCleaner: StartTimeBackgroundCleaner defaults to 60 s.
STALE_CLEANUP_SECONDS = 60.0


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
        self._host, self._port, self._tls = host, port, tls
        self._lock = threading.RLock()
        self._store = self._initial_store(nodes, device_gib, topology)
        self._ops = Operations(self._lock, max_inflight=max_inflight, latency=latency_ms / 1000)
        gluster_mode = mode == "gluster"
        self._handlers = Handlers(self._lock, self._store, self._ops, gluster_mode=gluster_mode)
        self._log: list[RequestRecord] = []
        self._clock_offset = clock_offset
        self._stale_cleanup = stale_cleanup_seconds
        self._cleaner: threading.Timer | None = None
        self._stopping = threading.Event()
        self._httpd: HTTPServer | None = None
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
        self._ops.interrupt()
        self._close_listener()
        if self._cleaner is not None:
            self._cleaner.cancel()
        self._ops.join_workers()

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
        httpd = HTTPServer((self._host, self._port), self)
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
        self._ops.latency = ms / 1000

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
        self._ops.add_fault(Fault(op, count, status=status, message=message, in_queue=in_queue))

    def drop_next(self, op: str, *, count: int = 1, after_commit: bool = False) -> None:
        """Close the connection of the next `count` requests of kind `op` without answering.

        `after_commit`: the request takes effect first (a create is accepted and
        runs to completion; a queue read consumes the entry), only the answer is lost.
        """
        self._ops.add_fault(Fault(op, count, drop=True, after_commit=after_commit))

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
            self._ops.restart()
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
        return self._ops.stale_count()

    def clean_stale_operations(self) -> None:
        """Run the background cleaner now (as `heketi-cli server operations cleanup`)."""
        for op in self._ops.take_stale():
            if op.kind != "volume_expand" and self._holds(op.volume):
                with contextlib.suppress(Exception):
                    self._handlers.bricks.delete(op.volume)
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
            return self._ops.inflight

    def peak_inflight(self) -> int:
        """Most operations that ever ran at the same time."""
        with self._lock:
            return self._ops.peak_inflight

    # -- request handling (called from handler threads) -----------------------------

    def record(self, record: RequestRecord) -> None:
        with self._lock:
            self._log.append(record)

    def handle(self, method: str, path: str, authorization: str | None, body: bytes) -> Response:
        public = routes.public_route(method, path)  # main.go: served before the JWT check
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
        fault = self._ops.take_fault(kind)
        if fault is not None and not (fault.drop and fault.after_commit):
            if fault.drop:
                return Response(0, drop=True)
            if not (fault.in_queue and kind in ASYNC_KINDS):
                return Response.text(fault.status, fault.message)
        response = self._call(handler, body, fault)
        if fault is not None and fault.drop:
            response.drop = True
        return response

    def _call(self, handler: Handler, body: bytes, fault: Fault | None) -> Response:
        try:
            return handler(body, fault)
        except RequestError as exc:
            return Response.text(exc.status, exc.message)

    def _route(self, method: str, path: str) -> Response | tuple[str, Handler]:
        """Heketi v10.4.1's router (`routes`): only its routes, its 301/405/404."""
        found = routes.match(method, path)
        if found.outcome == "redirect":
            return Response.redirect(301, found.location, "Moved Permanently")
        if found.outcome == "method_not_allowed":
            return Response(405)
        if found.route is None:
            return Response.text(404, routes.NOT_FOUND_MESSAGE)
        parts = path.strip("/").split("/")
        handler = self._handlers.table(parts[1] if len(parts) > 1 else "").get(found.route.name)
        if handler is None:
            return Response.text(501, f"the Heketi test server does not serve {found.route.name}")
        return handler

    def served_routes(self) -> frozenset[str]:
        """The routes of the table this server serves (app.go route names)."""
        return frozenset(self._handlers.table(""))


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
