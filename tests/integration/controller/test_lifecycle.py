"""Deletion (Delete / Retain / class gone / Heketi 404 / failures) and expansion."""

import base64
from dataclasses import replace
from typing import Any

from provisioner.controller.controller import Controller
from provisioner.core import annotations
from provisioner.heketi.client import HeketiClient, HeketiConfig
from tests.integration.controller.conftest import (
    APP_NS,
    CLASS,
    FAST_HEKETI,
    HEKETI_KEY,
    SECRET,
    SYSTEM_NS,
    Cluster,
    wait_for,
)


def _provisioned(cluster: Cluster, name: str = "data") -> tuple[dict[str, Any], dict[str, Any]]:
    cluster.claim(name)
    pvc = cluster.wait_bound(name)
    pv = cluster.pv_for(pvc)
    assert pv is not None
    return pvc, pv


def _gone(cluster: Cluster, pv: dict[str, Any]) -> bool:
    return cluster.kube.get("persistentvolumes", pv["metadata"]["name"]) is None


def test_deleting_the_claim_deletes_the_volume_and_the_pv(running: Cluster) -> None:
    _, pv = _provisioned(running)
    running.delete_claim()
    wait_for("the PV gone", lambda: _gone(running, pv))
    assert running.heketi.volumes() == []


def test_deletion_works_after_the_storage_class_is_gone(running: Cluster) -> None:
    _, pv = _provisioned(running)
    running.api_delete(f"/apis/storage.k8s.io/v1/storageclasses/{CLASS}")
    wait_for("the class gone", lambda: running.kube.get("storageclasses", CLASS) is None)
    running.delete_claim()
    wait_for("the PV gone", lambda: _gone(running, pv))
    assert running.heketi.volumes() == []


def test_a_volume_heketi_already_lost_still_lets_the_pv_go(running: Cluster) -> None:
    _, pv = _provisioned(running)
    client = HeketiClient(HeketiConfig(url=running.heketi.url, key=HEKETI_KEY))
    client.delete_volume(pv["spec"]["csi"]["volumeHandle"])
    running.delete_claim()
    wait_for("the PV gone", lambda: _gone(running, pv))


def test_retain_keeps_the_pv_and_the_volume(cluster: Cluster) -> None:
    cluster.storage_class(reclaimPolicy="Retain")
    cluster.start_controller()
    _, pv = _provisioned(cluster)
    cluster.delete_claim()
    wait_for(
        "the PV released",
        lambda: (
            (cluster.kube.get("persistentvolumes", pv["metadata"]["name"]) or {})
            .get("status", {})
            .get("phase")
            == "Released"
        ),
    )
    cluster.claim("marker")  # one more full pass of the queue after the release
    cluster.wait_bound("marker")
    kept = cluster.kube.get("persistentvolumes", pv["metadata"]["name"])
    assert kept is not None and set(kept["metadata"]["finalizers"]) == {
        annotations.PV_FINALIZER,
        annotations.PV_PROTECTION_FINALIZER,
    }
    assert len(cluster.heketi.volumes()) == 2


def test_a_failed_delete_is_reported_on_the_pv_and_retried(running: Cluster) -> None:
    _, pv = _provisioned(running)
    running.heketi.fail_next(
        "volume_delete", status=500, in_queue=True, message="volume is busy: bricks still mounted"
    )
    running.delete_claim()
    event = running.wait_event("VolumeFailedDelete", name=pv["metadata"]["name"])
    assert "volume is busy: bricks still mounted" in event["message"]
    assert event["involvedObject"]["kind"] == "PersistentVolume"
    wait_for("the PV gone", lambda: _gone(running, pv))
    assert running.heketi.volumes() == []


def _resize(cluster: Cluster, size: str, name: str = "data") -> None:
    client = cluster.kube.api_client()
    client.call_api(
        "PATCH",
        f"{cluster.kube.url}/api/v1/namespaces/{APP_NS}/persistentvolumeclaims/{name}",
        {"Content-Type": "application/merge-patch+json"},
        {"spec": {"resources": {"requests": {"storage": size}}}},
    )


def _refusals_reported(cluster: Cluster) -> int:
    """How often a refusal was reported (repeats of one Event raise its count)."""
    return sum(
        int(e.get("count") or 1)
        for e in cluster.events(reason="VolumeResizeFailed")
        if "does not allow volume expansion" in e["message"]
    )


def test_a_refused_claim_is_remembered_once_and_forgotten_when_deleted(cluster: Cluster) -> None:
    cluster.storage_class(allowVolumeExpansion=False)
    controller = cluster.start_controller()
    _provisioned(cluster)
    remembered = controller.claim_reconciler.expander.refusals
    _resize(cluster, "3Gi")
    wait_for("the first refusal", lambda: _refusals_reported(cluster) == 1)
    _resize(cluster, "4Gi")  # a new size: reported again, still one entry for the claim
    wait_for("the second refusal", lambda: _refusals_reported(cluster) == 2)
    assert len(remembered) == 1
    cluster.delete_claim()
    wait_for("the refusal forgotten", lambda: len(remembered) == 0)


