"""Which Heketi servers the idle check says hello to, without a network."""

from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from provisioner.controller.heketi_watch import HeketiWatch
from provisioner.core import annotations
from provisioner.heketi.config import HeketiSettings
from provisioner.metrics import HeketiRequestMetrics
from testbed.net import free_port
from tests.unit.controller.test_signals import FakeCache

#: Nothing listens here (TEST-NET-1 is never routed; the connect is refused or times out).
UNROUTED = "http://192.0.2.1:8080"


def storage_class(
    name: str, url: str, provisioner: str = annotations.DRIVER_NAME, **parameters: str
) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "provisioner": provisioner,
        "parameters": {"resturl": url, "restauthenabled": "false", **parameters},
    }


def watch(classes: list[dict[str, Any]], observer: HeketiRequestMetrics) -> HeketiWatch:
    return HeketiWatch(
        FakeCache(classes),  # type: ignore[arg-type]
        driver=annotations.DRIVER_NAME,
        settings=HeketiSettings(),
        observer=observer,
        interval=60,
    )


def test_one_connection_per_heketi_url_of_our_valid_classes() -> None:
    observer = HeketiRequestMetrics(CollectorRegistry())
    classes = [
        storage_class("a", "http://heketi:8080"),
        storage_class("b", "http://heketi:8080/", volumetype="none"),
        storage_class("c", "https://heketi-2:8443"),
        storage_class("nfs", "http://heketi-3:8080", provisioner="nfs.csi.k8s.io"),
        storage_class("broken", "http://heketi-4:8080", volumetype="striped:7"),
    ]
    urls = sorted(config.base_url for config in watch(classes, observer).configs())
    assert urls == ["http://heketi:8080", "https://heketi-2:8443"]


def test_a_heketi_heard_from_within_the_interval_is_not_asked_again() -> None:
    registry = CollectorRegistry()
    observer = HeketiRequestMetrics(registry)
    observer.observe(server=UNROUTED, method="GET", route="/volumes", status="200", seconds=0.1)
    watch([storage_class("a", UNROUTED)], observer).check_idle()
    samples = {
        (s.name, tuple(sorted(s.labels.items())))
        for family in registry.collect()
        for s in family.samples
        if s.name == "glusterfs_provisioner_heketi_responses_total"
    }
    assert samples == {
        ("glusterfs_provisioner_heketi_responses_total", (("method", "GET"), ("status", "200")))
    }


def test_a_heketi_that_stops_answering_is_reported_down_and_warned_about_once() -> None:
    refused = f"http://127.0.0.1:{free_port()}"
    registry = CollectorRegistry()
    checks = HeketiWatch(
        FakeCache([storage_class("a", refused)]),  # type: ignore[arg-type]
        driver=annotations.DRIVER_NAME,
        settings=HeketiSettings(),
        observer=HeketiRequestMetrics(registry),
        interval=1e-9,  # so short that every round asks again
    )
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            checks.check_idle()
    checks.stop()
    warned = [e for e in logs if e.get("url") == refused and e["log_level"] == "warning"]
    assert [e["event"] for e in warned] == ["Heketi does not answer"]  # the rest at debug
    assert registry.get_sample_value("glusterfs_provisioner_heketi_up", {"url": refused}) == 0
    samples = registry.get_sample_value(
        "glusterfs_provisioner_heketi_route_responses_total",
        {"route": "GET /hello", "status": "error"},
    )
    assert samples == 3  # one try per round: the next round is the retry
