"""Prometheus metrics both daemons export, and the /metrics, /healthz, /readyz endpoint.

Metric objects live in a `CollectorRegistry` owned by one daemon (not the
process-wide default), so several daemons in one process (tests) do not collide.
"""

import platform
import re
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from provisioner import errors
from provisioner.log import get_logger

log = get_logger("metrics")

PREFIX: Final = "glusterfs_provisioner"
#: Buckets spanning a 5 ms API round trip to a multi-minute Heketi create.
DURATION_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
HTTP_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: `glusterfs --version` prints one line and exits; a client that takes longer is broken.
VERSION_TIMEOUT: Final = 5.0
#: Its first line: `glusterfs 10.3`.
_GLUSTERFS_VERSION = re.compile(r"glusterfs ([0-9][0-9A-Za-z.+~-]{0,40})\s*$")


_Children = tuple[Histogram, Counter, Histogram, Counter]
#: Outcomes that mean Heketi itself did not answer: no response at all, or a proxy or
#: load balancer in front of it answering instead (Heketi answers 500 itself for a
#: failed operation on `GET /queue/{id}`: that is an answer, not an outage).
UNREACHABLE_STATUSES: Final = frozenset({"error", "502", "503", "504"})


def glusterfs_client_version(argv: tuple[str, ...] = ("glusterfs", "--version")) -> str:
    """The GlusterFS FUSE client's version (`10.3`); `none` when it is not installed,
    `unknown` when it does not say."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=VERSION_TIMEOUT, check=False
        )
    except FileNotFoundError:
        return "none"
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning("cannot read the glusterfs client version", error=str(error))
        return "unknown"
    first = (done.stdout.splitlines() or [""])[0]
    match = _GLUSTERFS_VERSION.match(first)
    return match.group(1) if done.returncode == 0 and match else "unknown"


def package_version() -> str:
    try:
        return metadata.version("glusterfs-provisioner")
    except metadata.PackageNotFoundError:
        return "unknown"


def export_build_info(registry: CollectorRegistry, *, glusterfs: str) -> None:
    """`glusterfs_provisioner_build_info` = 1, its labels saying what runs."""
    info = Gauge(
        f"{PREFIX}_build_info",
        "Always 1: the provisioner version, the Python version, the glusterfs client version.",
        ["version", "python", "glusterfs_client"],
        registry=registry,
    )
    info.labels(package_version(), platform.python_version(), glusterfs).set(1)


class HeketiRequestMetrics:
    """Every HTTP request to Heketi, per method and per route (`POST /volumes`,
    `GET /queue/{id}`, …). A `heketi.session.RequestObserver`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.latency = Histogram(
            f"{PREFIX}_heketi_request_duration_seconds",
            "Heketi HTTP request latency.",
            ["method"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.responses = Counter(
            f"{PREFIX}_heketi_responses",
            "Heketi HTTP responses by status code ('error' when no response arrived).",
            ["method", "status"],
            registry=registry,
        )
        self.route_latency = Histogram(
            f"{PREFIX}_heketi_route_duration_seconds",
            "Heketi HTTP request latency per route (ids shown as {id}).",
            ["route"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.route_responses = Counter(
            f"{PREFIX}_heketi_route_responses",
            "Heketi HTTP responses per route and status code ('error': no response).",
            ["route", "status"],
            registry=registry,
        )
        self.up = Gauge(
            f"{PREFIX}_heketi_up",
            "1 when the last request to this Heketi got an answer, 0 when none came or a "
            "gateway answered for it (502, 503, 504).",
            ["url"],
            registry=registry,
        )
        self._by_kind: dict[tuple[str, str, str], _Children] = {}
        #: When each Heketi last answered or failed to (monotonic seconds).
        self._last_request: dict[str, float] = {}

    def heard_from(self, server: str, *, within: float) -> bool:
        """Whether a request to `server` ended within the last `within` seconds."""
        last = self._last_request.get(server)
        return last is not None and time.monotonic() - last < within

    def observe(self, *, server: str, method: str, route: str, status: str, seconds: float) -> None:
        latency, responses, route_latency, route_responses = self._children(method, route, status)
        latency.observe(seconds)
        responses.inc()
        route_latency.observe(seconds)
        route_responses.inc()
        self.up.labels(server).set(0 if status in UNREACHABLE_STATUSES else 1)
        self._last_request[server] = time.monotonic()

    def _children(self, method: str, route: str, status: str) -> _Children:
        """The labelled series of one request kind, looked up once (few kinds exist)."""
        key = (method, route, status)
        children = self._by_kind.get(key)
        if children is None:
            labelled = f"{method} {route}"
            children = self._by_kind[key] = (
                self.latency.labels(method),
                self.responses.labels(method, status),
                self.route_latency.labels(labelled),
                self.route_responses.labels(labelled, status),
            )
        return children


class MetricsServer:
    """Serves /metrics (one registry), /healthz (`healthy()`; by default: the process
    runs), /readyz (`ready()`)."""

    def __init__(
        self,
        address: tuple[str, int],
        *,
        registry: CollectorRegistry,
        ready: Callable[[], bool],
        healthy: Callable[[], bool] = lambda: True,
        flag: str = "--metrics-address",
    ) -> None:
        handler = _handler_class(registry=registry, ready=ready, healthy=healthy)
        host, port = address
        try:
            self._server = ThreadingHTTPServer(address, handler)
        except OSError as exc:
            raise errors.InvalidArgument(
                f"cannot serve metrics on {host}:{port} ({flag}): {exc}"
            ) from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-server", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _handler_class(
    *, registry: CollectorRegistry, ready: Callable[[], bool], healthy: Callable[[], bool]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                ok = healthy() if path == "/healthz" else ready()
                self._send(200 if ok else 503, b"ok\n" if ok else b"not ready\n")
            else:
                self._send(404, b"not found\n")

        def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http", request=format % args)

    return Handler
