"""A Kubernetes API server for tests, `make demo` and `make bench`.

It speaks the kube-apiserver's HTTP contract for the resources a storage
provisioner touches, so the real `kubernetes` client and `kubectl --server`
talk to it unchanged. Start it in a thread::

    with KubeTestServer(binder=True) as kube:
        core = kubernetes.client.CoreV1Api(kube.api_client())

or as a process: `python -m testbed.kube --listen 127.0.0.1:8001`.
The modules under `testbed.kube` hold the parts.
"""

from __future__ import annotations

import argparse
import builtins
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Iterable, Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from testbed.kube import events, resources
from testbed.kube.binder import BinderError, PVBinder
from testbed.kube.control import RequestLog, RequestRecord
from testbed.kube.errors import ApiError
from testbed.kube.handler import Handler, ServerState
from testbed.kube.resources import ResourceType
from testbed.kube.schema import drop_unknown_fields
from testbed.kube.store import Store

if TYPE_CHECKING:
    import kubernetes.client

JSON = dict[str, Any]

__all__ = ["ApiError", "BinderError", "KubeTestServer", "RequestRecord", "main"]

#: Events kept for watches that resume from a resourceVersion; older ones get 410.
DEFAULT_HISTORY = 10_000
#: Seconds between BOOKMARK events on watches that allow them (the apiserver: ~1 min;
#: short here so tests see them without waiting).
DEFAULT_BOOKMARK_INTERVAL = 1.0
#: Requests a long-running server process keeps in its log (in-process servers keep all,
#: so tests and benchmarks can use positions in `requests` as marks).
CLI_REQUEST_LOG_LIMIT = 100_000
#: Listen backlog: benchmarks open many pooled connections at once.
_BACKLOG = 128


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = _BACKLOG
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (reset, broken pipe) is routine, as for the apiserver:
        no traceback on stderr. Anything else is reported as socketserver does."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class KubeTestServer:
    """The server, its store and its test controls; also a context manager."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        history: int = DEFAULT_HISTORY,
        binder: bool = False,
        pv_protection: bool = False,
        bookmark_interval: float = DEFAULT_BOOKMARK_INTERVAL,
        request_log_limit: int | None = None,
    ) -> None:
        self._host, self._port = host, port
        self._store = Store(history=history, pv_protection=pv_protection)
        self._state = ServerState(
            store=self._store,
            bookmark_interval=bookmark_interval,
            log=RequestLog(request_log_limit),
        )
        # pv_protection: the StorageObjectInUseProtection admission plugin (new PVs get the
        # finalizer) and the binder playing the PV protection controller (off by default:
        # tests written before it assert the exact finalizers of PVs).
        self._binder = PVBinder(self._store, pv_protection=pv_protection)
        self._run_binder = binder
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        """Listen and serve in a background thread; returns the base URL.

        After `stop()`, starting again serves the same objects on the same port,
        like an apiserver restarted on intact storage (open watches were ended).
        """
        if self._httpd is not None:
            return self.url
        handler = type("BoundHandler", (Handler,), {"state": self._state})
        self._store.reopen()
        self._httpd = _HTTPServer((self._host, self._port), handler)
        host, port = str(self._httpd.server_address[0]), int(self._httpd.server_address[1])
        self._port = port
        self._state.address = f"{host}:{port}"
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="kube-test-server",
            daemon=True,
        )
        self._thread.start()
        if self._run_binder:
            self._binder.start()
        return self.url

    def stop(self) -> None:
        """Stop serving: ends watches and closes every open connection."""
        if self._httpd is None:
            return
        self._binder.stop()
        self._store.wake_all(close=True)
        self._httpd.shutdown()
        self._state.close_connections()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> KubeTestServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def api_client(self) -> kubernetes.client.ApiClient:
        """A client of the real `kubernetes` package pointed at this server."""
        import kubernetes.client

        configuration = kubernetes.client.Configuration(host=self.url)
        return kubernetes.client.ApiClient(configuration)

    def write_kubeconfig(self, path: str | os.PathLike[str]) -> Path:
        """Write a kubeconfig for this server (for kubectl and `controller --kubeconfig`)."""
        if not self.url:
            raise RuntimeError("start the server before writing its kubeconfig")
        target = Path(path)
        target.write_text(json.dumps(kubeconfig(self.url), indent=2) + "\n")
        return target

    # --- direct store access (as the API would do it) ---------------------------------------

    def create(self, obj: JSON) -> JSON:
        """Create `obj` as a POST would (server-set fields filled); returns the stored object."""
        stored = self._store.create(*_store_entry(obj))
        return _copy(stored.obj)

    def seed(self, objs: Iterable[JSON]) -> None:
        """Create many objects quickly (one lock hold); they must not exist yet."""
        self._store.seed(_store_entry(o) for o in objs)

    def get(self, kind_plural: str, name: str, namespace: str | None = None) -> JSON | None:
        rt = _plural(kind_plural)
        stored = self._store.find(rt.bucket, namespace or "" if rt.namespaced else "", name)
        return None if stored is None else _copy(stored.obj)

    def list(self, kind_plural: str, namespace: str | None = None) -> list[JSON]:
        rt = _plural(kind_plural)
        return [_copy(s.obj) for s in self._store.objects(rt.bucket, namespace)]

    @property
    def resource_version(self) -> str:
        """The current global resourceVersion."""
        return str(self._store.resource_version)

    # --- test controls ---------------------------------------------------------------------

    @property
    def requests(self) -> builtins.list[RequestRecord]:
        """Every request answered so far (a copy), oldest first."""
        return self._state.log.snapshot()

    @property
    def open_connections(self) -> int:
        """Client connections open right now (keep-alive reuses them)."""
        with self._state.lock:
            return len(self._state.connections)

    def clear_requests(self) -> None:
        self._state.log.clear()

    def count_requests(self, *, verb: str | None = None, path_regex: str = "") -> int:
        """How many logged requests have this verb and a path matching `path_regex`."""
        pattern = re.compile(path_regex)
        return sum(
            1 for r in self.requests if (verb is None or r.verb == verb) and pattern.search(r.path)
        )

    def fail_next(
        self,
        *,
        verb: str | None = None,
        path_regex: str = ".*",
        count: int = 1,
        status: int = 500,
        drop: bool = False,
    ) -> None:
        """Make the next `count` requests with `verb` and a path matching `path_regex`
        fail with a Status of `status`, or (`drop=True`) close the connection unanswered.
        The request has no effect either way."""
        self._state.faults.add(
            verb=verb, path_regex=path_regex, count=count, status=status, drop=drop
        )

    def clear_faults(self) -> None:
        self._state.faults.clear()

    def set_latency(self, seconds: float) -> None:
        """Slow answers: every request but a watch waits `seconds` before it is served.
        Lowering the latency (0 ends it) releases requests already waiting."""
        self._state.latency.set(seconds)

    @property
    def delayed_requests(self) -> int:
        """Requests being held back by `set_latency` right now."""
        return self._state.latency.waiting

    def cut_watches(self) -> None:
        """End every open watch stream abruptly (no terminating chunk)."""
        self._state.cut_watches()

    def compact(self) -> None:
        """Forget the event history: watching or continuing from an older version gets 410."""
        self._store.compact()

    def bind_claim(self, namespace: str, name: str) -> None:
        """Play the PV binder for one claim: PVC and PV phase Bound, claim status from the PV."""
        self._binder.bind_claim(namespace, name)

    def release_volume(self, pv_name: str) -> None:
        """Play the PV binder for a volume whose claim is gone: phase Released."""
        self._binder.release_volume(pv_name)


def kubeconfig(url: str) -> JSON:
    """A kubeconfig (JSON is valid YAML) with one context pointing at `url`, no credentials."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kube-test-server", "cluster": {"server": url}}],
        "users": [{"name": "kube-test-server", "user": {}}],
        "contexts": [
            {
                "name": "kube-test-server",
                "context": {
                    "cluster": "kube-test-server",
                    "user": "kube-test-server",
                    "namespace": "default",
                },
            }
        ],
        "current-context": "kube-test-server",
    }