def test_a_refused_claim_is_forgotten_once_its_class_allows_the_expansion(
    cluster: Cluster,
) -> None:
    cluster.storage_class(allowVolumeExpansion=False)
    controller = cluster.start_controller()
    _provisioned(cluster)
    _resize(cluster, "3Gi")
    wait_for("the refusal", lambda: _refusals_reported(cluster))
    client = cluster.kube.api_client()
    client.call_api(
        "PATCH",
        f"{cluster.kube.url}/apis/storage.k8s.io/v1/storageclasses/{CLASS}",
        {"Content-Type": "application/merge-patch+json"},
        {"allowVolumeExpansion": True},
    )
    wait_for(
        "the class change seen",
        lambda: (controller.classes.get(CLASS) or {}).get("allowVolumeExpansion"),
    )
    _resize(cluster, "4Gi")
    wait_for("claim capacity 4Gi", lambda: _claim_capacity(cluster) == "4Gi")
    assert len(controller.claim_reconciler.expander.refusals) == 0


def _expands_sent(cluster: Cluster) -> int:
    return sum(
        1 for r in cluster.heketi.requests if r.method == "POST" and r.path.endswith("/expand")
    )


def test_a_restart_while_an_expand_runs_sends_no_second_expand(cluster: Cluster) -> None:
    cluster.storage_class(allowVolumeExpansion=True)
    first = cluster.start_controller(drain_seconds=0.1)
    _, pv = _provisioned(cluster)
    cluster.heketi.set_latency(2500)  # the expand runs while the controller is replaced
    _resize(cluster, "4Gi")
    wait_for("the expand sent", lambda: _expands_sent(cluster) == 1)
    recorded = cluster.kube.get("persistentvolumes", pv["metadata"]["name"]) or {}
    assert annotations.ANN_EXPAND_IN_FLIGHT in recorded["metadata"].get("annotations", {})
    cluster.stop_controller(first, release=False)  # crash: its worker is still waiting
    # Heketi (unlike this test server, which refuses it) would run a second expand
    # sent now and grow the volume twice
    cluster.start_controller(heketi_settings=replace(FAST_HEKETI, operation_deadline=4.0))
    wait_for("claim capacity 4Gi", lambda: _claim_capacity(cluster) == "4Gi", timeout=20)
    assert _expands_sent(cluster) == 1
    assert [v["size"] for v in cluster.heketi.volumes()] == [4]
    settled = cluster.kube.get("persistentvolumes", pv["metadata"]["name"]) or {}
    assert settled["spec"]["capacity"]["storage"] == "4Gi"
    assert annotations.ANN_EXPAND_IN_FLIGHT not in settled["metadata"].get("annotations", {})


def _claim_capacity(cluster: Cluster) -> str:
    pvc = cluster.get_claim() or {}
    return str(((pvc.get("status") or {}).get("capacity") or {}).get("storage", ""))


def test_a_grown_claim_grows_the_volume_the_pv_and_the_claim_status(running: Cluster) -> None:
    _, pv = _provisioned(running)
    _resize(running, "5Gi")
    wait_for("claim capacity 5Gi", lambda: _claim_capacity(running) == "5Gi")
    [volume] = running.heketi.volumes()
    assert volume["size"] == 5
    grown = running.kube.get("persistentvolumes", pv["metadata"]["name"])
    assert grown is not None and grown["spec"]["capacity"]["storage"] == "5Gi"
    conditions = (running.get_claim() or {}).get("status", {}).get("conditions") or []
    assert not [c for c in conditions if c.get("type") == "Resizing"]
    running.wait_event("VolumeResizeSuccessful")


def _rotate_heketi_key(cluster: Cluster, key: str) -> None:
    """Heketi restarted with a new admin key, and the admin updates the Secret."""
    cluster.heketi.set_admin_key(key)
    cluster.kube.api_client().call_api(
        "PATCH",
        f"{cluster.kube.url}/api/v1/namespaces/{SYSTEM_NS}/secrets/{SECRET}",
        {"Content-Type": "application/merge-patch+json"},
        {"data": {"key": base64.b64encode(key.encode()).decode()}},
    )


def test_an_expansion_after_a_key_rotation_rereads_the_secret_at_once(cluster: Cluster) -> None:
    cluster.storage_class(allowVolumeExpansion=True)
    # A Secret cache far longer than the test: only re-reading on refusal can succeed.
    cluster.start_controller(secret_ttl_seconds=3600.0)
    _provisioned(cluster)
    _rotate_heketi_key(cluster, "rotated-admin-key")
    _resize(cluster, "5Gi")
    wait_for("claim capacity 5Gi", lambda: _claim_capacity(cluster) == "5Gi")
    [volume] = cluster.heketi.volumes()
    assert volume["size"] == 5


