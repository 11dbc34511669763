"""The controller process, as its service account under deploy/'s RBAC, on the Kubernetes
API test server and on a real kube-apiserver + kube-controller-manager 1.36 (`make
contract-kube`), with any Heketi: provision, bind, grow, delete under pv/pvc-protection,
a claim deleted mid-create, a StorageClass or Secret missing. What a user sees with
`kubectl describe pvc` (phase, finalizers, Events) is asserted the same on both."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.core import annotations
from provisioner.heketi.client import HeketiClient
from testbed.clusters import Cluster
from testbed.controller_world import SECRET, Controller, Target, World
from tests.contract.controller_world import wait_for, world_on

PV_PROTECTION = "kubernetes.io/pv-protection"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
#: kube-controller-manager's expand controller for a CSI volume it cannot expand itself
#: (pkg/controller/volume/expand/expand_controller.go, syncHandler).
EXTERNAL_EXPANDING = "waiting for an external controller to expand this PVC"


@pytest.fixture
def world(cluster: Cluster, target: Target, tmp_path: Path) -> Iterator[tuple[World, Controller]]:
    with world_on(cluster, target, tmp_path, "ctl") as (made, controller):
        controller.start()
        yield made, controller


def phase(world: World, name: str) -> str:
    return str((world.claim_named(name).get("status") or {}).get("phase", ""))


def bound_claim(world: World, name: str) -> dict[str, object]:
    wait_for(f"claim {name} bound", lambda: name in {c["metadata"]["name"] for c in world.bound()})
    return world.claim_named(name)


def test_a_claim_is_provisioned_bound_and_protected_like_on_a_cluster(
    world: tuple[World, Controller],
) -> None:
    w, _ = world
    w.claim("data")
    claim = bound_claim(w, "data")
    (pv,) = w.volumes()
    assert pv["metadata"]["name"] == f"pvc-{claim['metadata']['uid']}"  # type: ignore[index]
    assert pv["spec"]["csi"]["driver"] == annotations.DRIVER_NAME
    assert set(pv["metadata"]["finalizers"]) == {PV_PROTECTION, annotations.PV_FINALIZER}
    assert claim["metadata"]["finalizers"] == [PVC_PROTECTION]  # type: ignore[index]
    assert claim["status"]["capacity"]["storage"] == "1Gi"  # type: ignore[index]
    wait_for("the PV Bound", lambda: (w.volumes()[0].get("status") or {}).get("phase") == "Bound")
    assert list(w.heketi_volumes()) == [pv["spec"]["csi"]["volumeHandle"]]
    wait_for("ProvisioningSucceeded", lambda: "ProvisioningSucceeded" in w.reasons("data"))


def test_a_grown_claim_gets_its_new_size_from_heketi_and_the_expand_controller_leaves_it_to_us(
    world: tuple[World, Controller],
) -> None:
    w, _ = world
    w.claim("grow")
    bound_claim(w, "grow")
    w.cluster.patch("persistentvolumeclaims", "grow", w.ns,
                    {"spec": {"resources": {"requests": {"storage": "2Gi"}}}})  # fmt: skip
    wait_for("the claim's capacity 2Gi", lambda: (w.claim_named("grow").get("status") or {})
             .get("capacity", {}).get("storage") == "2Gi")  # fmt: skip
    (pv,) = w.volumes()
    assert pv["spec"]["capacity"]["storage"] == "2Gi"
    volume = HeketiClient(w.target.config()).get_volume(pv["spec"]["csi"]["volumeHandle"])
    assert volume.size_gib == 2
    wait_for("the resize Events", lambda: "VolumeResizeSuccessful" in w.reasons("grow"))
    events = w.cluster.events(w.ns, "grow")
    assert [e["message"] for e in events if e["reason"] == "ExternalExpanding"][:1] == [
        EXTERNAL_EXPANDING
    ]


def test_a_deleted_claim_takes_its_pv_and_heketi_volume_with_it_through_the_protections(
    world: tuple[World, Controller],
) -> None:
    w, _ = world
    w.claim("gone")
    bound_claim(w, "gone")
    w.delete_claim("gone")
    wait_for("the claim gone", lambda: not w.claim_named("gone"))
    wait_for("the PV gone", lambda: not w.volumes())
    assert w.heketi_volumes() == {}


def test_a_claim_deleted_while_its_volume_is_being_created_leaves_nothing_behind(
    world: tuple[World, Controller],
) -> None:
    w, _ = world
    if w.target.server is not None:
        w.target.server.set_latency(500)  # the create is still running in Heketi
    w.claim("early")
    wait_for("the intent recorded", lambda: annotations.PVC_FINALIZER
             in (w.claim_named("early")["metadata"].get("finalizers") or []))  # fmt: skip
    w.delete_claim("early")
    wait_for("the claim gone", lambda: not w.claim_named("early"))
    wait_for("no PV", lambda: not w.volumes())
    wait_for("no Heketi volume", lambda: not w.heketi_volumes())


def test_a_claim_of_a_missing_storage_class_is_provisioned_once_the_class_exists(
    world: tuple[World, Controller],
) -> None:
    w, _ = world
    w.cluster.delete("storageclasses", w.storage_class)
    # annotated by the binder before its class was deleted (ours only through it)
    w.claim("orphan", annotations={annotations.ANN_STORAGE_PROVISIONER: annotations.DRIVER_NAME})
    wait_for("ProvisioningFailed", lambda: any(
        f"StorageClass {w.storage_class!r} not found" in e["message"]
        for e in w.cluster.events(w.ns, "orphan")))  # fmt: skip
    assert phase(w, "orphan") == "Pending"
    w.cluster.create(w.class_object())
    bound_claim(w, "orphan")


def test_a_claim_whose_secret_is_missing_fails_naming_it_and_binds_once_it_is_back(
    world: tuple[World, Controller],
) -> None:
    w, _ = world
    secret = w.cluster.get("secrets", SECRET, w.ns) or {}
    w.cluster.delete("secrets", SECRET, w.ns)
    w.claim("nokey")
    wait_for("ProvisioningFailed", lambda: any(
        SECRET in e["message"] for e in w.cluster.events(w.ns, "nokey")
        if e["reason"] == "ProvisioningFailed"))  # fmt: skip
    assert phase(w, "nokey") == "Pending"
    back = {"apiVersion": "v1", "kind": "Secret", "type": secret["type"], "data": secret["data"]}
    w.cluster.create({**back, "metadata": {"name": SECRET, "namespace": w.ns}})
    bound_claim(w, "nokey")


def test_a_volume_is_deleted_after_its_storage_class_is_gone(
    world: tuple[World, Controller],
) -> None:
    w, _ = world
    w.claim("late")
    bound_claim(w, "late")
    w.cluster.delete("storageclasses", w.storage_class)
    w.delete_claim("late")
    wait_for("the PV gone", lambda: not w.volumes())
    assert w.heketi_volumes() == {}


def test_a_claim_heketi_has_no_room_for_shows_one_counted_event_and_deletes_cleanly(
    world: tuple[World, Controller],
) -> None:
    """Each retry fails the same way: `kubectl describe pvc` shows one ProvisioningFailed
    whose count grows (the recorder patches the Event, as client-go's correlator does).
    Deleted then, the claim holds only our intent: the controller looks the PV up in
    the API (its cache has none) and lets the claim go with nothing left behind."""
    w, _ = world
    w.claim("huge", size="100000Gi")

    def failed() -> dict[str, object] | None:
        events = [e for e in w.cluster.events(w.ns, "huge") if e["reason"] == "ProvisioningFailed"]
        return events[0] if len(events) == 1 and events[0].get("count", 1) >= 2 else None

    event = wait_for("the ProvisioningFailed Event counted twice", failed)
    assert "No space" in str(event["message"])
    assert annotations.PVC_FINALIZER in (w.claim_named("huge")["metadata"].get("finalizers") or [])
    assert phase(w, "huge") == "Pending"
    w.delete_claim("huge")
    wait_for("the claim gone", lambda: not w.claim_named("huge"))
    assert w.volumes() == [] and w.heketi_volumes() == {}
