"""A claim whose dataSource names a Bound claim of ours is provisioned as its clone."""

from typing import Any

import pytest

from provisioner.core import annotations
from tests.integration.controller.conftest import APP_NS, Cluster, wait_for

FAILED = "ProvisioningFailed"


def claim_source(name: str = "data", *, ref: bool = False, **extra: Any) -> dict[str, Any]:
    source = {"kind": "PersistentVolumeClaim", "name": name, **extra}
    return {"dataSourceRef" if ref else "dataSource": source}


def heketi_volume(cluster: Cluster, name: str) -> dict[str, Any]:
    return next(v for v in cluster.heketi.volumes() if v["name"] == name)


def failure_messages(cluster: Cluster, claim: str) -> list[str]:
    return [e["message"] for e in cluster.events(reason=FAILED, name=claim)]


def wait_failure(cluster: Cluster, claim: str, part: str) -> str:
    def found() -> str | None:
        return next((m for m in failure_messages(cluster, claim) if part in m), None)

    return wait_for(f"a {FAILED} Event with {part!r}", found)


@pytest.mark.parametrize("ref", [False, True], ids=["dataSource", "dataSourceRef"])
def test_a_claim_with_a_claim_as_data_source_is_bound_to_a_clone_of_its_volume(
    running: Cluster, ref: bool
) -> None:
    running.claim("data", size="2Gi")
    source_pv = running.pv_for(running.wait_bound("data"))
    assert source_pv is not None

    running.claim("copy", size="2Gi", **claim_source(ref=ref))
    pv = running.pv_for(running.wait_bound("copy"))

    assert pv is not None
    source = heketi_volume(running, source_pv["spec"]["csi"]["volumeAttributes"]["volume"])
    clone = heketi_volume(running, pv["spec"]["csi"]["volumeAttributes"]["volume"])
    assert clone["id"] == pv["spec"]["csi"]["volumeHandle"] != source["id"]
    assert clone["gid"] == source["gid"]
    assert pv["metadata"]["annotations"][annotations.ANN_GID] == str(clone["gid"])
    assert pv["spec"]["csi"]["volumeAttributes"][annotations.CTX_CLONE_OF] == source["id"]
    clone_posts = [r for r in running.heketi.requests if r.path.endswith("/clone")]
    assert [(r.method, r.path) for r in clone_posts] == [("POST", f"/volumes/{source['id']}/clone")]


def test_a_clone_asking_for_more_than_its_source_is_cloned_then_expanded(
    running: Cluster,
) -> None:
    running.claim("data", size="1Gi")
    running.wait_bound("data")

    running.claim("copy", size="3Gi", **claim_source())
    pv = running.pv_for(running.wait_bound("copy"))

    assert pv is not None and pv["spec"]["capacity"]["storage"] == "3Gi"
    assert heketi_volume(running, pv["spec"]["csi"]["volumeAttributes"]["volume"])["size"] == 3


def test_a_clone_asking_for_less_than_its_source_is_refused_with_the_size_to_ask(
    running: Cluster,
) -> None:
    running.claim("data", size="3Gi")
    running.wait_bound("data")

    running.claim("copy", size="1Gi", **claim_source())

    message = wait_failure(running, "copy", "request at least 3Gi")
    assert "needs at least 3 GiB (the size of its source)" in message
    assert len(running.heketi.volumes()) == 1


def test_a_clone_of_a_missing_claim_waits_with_an_event_then_clones_once_it_is_bound(
    running: Cluster,
) -> None:
    running.claim("copy", size="1Gi", **claim_source("later"))
    message = wait_failure(running, "copy", "does not exist")
    assert f"the source claim {APP_NS}/later (spec.dataSource) does not exist" in message

    running.claim("later", size="1Gi")
    running.wait_bound("later")
    running.wait_bound("copy")

    assert len(running.heketi.volumes()) == 2


def test_a_source_claim_that_is_not_bound_is_reported_and_waited_for(
    running: Cluster,
) -> None:
    running.storage_class("elsewhere", provisioner="example.com/other")
    running.claim("data", size="1Gi", storage_class="elsewhere")

    running.claim("copy", size="1Gi", **claim_source())

    message = wait_failure(running, "copy", "is not Bound")
    assert message.endswith(
        f"the source claim {APP_NS}/data is not Bound (phase Pending); the clone is made once it is"
    )
    assert running.heketi.volumes() == []


def test_a_source_bound_to_another_drivers_volume_is_refused(running: Cluster) -> None:
    running.kube.create(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": "nfs-pv"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteMany"],
                "nfs": {"server": "nfs.example.com", "path": "/export"},
                "claimRef": {"namespace": APP_NS, "name": "data"},
                "storageClassName": "",
            },
        }
    )
    running.claim("data", size="1Gi", storage_class="", volumeName="nfs-pv")
    wait_for("claim data bound", lambda: running.bound("data"))

    running.claim("copy", size="1Gi", **claim_source())

    message = wait_failure(running, "copy", "not a volume of")
    assert f"bound to PV nfs-pv, which is not a volume of {annotations.DRIVER_NAME}" in message


@pytest.mark.parametrize(
    ("source", "part"),
    [
        pytest.param(
            {
                "dataSource": {
                    "kind": "VolumeSnapshot",
                    "name": "s",
                    "apiGroup": "snapshot.storage.k8s.io",
                }
            },
            "a data source of kind snapshot.storage.k8s.io/VolumeSnapshot is not supported",
            id="snapshot",
        ),
        pytest.param(
            claim_source(ref=True, namespace="other"),
            "is in another namespace",
            id="other-namespace",
        ),
    ],
)
def test_a_data_source_that_can_never_be_cloned_is_rejected_once(
    running: Cluster, source: dict[str, Any], part: str
) -> None:
    running.claim("copy", size="1Gi", **source)

    wait_failure(running, "copy", part)

    assert running.get_claim("copy")["spec"].get("volumeName") is None  # type: ignore[index]
    assert running.heketi.volumes() == []


def test_a_clone_whose_source_claim_goes_away_after_the_intent_still_binds_once(
    running: Cluster,
) -> None:
    running.claim("data", size="1Gi")
    source_pv = running.pv_for(running.wait_bound("data"))
    assert source_pv is not None
    running.heketi.set_latency(400)
    running.heketi.drop_next("volume_clone", after_commit=True)  # the answer is lost

    running.claim("copy", size="1Gi", **claim_source())
    wait_for(
        "the clone sent", lambda: any(r.path.endswith("/clone") for r in running.heketi.requests)
    )
    running.delete_claim("data")
    pvc = running.wait_bound("copy", timeout=30)

    source_id = source_pv["spec"]["csi"]["volumeHandle"]
    assert pvc["metadata"]["annotations"][annotations.ANN_CLONE_OF] == source_id
    pv = running.pv_for(pvc)
    assert pv is not None and pv["spec"]["csi"]["volumeAttributes"]["clone-of"] == source_id
    clone_posts = [r for r in running.heketi.requests if r.path.endswith("/clone")]
    assert len(clone_posts) == 1
