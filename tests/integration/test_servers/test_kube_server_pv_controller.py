"""The binder as kube-controller-manager's PV and PV-protection controllers behave when a
bound claim's PV disappears and comes back (what `migrate` relies on).

pv_controller.go `syncBoundClaim`: volume gone → claim phase Lost + Warning ClaimLost;
volume back with claimRef.uid == claim UID → bound again; another UID → ClaimMisbound.
pv_protection_controller.go `processPV`: finalizer added to PVs; lifted from a deleting
PV only while it is not Bound.
"""

import time
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes.client as k8s
import pytest

from testbed.kube.server import KubeTestServer
from tests.integration.test_servers.kube_support import pv_body, pvc_body

NS = "default"
PROTECTION = "kubernetes.io/pv-protection"
#: Generous: the binder reacts within milliseconds, the machine may be loaded.
DEADLINE = 30.0


@pytest.fixture
def kube() -> Iterator[KubeTestServer]:
    with KubeTestServer(binder=True, pv_protection=True) as server:
        yield server


def _eventually(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _phase(kube: KubeTestServer, plural: str, name: str) -> str:
    obj = kube.get(plural, name, NS if plural == "persistentvolumeclaims" else None) or {}
    return str((obj.get("status") or {}).get("phase", ""))


def _bound_pair(kube: KubeTestServer) -> dict[str, Any]:
    kube.create(pv_body("pv-a", claim=(NS, "claim-a"), reclaim="Retain"))
    claim = kube.create(pvc_body("claim-a", volume_name="pv-a"))
    _eventually("the claim bound", lambda: _phase(kube, "persistentvolumeclaims", "claim-a")
                == "Bound")  # fmt: skip
    return claim


def _protected(kube: KubeTestServer, name: str) -> bool:
    return PROTECTION in ((kube.get("persistentvolumes", name) or {}).get("metadata", {})
                          .get("finalizers") or [])  # fmt: skip


def _delete_pv_for_good(kube: KubeTestServer) -> None:
    core = k8s.CoreV1Api(kube.api_client())
    core.delete_persistent_volume("pv-a")
    pv = kube.get("persistentvolumes", "pv-a") or {}
    finalizers = pv["metadata"]["finalizers"]
    core.patch_persistent_volume("pv-a", [{"op": "remove",
        "path": f"/metadata/finalizers/{finalizers.index(PROTECTION)}"}])  # fmt: skip
    _eventually("the PV gone", lambda: kube.get("persistentvolumes", "pv-a") is None)


def test_every_pv_gets_the_protection_finalizer(kube: KubeTestServer) -> None:
    _bound_pair(kube)
    _eventually("the finalizer", lambda: _protected(kube, "pv-a"))


def test_a_bound_pv_being_deleted_stays_until_it_is_no_longer_bound(kube: KubeTestServer) -> None:
    _bound_pair(kube)
    _eventually("the finalizer", lambda: _protected(kube, "pv-a"))
    core = k8s.CoreV1Api(kube.api_client())
    core.delete_persistent_volume("pv-a")
    # the binder handles events in order: once it protected a PV created after the delete,
    # it has seen the deleting PV (and kept its finalizer, as the PV is Bound)
    kube.create(pv_body("pv-marker"))
    _eventually("the marker protected", lambda: _protected(kube, "pv-marker"))
    pv = kube.get("persistentvolumes", "pv-a") or {}
    assert pv["metadata"]["deletionTimestamp"] and PROTECTION in pv["metadata"]["finalizers"]
    core.delete_namespaced_persistent_volume_claim("claim-a", NS)
    _eventually("the PV gone once released", lambda: kube.get("persistentvolumes", "pv-a")
                is None)  # fmt: skip


def test_a_bound_claim_whose_pv_is_gone_is_lost_with_a_claim_lost_event(
    kube: KubeTestServer,
) -> None:
    _bound_pair(kube)
    _delete_pv_for_good(kube)
    _eventually("the claim Lost", lambda: _phase(kube, "persistentvolumeclaims", "claim-a")
                == "Lost")  # fmt: skip
    claim = kube.get("persistentvolumeclaims", "claim-a", NS) or {}
    assert "capacity" not in claim["status"] and "accessModes" not in claim["status"]
    # the Event follows the status write, as updateClaimStatusWithEvent records it after
    _eventually("the ClaimLost Event", lambda: any(
        e["reason"] == "ClaimLost" for e in kube.list("events", NS)))  # fmt: skip
    (event,) = [e for e in kube.list("events", NS) if e["reason"] == "ClaimLost"]
    assert event["type"] == "Warning"
    assert (
        event["message"] == "Bound claim has lost its PersistentVolume. Data on the volume is lost!"
    )
    assert event["source"] == {"component": "persistentvolume-controller"}


def test_a_lost_claim_is_bound_again_when_a_pv_with_its_uid_returns(kube: KubeTestServer) -> None:
    claim = _bound_pair(kube)
    _delete_pv_for_good(kube)
    _eventually("the claim Lost", lambda: _phase(kube, "persistentvolumeclaims", "claim-a")
                == "Lost")  # fmt: skip
    kube.create(pv_body("pv-a", claim=(NS, "claim-a"), claim_uid=claim["metadata"]["uid"],
                        reclaim="Retain"))  # fmt: skip
    _eventually("the claim Bound again", lambda: _phase(kube, "persistentvolumeclaims",
                                                        "claim-a") == "Bound")  # fmt: skip
    again = kube.get("persistentvolumeclaims", "claim-a", NS) or {}
    assert again["metadata"]["uid"] == claim["metadata"]["uid"]
    assert again["status"]["capacity"] == {"storage": "1Gi"}
    _eventually("the PV Bound", lambda: _phase(kube, "persistentvolumes", "pv-a") == "Bound")


def test_a_lost_claim_stays_lost_when_a_pv_returns_for_another_claim_uid(
    kube: KubeTestServer,
) -> None:
    _bound_pair(kube)
    _delete_pv_for_good(kube)
    _eventually("the claim Lost", lambda: _phase(kube, "persistentvolumeclaims", "claim-a")
                == "Lost")  # fmt: skip
    kube.create(pv_body("pv-a", claim=(NS, "claim-a"), claim_uid="another-uid",
                        reclaim="Retain"))  # fmt: skip
    _eventually("the PV Released", lambda: _phase(kube, "persistentvolumes", "pv-a")
                == "Released")  # fmt: skip
    assert _phase(kube, "persistentvolumeclaims", "claim-a") == "Lost"


def test_a_bound_claim_whose_pv_names_another_claim_uid_is_misbound(
    kube: KubeTestServer,
) -> None:
    _bound_pair(kube)
    core = k8s.CoreV1Api(kube.api_client())
    core.patch_persistent_volume("pv-a", {"spec": {"claimRef": {"uid": "another-uid"}}})
    _eventually("ClaimMisbound", lambda: any(
        e["reason"] == "ClaimMisbound" for e in kube.list("events", NS)))  # fmt: skip
    assert _phase(kube, "persistentvolumeclaims", "claim-a") == "Lost"


def test_a_new_pv_has_the_protection_finalizer_in_the_create_answer(kube: KubeTestServer) -> None:
    created = k8s.CoreV1Api(kube.api_client()).create_persistent_volume(pv_body("pv-new"))
    assert created.metadata.finalizers == [PROTECTION]


def test_without_pv_protection_a_new_pv_has_no_finalizer() -> None:
    with KubeTestServer(binder=True) as plain:
        created = k8s.CoreV1Api(plain.api_client()).create_persistent_volume(pv_body("pv-new"))
    assert created.metadata.finalizers is None
