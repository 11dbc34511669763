"""The controller's Prometheus metrics (served by `provisioner.metrics.MetricsServer`).

Metric objects live in a per-controller `CollectorRegistry`, so several
controllers in one process (tests) do not collide.
"""

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from provisioner.metrics import DURATION_BUCKETS, PREFIX, HeketiRequestMetrics


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
        #: Every HTTP request to Heketi (the controller's clients report here).
        self.heketi = HeketiRequestMetrics(r)
        self.leader = Gauge(f"{PREFIX}_leader", "1 while this instance is the leader.", registry=r)
        self.cached = Gauge(
            f"{PREFIX}_cached_objects", "Objects in the watch caches.", ["resource"], registry=r
        )
        self.last_success = Gauge(
            f"{PREFIX}_last_success_timestamp_seconds",
            "When a provision/delete/expand last succeeded (Unix time).",
            ["operation"],
            registry=r,
        )

    def observe_queue(self, *, depth: Callable[[], int], retrying: Callable[[], int]) -> None:
        self.queue_depth.set_function(lambda: float(depth()))
        self.queue_retrying.set_function(lambda: float(retrying()))
