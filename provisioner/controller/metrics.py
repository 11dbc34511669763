"""Prometheus metrics and the /metrics, /healthz, /readyz HTTP endpoint.

Metric objects live in a per-controller `CollectorRegistry`, so several
controllers in one process (tests) do not collide.
"""

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final

import requests
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from provisioner.log import get_logger

log = get_logger("metrics")

PREFIX: Final = "glusterfs_provisioner"
#: Buckets spanning a 5 ms API round trip to a multi-minute Heketi create.
DURATION_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
HTTP_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """Every metric the controller exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.operations = Counter(
            f"{PREFIX}_operations",
            "Provision/delete/expand attempts by result.",
            ["operation", "result"],
            registry=r,
        )
        self.duration = Histogram(
            f"{PREFIX}_operation_duration_seconds",
            "Duration of successful provision/delete/expand operations.",
            ["operation"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            f"{PREFIX}_queue_depth", "Keys ready in the work queue.", registry=r
        )
        self.queue_retrying = Gauge(
            f"{PREFIX}_queue_retrying", "Keys waiting for their backoff delay.", registry=r
        )
        self.heketi_latency = Histogram(
            f"{PREFIX}_heketi_request_duration_seconds",
            "Heketi HTTP request latency.",
            ["method"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.heketi_responses = Counter(
            f"{PREFIX}_heketi_responses",
            "Heketi HTTP responses by status code ('error' when no response arrived).",
            ["method", "status"],
            registry=r,
        )
        self.leader = Gauge(f"{PREFIX}_leader", "1 while this instance is the leader.", registry=r)
        self.cached = Gauge(
            f"{PREFIX}_cached_objects", "Objects in the watch caches.", ["resource"], registry=r
        )

    def observe_queue(self, *, depth: Callable[[], int], retrying: Callable[[], int]) -> None:
        self.queue_depth.set_function(lambda: float(depth()))
        self.queue_retrying.set_function(lambda: float(retrying()))


class InstrumentedSession(requests.Session):
    """A requests session that records Heketi latency and status codes."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self._metrics = metrics

    def send(self, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
        method = request.method or "GET"
        start = time.perf_counter()
        try:
            response = super().send(request, **kwargs)  # type: ignore[arg-type]
        except requests.RequestException:
            self._metrics.heketi_responses.labels(method, "error").inc()
            raise
        finally:
            self._metrics.heketi_latency.labels(method).observe(time.perf_counter() - start)
        self._metrics.heketi_responses.labels(method, str(response.status_code)).inc()
        return response


class HealthServer:
    """Serves /metrics, /healthz (process alive) and /readyz (`ready()` true)."""

    def __init__(
        self, address: tuple[str, int], *, metrics: Metrics, ready: Callable[[], bool]
    ) -> None:
        handler = _handler_class(metrics=metrics, ready=ready)
        self._server = ThreadingHTTPServer(address, handler)
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


def _handler_class(*, metrics: Metrics, ready: Callable[[], bool]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._send(200, b"ok\n")
            elif path == "/readyz":
                ok = ready()
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