def test_a_deletion_after_a_key_rotation_rereads_the_secret_at_once(cluster: Cluster) -> None:
    cluster.storage_class()
    cluster.start_controller(secret_ttl_seconds=3600.0)
    _, pv = _provisioned(cluster)
    _rotate_heketi_key(cluster, "rotated-admin-key")
    cluster.delete_claim()
    wait_for("the PV gone", lambda: _gone(cluster, pv))
    assert cluster.heketi.volumes() == []


def _expansions(controller: Controller) -> float:
    value = controller.metrics.registry.get_sample_value(
        "glusterfs_provisioner_operations_total", {"operation": "expand", "result": "success"}
    )
    return value or 0.0


def test_a_lagging_pv_watch_does_not_restart_a_finished_resize(cluster: Cluster) -> None:
    cluster.storage_class(allowVolumeExpansion=True)
    controller = cluster.start_controller(workers=1)
    _, pv = _provisioned(cluster)
    name = pv["metadata"]["name"]
    wait_for(
        "the cached PV bound",
        lambda: ((controller.pvs.get(name) or {}).get("status") or {}).get("phase") == "Bound",
    )
    controller.pvs.stop()  # the PV watch lags: the cache keeps showing 2Gi
    _resize(cluster, "5Gi")
    wait_for("the expansion done", lambda: _expansions(controller) == 1)
    assert _claim_capacity(cluster) == "5Gi"
    # one worker: the claim's events from the resize are handled before the marker's
    cluster.claim("marker")
    cluster.wait_bound("marker")
    conditions = (cluster.get_claim() or {}).get("status", {}).get("conditions") or []
    assert not [c for c in conditions if c.get("type") == "Resizing"]
    assert sorted(v["size"] for v in cluster.heketi.volumes()) == [2, 5]


def test_a_claim_grown_again_while_the_pv_watch_lags_grows_once_the_pv_event_arrives(
    running: Cluster,
) -> None:
    controller = running.controllers[0]
    _, pv = _provisioned(running)
    name = pv["metadata"]["name"]
    wait_for(
        "the cached PV bound",
        lambda: ((controller.pvs.get(name) or {}).get("status") or {}).get("phase") == "Bound",
    )
    running.kube.fail_next(
        verb="watch", path_regex=r"^/api/v1/persistentvolumes$", count=100_000, status=503
    )
    running.kube.cut_watches()  # the PV watch cannot come back: its cache keeps 2Gi
    _resize(running, "5Gi")
    wait_for("claim capacity 5Gi", lambda: _claim_capacity(running) == "5Gi")
    _resize(running, "8Gi")  # seen while the cached PV still shows 2Gi: wait for the PV
    running.kube.clear_faults()
    wait_for("claim capacity 8Gi", lambda: _claim_capacity(running) == "8Gi")
    assert [v["size"] for v in running.heketi.volumes()] == [8]


def test_a_resizing_condition_left_on_a_settled_claim_is_cleared(running: Cluster) -> None:
    _provisioned(running)
    client = running.kube.api_client()
    stuck = {"type": "Resizing", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
    client.call_api(
        "PATCH",
        f"{running.kube.url}/api/v1/namespaces/{APP_NS}/persistentvolumeclaims/data/status",
        {"Content-Type": "application/merge-patch+json"},
        {"status": {"conditions": [stuck]}},
    )
    wait_for(
        "the Resizing condition cleared",
        lambda: not ((running.get_claim() or {}).get("status") or {}).get("conditions"),
    )
    assert _claim_capacity(running) == "2Gi"


def test_a_failed_expansion_is_reported_with_heketis_message_and_retried(running: Cluster) -> None:
    _provisioned(running)
    running.heketi.fail_next(
        "volume_expand", status=500, in_queue=True, message="No space to expand the volume"
    )
    _resize(running, "4Gi")
    event = running.wait_event("VolumeResizeFailed")
    assert "No space to expand the volume" in event["message"]
    wait_for("claim capacity 4Gi", lambda: _claim_capacity(running) == "4Gi")


def test_expansion_a_class_does_not_allow_is_refused_with_an_event(cluster: Cluster) -> None:
    cluster.storage_class(allowVolumeExpansion=False)
    cluster.start_controller()
    _provisioned(cluster)
    _resize(cluster, "4Gi")
    event = cluster.wait_event("VolumeResizeFailed")
    assert "does not allow volume expansion" in event["message"]
    assert cluster.heketi.volumes()[0]["size"] == 2