def _store_entry(obj: JSON) -> tuple[ResourceType, str, JSON]:
    """Type, namespace and a copy of `obj` as a POST would store it: unknown fields dropped,
    Events in core/v1 shape."""
    rt = _type_of(obj)
    body = _copy(obj)
    drop_unknown_fields(rt, body, "Ignore")
    if rt.group == "events.k8s.io":
        body = events.to_core(body)
    return rt, _namespace_of(rt, body), body


def _copy(obj: JSON) -> JSON:
    copied: JSON = json.loads(json.dumps(obj))
    return copied


def _plural(kind_plural: str) -> ResourceType:
    try:
        return resources.resource_type(kind_plural)
    except KeyError:
        known = ", ".join(sorted(resources.BY_PLURAL))
        raise ValueError(f"unknown resource {kind_plural!r}; known: {known}") from None


def _type_of(obj: JSON) -> ResourceType:
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    group, _, version = api_version.rpartition("/")
    for rt in resources.BY_GROUP_VERSION.get((group, version), {}).values():
        if rt.kind == kind:
            return rt
    raise ValueError(f"unknown apiVersion/kind {api_version}/{kind}")


def _namespace_of(rt: ResourceType, obj: JSON) -> str:
    if not rt.namespaced:
        return ""
    namespace: str = obj.get("metadata", {}).get("namespace") or "default"
    return namespace


