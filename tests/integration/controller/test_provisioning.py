"""Claim → Heketi volume → bound PV, against real sockets."""

import contextlib
from typing import Any

import pytest

from provisioner.controller.controller import Controller
from provisioner.core import annotations
from provisioner.kube.api import KubeApi, KubeNotFound
from tests.integration.controller.conftest import (
    APP_NS,
    CLASS,
    HEKETI_KEY,
    SECRET,
    SYSTEM_NS,
    Cluster,
    wait_for,
)


def test_a_claim_gets_a_bound_pv_with_every_field(running: Cluster) -> None:
    created = running.claim(size="1500Mi")
    pvc = running.wait_bound()
    uid = created["metadata"]["uid"]
    pv = running.pv_for(pvc)
    assert pv is not None
    [volume] = running.heketi.volumes()
    assert volume["name"] == f"pvc-{uid}"
    assert volume["size"] == 2  # 1500Mi rounded up to whole GiB
    assert pvc["spec"]["volumeName"] == f"pvc-{uid}"
    assert annotations.PVC_FINALIZER not in (pvc["metadata"].get("finalizers") or [])
    # ours, and the StorageObjectInUseProtection admission plugin's
    assert set(pv["metadata"]["finalizers"]) == {
        annotations.PV_FINALIZER,
        annotations.PV_PROTECTION_FINALIZER,
    }
    assert pv["metadata"]["annotations"] == {
        annotations.ANN_PROVISIONED_BY: annotations.DRIVER_NAME,
        annotations.ANN_GID: str(volume["gid"]),
        annotations.ANN_HEKETI_URL: running.heketi.url,
        annotations.ANN_HEKETI_USER: "admin",
        annotations.ANN_HEKETI_VOLUME_NAME: f"pvc-{uid}",
        annotations.ANN_SECRET_NAMESPACE: SYSTEM_NS,
        annotations.ANN_SECRET_NAME: SECRET,
    }
    spec = pv["spec"]
    assert spec["capacity"] == {"storage": "2Gi"}
    assert spec["accessModes"] == ["ReadWriteMany"]
    assert spec["persistentVolumeReclaimPolicy"] == "Delete"
    assert spec["storageClassName"] == CLASS
    assert spec["volumeMode"] == "Filesystem"
    assert spec["claimRef"] == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": APP_NS,
        "name": "data",
        "uid": uid,
    }
    assert spec["csi"]["driver"] == annotations.DRIVER_NAME
    assert spec["csi"]["volumeHandle"] == volume["id"]
    attributes = spec["csi"]["volumeAttributes"]
    assert attributes[annotations.CTX_VOLUME] == volume["name"]
    assert attributes[annotations.CTX_SERVERS].split(",") == volume["mount"]["glusterfs"]["hosts"]
    assert volume["gid"] >= 2000
    assert HEKETI_KEY not in str(pv) and HEKETI_KEY not in str(pvc)
    running.wait_event("ProvisioningSucceeded")


def test_a_slow_provisioning_reports_progress_before_success(running: Cluster) -> None:
    running.heketi.set_latency(1000)  # longer than the progress delay (0.2 s in tests)
    running.claim()
    progress = running.wait_event("Provisioning")
    assert "is provisioning volume for claim apps/data" in progress["message"]
    running.wait_bound()
    running.wait_event("ProvisioningSucceeded")


@pytest.mark.parametrize(
    "modes",
    [("ReadWriteOnce",), ("ReadOnlyMany",), ("ReadWriteMany",), ("ReadWriteOncePod",)],
    ids=["RWO", "ROX", "RWX", "RWOP"],
)
def test_the_pv_has_the_access_modes_of_the_claim(running: Cluster, modes: tuple[str]) -> None:
    running.claim(modes=modes)
    pv = running.pv_for(running.wait_bound())
    assert pv is not None and tuple(pv["spec"]["accessModes"]) == modes


def test_reclaim_policy_and_mount_options_come_from_the_class(cluster: Cluster) -> None:
    cluster.storage_class(reclaimPolicy="Retain", mountOptions=["log-level=WARNING"])
    cluster.start_controller()
    cluster.claim()
    pv = cluster.pv_for(cluster.wait_bound())
    assert pv is not None
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["mountOptions"] == ["log-level=WARNING"]


