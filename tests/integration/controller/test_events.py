"""The Event recorder against the Kubernetes API test server."""

from collections.abc import Iterator
from typing import Any

import pytest

from provisioner.controller.events import EventRecorder
from provisioner.kube.api import KubeApi
from testbed.kube.server import KubeTestServer
from tests.integration.controller.conftest import wait_for


@pytest.fixture
def server() -> Iterator[KubeTestServer]:
    with KubeTestServer() as kube:
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}})
        yield kube


def _claim(server: KubeTestServer, name: str = "data") -> dict[str, Any]:
    return server.create(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "apps"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    )


def _events(server: KubeTestServer, namespace: str = "apps") -> list[dict[str, Any]]:
    return server.list("events", namespace)


def test_a_repeated_event_bumps_the_count_of_the_first(server: KubeTestServer) -> None:
    recorder = EventRecorder(KubeApi(server.api_client()), instance="test")
    pvc = _claim(server)
    for _ in range(3):
        recorder.warning(pvc, "ProvisioningFailed", "Heketi said no")
    recorder.warning(pvc, "ProvisioningFailed", "something else")
    assert recorder.flush()
    recorder.close()
    counts = sorted((e["message"], e["count"]) for e in _events(server))
    assert counts == [("Heketi said no", 3), ("something else", 1)]
    [first] = [e for e in _events(server) if e["count"] == 3]
    assert first["involvedObject"]["uid"] == pvc["metadata"]["uid"]
    assert first["type"] == "Warning" and first["source"]["component"] == "glusterfs-provisioner"


def test_events_on_cluster_scoped_objects_go_to_the_default_namespace(
    server: KubeTestServer,
) -> None:
    recorder = EventRecorder(KubeApi(server.api_client()), instance="test")
    pv = server.create(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": "pv-1"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "csi": {"driver": "d", "volumeHandle": "h"},
            },
        }
    )
    recorder.warning(pv, "VolumeFailedDelete", "busy")
    recorder.close()
    [event] = _events(server, "default")
    assert event["involvedObject"]["kind"] == "PersistentVolume"


def test_a_progress_event_followed_by_the_outcome_is_never_sent(server: KubeTestServer) -> None:
    recorder = EventRecorder(KubeApi(server.api_client()), instance="test", progress_delay=0.5)
    pvc = _claim(server)
    recorder.progress(pvc, "Provisioning", "working on it")
    recorder.normal(pvc, "ProvisioningSucceeded", "done")
    slow = _claim(server, "slow")
    recorder.progress(slow, "Provisioning", "working on it")
    wait_for(
        "the slow claim's progress event",
        lambda: any(e["reason"] == "Provisioning" for e in _events(server)),
    )
    recorder.close()
    assert sorted((e["involvedObject"]["name"], e["reason"]) for e in _events(server)) == [
        ("data", "ProvisioningSucceeded"),
        ("slow", "Provisioning"),
    ]