# --- command line ----------------------------------------------------------------------------


def _listen_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"--listen wants HOST:PORT, got {text!r}")
    return host or "127.0.0.1", int(port)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m testbed.kube",
        description="Kubernetes API test server (PVCs, PVs, StorageClasses, Secrets, "
        "Namespaces, Events, Leases) for tests, demos and benchmarks.",
    )
    parser.add_argument(
        "--listen",
        type=_listen_address,
        default=("127.0.0.1", 8001),
        help="HOST:PORT to listen on (default 127.0.0.1:8001; port 0 = any)",
    )
    parser.add_argument(
        "--history",
        type=int,
        default=DEFAULT_HISTORY,
        help=f"events kept for watch resumption (default {DEFAULT_HISTORY})",
    )
    parser.add_argument(
        "--binder",
        action="store_true",
        help="run the in-cluster PV binder (bind claims, release volumes)",
    )
    parser.add_argument(
        "--pv-protection",
        action="store_true",
        help="with --binder: also keep the kubernetes.io/pv-protection finalizer on PVs",
    )
    parser.add_argument(
        "--bookmark-interval",
        type=float,
        default=DEFAULT_BOOKMARK_INTERVAL,
        help="seconds between watch BOOKMARK events",
    )
    parser.add_argument(
        "--request-log-limit",
        type=int,
        default=CLI_REQUEST_LOG_LIMIT,
        help=f"requests kept in the log (default {CLI_REQUEST_LOG_LIMIT:,})",
    )
    parser.add_argument(
        "--kubeconfig-out",
        metavar="PATH",
        help="write a kubeconfig for the server to PATH once it listens",
    )
    return parser


def _stop_signal() -> threading.Event:
    """An event set by SIGTERM or SIGINT, its handlers installed before anything is announced.

    The banner tells callers the server is ready, which includes being ready to stop cleanly
    on SIGTERM: a handler installed after it leaves a window where SIGTERM kills the process.
    """
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return done


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.history < 1 or args.request_log_limit < 1:
        print("--history and --request-log-limit must be at least 1", file=sys.stderr)
        return 2
    host, port = args.listen
    server = KubeTestServer(
        host=host,
        port=port,
        history=args.history,
        binder=args.binder,
        pv_protection=args.pv_protection,
        bookmark_interval=args.bookmark_interval,
        request_log_limit=args.request_log_limit,
    )
    stop_requested = _stop_signal()
    try:
        url = server.start()
        if args.kubeconfig_out:
            server.write_kubeconfig(args.kubeconfig_out)
    except OSError as err:
        server.stop()
        print(
            f"cannot start: {err.strerror or err}: {err.filename or f'{host}:{port}'}",
            file=sys.stderr,
        )
        return 1
    print(f"kube test server listening on {url}", flush=True)
    stop_requested.wait()
    server.stop()
    return 0
