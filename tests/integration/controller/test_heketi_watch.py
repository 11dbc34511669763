"""The controller says hello to idle Heketi servers: `heketi_up` without any claim."""

from testbed.net import free_port
from tests.integration.controller.conftest import Cluster, wait_for


def heketi_up(cluster: Cluster, url: str) -> float | None:
    (controller,) = cluster.controllers
    return controller.metrics.registry.get_sample_value(
        "glusterfs_provisioner_heketi_up", {"url": url}
    )


def test_an_idle_heketi_that_answers_is_reported_up(cluster: Cluster) -> None:
    cluster.storage_class()
    cluster.start_controller(heketi_check_seconds=0.2)
    wait_for("heketi_up 1", lambda: heketi_up(cluster, cluster.heketi.url) == 1)
    assert cluster.heketi_volume_names() == []  # asked, nothing made


def test_a_heketi_that_does_not_answer_is_reported_down(cluster: Cluster) -> None:
    gone = f"http://127.0.0.1:{free_port()}"
    cluster.storage_class(parameters=cluster.class_parameters(resturl=gone))
    cluster.start_controller(heketi_check_seconds=0.2)
    wait_for("heketi_up 0", lambda: heketi_up(cluster, gone) == 0)
