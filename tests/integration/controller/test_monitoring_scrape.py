"""No alert or dashboard panel of deploy/components/monitoring/ on a typo: every metric
they read is in a live scrape of a running controller (one claim provisioned) and node
plugin (one call failed)."""

import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from provisioner.csi import csi_pb2
from testbed.net import free_port
from tests.conftest import GlusterHost
from tests.integration.controller.conftest import Cluster
from tests.integration.csi.conftest import start_plugin, stop_plugin
from tests.unit.deploy.monitoring.monitoring import SCRAPE_SERIES, alerts, used_metric_names


def scraped_names(port: int) -> set[str]:
    """The names of every sample on /metrics (a family without samples does not count)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def controller_names(cluster: Cluster) -> set[str]:
    port = free_port()
    cluster.storage_class()
    cluster.start_controller(metrics_address=("127.0.0.1", port))
    cluster.claim()
    cluster.wait_bound()
    return scraped_names(port)


def node_names(base: Path) -> set[str]:
    port = free_port()
    plugin = start_plugin(base, extra=("--metrics-address", f"127.0.0.1:{port}"))
    try:
        with pytest.raises(grpc.RpcError):  # an invalid request: the error counter has a sample
            plugin.node.NodeStageVolume(csi_pb2.NodeStageVolumeRequest(), timeout=10)
        return scraped_names(port)
    finally:
        stop_plugin(plugin)


def test_every_metric_an_alert_or_the_dashboard_reads_is_in_a_live_scrape(
    cluster: Cluster, tmp_path: Path, gluster_host: GlusterHost
) -> None:
    scraped = controller_names(cluster) | node_names(tmp_path)
    used = used_metric_names()
    assert len(used) > 15 and alerts()
    assert sorted(used - scraped - SCRAPE_SERIES) == []