def test_volumenameprefix_names_the_heketi_volume_after_the_claim(cluster: Cluster) -> None:
    cluster.storage_class(parameters=cluster.class_parameters(volumenameprefix="k8s"))
    cluster.start_controller()
    uid = cluster.claim()["metadata"]["uid"]
    cluster.wait_bound()
    assert cluster.heketi_volume_names() == [f"k8s_{APP_NS}_data_{uid}"]


def test_gids_in_use_by_existing_pvs_are_not_handed_out_again(cluster: Cluster) -> None:
    cluster.storage_class(parameters=cluster.class_parameters(gidMin="3000", gidMax="3001"))
    controller = cluster.start_controller()
    cluster.claim("first")
    first = cluster.pv_for(cluster.wait_bound("first"))
    assert first is not None
    cluster.stop_controller(controller)
    cluster.start_controller()  # a fresh allocator, rebuilt from the PVs
    cluster.claim("second")
    second = cluster.pv_for(cluster.wait_bound("second"))
    assert second is not None
    gids = {pv["metadata"]["annotations"][annotations.ANN_GID] for pv in (first, second)}
    assert gids == {"3000", "3001"}


def test_the_gid_of_a_deleted_pv_is_handed_out_again(cluster: Cluster) -> None:
    cluster.storage_class(parameters=cluster.class_parameters(gidMin="3000", gidMax="3000"))
    cluster.start_controller()
    cluster.claim("first")
    first = cluster.pv_for(cluster.wait_bound("first"))
    assert first is not None and first["metadata"]["annotations"][annotations.ANN_GID] == "3000"
    cluster.delete_claim("first")
    wait_for("the PV gone", lambda: cluster.kube.list("persistentvolumes") == [])
    cluster.claim("second")  # the range holds one GID: only a freed one lets it bind
    second = cluster.pv_for(cluster.wait_bound("second"))
    assert second is not None and second["metadata"]["annotations"][annotations.ANN_GID] == "3000"


def _one_gid_class(cluster: Cluster, gid: int = 3000) -> None:
    cluster.storage_class(parameters=cluster.class_parameters(gidMin=str(gid), gidMax=str(gid)))


def _in_tree_pv(cluster: Cluster, name: str, *, gid: int, policy: str) -> None:
    """A PV of the in-tree glusterfs plugin (or any other provisioner) carrying a GID."""
    cluster.kube.create(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": name,
                "annotations": {
                    annotations.ANN_GID: str(gid),
                    annotations.ANN_PROVISIONED_BY: "kubernetes.io/glusterfs",
                },
            },
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": policy,
                "storageClassName": "legacy",
                "glusterfs": {"endpoints": "glusterfs-cluster", "path": f"vol_{name}"},
            },
        }
    )


def _delete_pv_and_wait_unseen(cluster: Cluster, controller: Controller, name: str) -> None:
    cluster.api_delete(f"/api/v1/persistentvolumes/{name}")
    # An in-tree PV of policy Delete keeps kube-controller-manager's kubernetes.io/pv-controller
    # finalizer (its plugin is gone, nothing reclaims it): the admin lifts it.
    with contextlib.suppress(KubeNotFound):
        path = f"/api/v1/persistentvolumes/{name}"
        KubeApi(cluster.kube.api_client()).merge_patch(path, {"metadata": {"finalizers": None}})
    wait_for(f"the controller to see {name} gone", lambda: controller.pvs.get(name) is None)


def _exhausted(cluster: Cluster, claim: str) -> bool:
    return any(
        "every GID from 3000 to 3000 is in use" in event["message"]
        for event in cluster.events(reason="ProvisioningFailed", name=claim)
    )


