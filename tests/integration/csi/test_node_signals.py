"""The node plugin's /metrics on real GlusterFS mounts: staged and published volumes,
FUSE clients, and a stale mount once its client is killed."""

import os
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from testbed.net import free_port
from tests.integration.csi.conftest import (
    GlusterVolume,
    Plugin,
    start_plugin,
    stop_plugin,
    unmount_everything_under,
)
from tests.integration.csi.test_node_mounts import Kubelet, fuse_client_pids
from tests.polling import wait_for

pytestmark = pytest.mark.gluster

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def mounts_seen(samples: Samples) -> tuple[float, float, float, float, float]:
    """(staged, published, stale staged, stale published, FUSE clients)."""
    prefix = "glusterfs_provisioner_node_"
    return (
        samples[(f"{prefix}staged_volumes", ())],
        samples[(f"{prefix}published_volumes", ())],
        samples[(f"{prefix}stale_mounts", (("kind", "staged"),))],
        samples[(f"{prefix}stale_mounts", (("kind", "published"),))],
        samples[(f"{prefix}fuse_clients", ())],
    )


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Plugin, int]]:
    """A node plugin serving /metrics on a free local port."""
    port = free_port()
    base = tmp_path_factory.mktemp("csi-node-metrics")
    running = start_plugin(base, extra=("--metrics-address", f"127.0.0.1:{port}"))
    try:
        yield running, port
    finally:
        stop_plugin(running)
        unmount_everything_under(running.kubelet_dir)


def test_staged_published_and_stale_mounts_follow_the_mount_table(
    gluster_volumes: dict[str, GlusterVolume], metered: tuple[Plugin, int]
) -> None:
    plugin, port = metered
    assert mounts_seen(scrape(port)) == (0, 0, 0, 0, 0)
    kubelet = Kubelet(plugin, gluster_volumes["single"], "signals")
    kubelet.stage()
    targets = [kubelet.publish("pod-a"), kubelet.publish("pod-b")]
    assert mounts_seen(scrape(port)) == (1, 2, 0, 0, 1)

    for pid in fuse_client_pids(kubelet.staging):
        os.kill(pid, signal.SIGKILL)
    wait_for("the client gone", lambda: not fuse_client_pids(kubelet.staging), timeout=15)
    assert mounts_seen(scrape(port)) == (1, 2, 1, 2, 0)

    for target in targets:
        kubelet.unpublish(target)
    kubelet.unstage()
    assert mounts_seen(scrape(port)) == (0, 0, 0, 0, 0)


def test_build_info_names_the_installed_glusterfs_client(metered: tuple[Plugin, int]) -> None:
    _, port = metered
    (info,) = [labels for name, labels in scrape(port) if name.endswith("_build_info")]
    client = dict(info)["glusterfs_client"]
    assert client[0].isdigit(), client  # e.g. 10.3, from `glusterfs --version`


def test_healthz_and_readyz_answer_for_a_running_plugin(metered: tuple[Plugin, int]) -> None:
    _, port = metered
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            assert answer.status == 200


def test_healthz_fails_once_the_plugin_no_longer_answers_on_its_socket(tmp_path: Path) -> None:
    port = free_port()
    plugin = start_plugin(tmp_path, extra=("--metrics-address", f"127.0.0.1:{port}"))
    try:
        socket = Path(plugin.endpoint.removeprefix("unix://"))
        socket.rename(socket.with_name("moved.sock"))  # kubelet's path now leads nowhere
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert refused.value.code == 503
    finally:
        stop_plugin(plugin)