def test_a_gid_two_pvs_share_stays_in_use_when_one_of_them_is_deleted(cluster: Cluster) -> None:
    _one_gid_class(cluster)
    _in_tree_pv(cluster, "in-tree-a", gid=3000, policy="Delete")
    _in_tree_pv(cluster, "in-tree-b", gid=3000, policy="Delete")
    controller = cluster.start_controller()
    _delete_pv_and_wait_unseen(cluster, controller, "in-tree-a")
    cluster.claim()
    wait_for("the range reported exhausted", lambda: _exhausted(cluster, "data"))
    assert cluster.heketi.volumes() == []  # in-tree-b still holds the only GID
    _delete_pv_and_wait_unseen(cluster, controller, "in-tree-b")
    pv = cluster.pv_for(cluster.wait_bound())
    assert pv is not None and pv["metadata"]["annotations"][annotations.ANN_GID] == "3000"


def test_the_gid_of_a_deleted_pv_whose_volume_is_retained_stays_in_use(cluster: Cluster) -> None:
    _one_gid_class(cluster)
    _in_tree_pv(cluster, "kept", gid=3000, policy="Retain")
    controller = cluster.start_controller()
    _delete_pv_and_wait_unseen(cluster, controller, "kept")  # the volume itself remains
    cluster.claim()
    wait_for("the range reported exhausted", lambda: _exhausted(cluster, "data"))
    assert cluster.heketi.volumes() == []


def test_a_claim_of_another_provisioner_is_left_alone(running: Cluster) -> None:
    running.kube.create(
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": "other"},
            "provisioner": "example.com/nfs",
        }
    )
    running.claim("foreign", storage_class="other")
    running.claim("ours")
    running.wait_bound("ours")
    foreign = running.get_claim("foreign")
    assert foreign is not None and not foreign["spec"].get("volumeName")
    assert not running.events(name="foreign")


def test_wait_for_first_consumer_waits_for_the_selected_node(cluster: Cluster) -> None:
    cluster.storage_class(volumeBindingMode="WaitForFirstConsumer")
    cluster.start_controller()
    cluster.claim()
    cluster.claim("marker", storage_class="missing-class")  # processed after "data"
    wait_for("claims seen", lambda: len(cluster.kube.list("persistentvolumeclaims")) == 2)
    assert cluster.heketi.volumes() == []
    client = cluster.kube.api_client()
    client.call_api(
        "PATCH",
        f"{cluster.kube.url}/api/v1/namespaces/{APP_NS}/persistentvolumeclaims/data",
        {"Content-Type": "application/merge-patch+json"},
        {"metadata": {"annotations": {annotations.ANN_SELECTED_NODE: "node-1"}}},
    )
    cluster.wait_bound()


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"volumeMode": "Block"}, "volumeMode Block is not supported"),
        ({"selector": {"matchLabels": {"tier": "db"}}}, "selector"),
    ],
    ids=["block", "selector"],
)
def test_claims_we_cannot_serve_get_one_event_and_no_volume(
    running: Cluster, spec: dict[str, Any], reason: str
) -> None:
    running.claim(**spec)
    event = running.wait_event("ProvisioningFailed")
    assert reason in event["message"]
    running.claim("after")
    running.wait_bound("after")
    assert event["count"] == running.events(reason="ProvisioningFailed")[0]["count"] == 1
    assert len(running.heketi.volumes()) == 1


def test_api_writes_per_claim_stay_within_budget_and_no_gets_per_claim(running: Cluster) -> None:
    for i in range(10):
        running.claim(f"c{i}")
    for i in range(10):
        running.wait_bound(f"c{i}")
    wait_for("success events", lambda: len(running.events(reason="ProvisioningSucceeded")) == 10)
    writes = sum(
        1
        for r in running.kube.requests
        if r.verb in ("create", "patch", "update")
        and "/leases/" not in r.path
        and not r.path.endswith("/namespaces")
        and "/secrets" not in r.path
    )
    claim_gets = running.kube.count_requests(verb="get", path_regex="persistentvolume")
    secret_gets = running.kube.count_requests(verb="get", path_regex="/secrets/")
    # created by the test: 10 claims, 1 class; the controller: intent, PV, bind, 2 events
    assert writes - 11 <= 10 * 5 + 2  # 2: bind retries after the test binder raced us
    assert claim_gets <= 2
    assert secret_gets == 1
