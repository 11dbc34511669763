"""Crashes, Heketi outages and claims deleted mid-provisioning: one volume, nothing leaked.

A "crash" stops the controller while the servers hold the state of the crash
point (made by failing exactly the next step), then a fresh controller — new
caches, new GID allocator, no memory of the first — must converge.
"""

import base64
import time
from typing import Any

import pytest

from provisioner import names
from testbed.heketi.server import HeketiTestServer
from tests.integration.controller.conftest import (
    APP_NS,
    CLASS,
    HEKETI_KEY,
    SECRET,
    SYSTEM_NS,
    Cluster,
    wait_for,
)

PV_CREATE = r"^/api/v1/persistentvolumes$"
CLAIM_PATCH = rf"^/api/v1/namespaces/{APP_NS}/persistentvolumeclaims/data$"


def _exactly_one_volume_pv_and_bound_claim(cluster: Cluster) -> None:
    pvc = cluster.wait_bound()
    assert len(cluster.heketi.volumes()) == 1
    pvs = cluster.kube.list("persistentvolumes")
    assert [pv["metadata"]["name"] for pv in pvs] == [f"pvc-{pvc['metadata']['uid']}"]
    assert pvs[0]["spec"]["csi"]["volumeHandle"] == cluster.heketi.volumes()[0]["id"]


def test_a_restart_after_a_crash_once_heketi_made_the_volume_makes_no_second(
    cluster: Cluster,
) -> None:
    cluster.storage_class()
    first = cluster.start_controller()
    cluster.kube.fail_next(verb="create", path_regex=PV_CREATE, count=1000, status=500)
    cluster.claim()
    wait_for(
        "the PV create to fail",
        lambda: cluster.kube.count_requests(verb="create", path_regex=PV_CREATE) > 0,
    )
    cluster.stop_controller(first, release=False)
    cluster.kube.clear_faults()
    assert len(cluster.heketi.volumes()) == 1 and cluster.kube.list("persistentvolumes") == []
    cluster.start_controller()
    _exactly_one_volume_pv_and_bound_claim(cluster)


def test_a_restart_after_a_crash_before_the_bind_binds_the_existing_pv(cluster: Cluster) -> None:
    cluster.storage_class()
    cluster.heketi.set_latency(300)  # a window between the intent and the bind
    first = cluster.start_controller()
    cluster.claim()
    wait_for(
        "the intent finalizer",
        lambda: (
            names.PVC_FINALIZER
            in ((cluster.get_claim() or {}).get("metadata", {}).get("finalizers") or [])
        ),
    )
    cluster.kube.fail_next(verb="patch", path_regex=CLAIM_PATCH, count=1000, status=500)
    wait_for("the PV", lambda: cluster.kube.list("persistentvolumes"))
    wait_for(
        "the bind to fail",
        lambda: cluster.kube.count_requests(verb="patch", path_regex=CLAIM_PATCH) > 1,
    )
    cluster.stop_controller(first, release=False)
    cluster.kube.clear_faults()
    cluster.start_controller()
    _exactly_one_volume_pv_and_bound_claim(cluster)


def test_a_lost_heketi_create_response_is_resolved_by_name(running: Cluster) -> None:
    running.heketi.drop_next("volume_create", after_commit=True)
    running.claim()
    _exactly_one_volume_pv_and_bound_claim(running)


def test_claims_are_bound_after_a_heketi_outage(running: Cluster) -> None:
    running.heketi.pause()
    for i in range(3):
        running.claim(f"c{i}")
    running.wait_event("ProvisioningFailed")
    running.heketi.resume()
    for i in range(3):
        running.wait_bound(f"c{i}")
    assert len(running.heketi.volumes()) == 3


def test_a_429_storm_delays_but_does_not_duplicate(running: Cluster) -> None:
    running.heketi.fail_next("volume_create", count=12, status=429, message="Too many requests")
    for i in range(4):
        running.claim(f"c{i}")
    for i in range(4):
        running.wait_bound(f"c{i}")
    assert len(running.heketi.volumes()) == 4


def test_a_lost_heketi_queue_entry_is_resolved_by_name(running: Cluster) -> None:
    running.heketi.fail_next("queue_get", count=1, status=404, message="Not found")
    running.claim()
    _exactly_one_volume_pv_and_bound_claim(running)


def test_heketis_error_message_reaches_the_provisioning_failed_event(running: Cluster) -> None:
    running.heketi.fail_next(
        "volume_create",
        status=500,
        in_queue=True,
        message="No space: replica 3 needs 3 nodes with free devices",
    )
    running.claim()
    event = running.wait_event("ProvisioningFailed")
    assert "No space: replica 3 needs 3 nodes with free devices" in event["message"]
    running.wait_bound()


def _deleting_claim_mid_provisioning(cluster: Cluster) -> dict[str, Any]:
    cluster.kube.fail_next(verb="create", path_regex=PV_CREATE, count=1000, status=500)
    created = cluster.claim()
    wait_for("the Heketi volume", lambda: cluster.heketi.volumes())
    pvc = cluster.get_claim()
    assert pvc is not None and names.PVC_FINALIZER in pvc["metadata"]["finalizers"]
    cluster.delete_claim()
    return created


def test_a_claim_deleted_mid_provisioning_leaves_no_volume(running: Cluster) -> None:
    _deleting_claim_mid_provisioning(running)
    running.kube.clear_faults()
    wait_for("the claim gone", lambda: running.get_claim() is None)
    wait_for("the volume deleted", lambda: running.heketi.volumes() == [])
    wait_for("no PV", lambda: running.kube.list("persistentvolumes") == [])


def test_a_claim_deleted_while_the_controller_was_down_leaves_no_volume(cluster: Cluster) -> None:
    cluster.storage_class()
    first = cluster.start_controller()
    _deleting_claim_mid_provisioning(cluster)
    cluster.stop_controller(first, release=False)
    cluster.kube.clear_faults()
    assert cluster.get_claim() is not None  # held by our finalizer
    cluster.start_controller()
    wait_for("the claim gone", lambda: cluster.get_claim() is None)
    wait_for("the volume deleted", lambda: cluster.heketi.volumes() == [])
    wait_for("no PV", lambda: cluster.kube.list("persistentvolumes") == [])


def test_the_gid_of_a_claim_deleted_mid_provisioning_is_freed(cluster: Cluster) -> None:
    cluster.storage_class(parameters=cluster.class_parameters(gidMin="3000", gidMax="3000"))
    cluster.start_controller()
    _deleting_claim_mid_provisioning(cluster)  # PV creation keeps failing: no PV ever
    wait_for("the claim gone", lambda: cluster.get_claim() is None)
    assert cluster.heketi.volumes() == [] and cluster.kube.list("persistentvolumes") == []
    cluster.kube.clear_faults()
    cluster.claim("second")  # the range holds one GID: only a freed one lets it bind
    pv = cluster.pv_for(cluster.wait_bound("second"))
    assert pv is not None and pv["metadata"]["annotations"][names.ANN_GID] == "3000"


def _gid_class(cluster: Cluster, name: str, *, secret: str) -> None:
    cluster.storage_class(
        name,
        parameters=cluster.class_parameters(secretName=secret, gidMin="5000", gidMax="5001"),
    )


def test_a_restart_after_a_crash_once_heketi_made_the_volume_hands_its_gid_to_no_other_claim(
    cluster: Cluster,
) -> None:
    cluster.kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/glusterfs",
            "metadata": {"name": "heketi-first", "namespace": SYSTEM_NS},
            "data": {"key": base64.b64encode(HEKETI_KEY.encode()).decode()},
        }
    )
    _gid_class(cluster, "first", secret="heketi-first")
    _gid_class(cluster, "second", secret=SECRET)
    first = cluster.start_controller()
    cluster.kube.fail_next(verb="create", path_regex=PV_CREATE, count=1000, status=500)
    cluster.claim("first", storage_class="first")
    wait_for("the first claim's volume", lambda: cluster.heketi.volumes())
    cluster.stop_controller(first, release=False)  # crash: volume made, no PV
    cluster.kube.clear_faults()
    # the restarted controller cannot retry the first claim (its Secret cannot be read)
    # until the second claim got a GID: only a durable record of the first claim's GID
    # keeps it from being handed out again
    cluster.kube.fail_next(verb="get", path_regex=r"/secrets/heketi-first$", count=1000)
    cluster.start_controller()
    cluster.claim("second", storage_class="second")
    cluster.wait_bound("second")
    cluster.kube.clear_faults()
    cluster.wait_bound("first")
    pv_gids = sorted(
        pv["metadata"]["annotations"][names.ANN_GID]
        for pv in cluster.kube.list("persistentvolumes")
    )
    assert pv_gids == ["5000", "5001"]
    assert sorted(v["gid"] for v in cluster.heketi.volumes()) == [5000, 5001]


def test_a_missing_secret_is_reported_and_retried(cluster: Cluster) -> None:
    cluster.storage_class(parameters=cluster.class_parameters(secretName="absent"))
    cluster.start_controller()
    cluster.claim()
    event = cluster.wait_event("ProvisioningFailed")
    assert "Secret storage/absent (the Heketi key Secret) does not exist" in event["message"]
    assert cluster.heketi.volumes() == []


def test_a_wrong_key_reports_heketis_refusal_without_the_key(cluster: Cluster) -> None:
    import base64

    cluster.kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/glusterfs",
            "metadata": {"name": "wrong", "namespace": "storage"},
            "data": {"key": base64.b64encode(b"not-the-key").decode()},
        }
    )
    cluster.storage_class(parameters=cluster.class_parameters(secretName="wrong"))
    cluster.start_controller()
    cluster.claim()
    event = cluster.wait_event("ProvisioningFailed")
    assert "not-the-key" not in event["message"]
    assert "Invalid JWT token" in event["message"]  # Heketi's own words
    assert cluster.heketi.volumes() == []


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"restuser": "admin"}, "'resturl' is required"),
        ({"resturl": "HEKETI", "colour": "blue"}, "unknown StorageClass parameter 'colour'"),
        ({"resturl": "HEKETI", "volumetype": "mirror:2"}, "volumetype"),
        ({"resturl": "HEKETI", "gidMin": "5000", "gidMax": "4000"}, "'gidMin' (5000)"),
        ({"resturl": "HEKETI", "secretName": "heketi"}, "'secretNamespace' and 'secretName'"),
    ],
    ids=["no-resturl", "unknown-key", "bad-volumetype", "gid-range", "secret-half"],
)
def test_bad_class_parameters_become_events_with_the_parser_message(
    cluster: Cluster, parameters: dict[str, str], message: str
) -> None:
    resolved = {k: (cluster.heketi.url if v == "HEKETI" else v) for k, v in parameters.items()}
    cluster.storage_class(parameters=resolved)
    cluster.start_controller()
    cluster.claim()
    event = cluster.wait_event("ProvisioningFailed")
    assert message in event["message"]
    assert cluster.heketi.volumes() == []


def _heketi_restarted_mid_create(cluster: Cluster) -> None:
    """A claim whose create is running when Heketi restarts: as real Heketi, the create
    stays pending and its name taken (retries answer "already in use") until cleaned."""
    cluster.heketi.set_latency(60_000)
    cluster.claim()
    wait_for("the create accepted", lambda: cluster.heketi.count_status(202))
    cluster.heketi.restart()
    cluster.heketi.set_latency(0)
    wait_for("a retry refused: name in use", lambda: cluster.heketi.count_status(500))
    assert cluster.heketi.volumes() == [] and cluster.heketi.stale_operations() == 1


def test_a_heketi_restart_mid_create_binds_the_claim_once_the_stale_create_is_cleaned(
    running: Cluster,
) -> None:
    _heketi_restarted_mid_create(running)
    running.heketi.clean_stale_operations()
    _exactly_one_volume_pv_and_bound_claim(running)


def test_a_claim_deleted_while_its_create_was_pending_in_heketi_leaves_no_volume(
    running: Cluster,
) -> None:
    _heketi_restarted_mid_create(running)
    running.delete_claim()
    running.heketi.clean_stale_operations()
    wait_for("the claim gone", lambda: running.get_claim() is None)
    # a retry that read the claim before its deletion reached the cache may still have
    # made the volume and a PV; that PV is then released and deleted with its volume
    wait_for(
        "no volume and no PV left",
        lambda: running.heketi.volumes() == [] and running.kube.list("persistentvolumes") == [],
    )


def test_a_class_no_topology_can_place_is_reported_once_with_heketis_reason_not_retried(
    cluster: Cluster,
) -> None:
    # the test Heketi's devices carry no tags: no node has a device tagged disktype=nvme
    nvme = cluster.class_parameters(volumeoptions="user.heketi.device-tag-match disktype=nvme")
    cluster.storage_class("nvme", parameters=nvme)
    cluster.storage_class()
    cluster.start_controller()
    cluster.claim("fast", storage_class="nvme")
    event = cluster.wait_event("ProvisioningFailed", name="fast")
    assert event["message"] == (
        "failed to provision a volume with StorageClass 'nvme': Failed to allocate new volume: "
        "No space: a brick set needs 3 nodes with devices tagged disktype=nvme, no cluster "
        "has more than 0; tag more devices or add nodes, or use a class that asks for less"
    )
    # once another claim is provisioned, the refused one is left alone: the fast-backoff
    # retry loop of other failures would send several creates a second. It was tried
    # again only after the controller's own writes to it (its intent), a bounded few.
    cluster.claim("plain")
    cluster.wait_bound("plain")

    def refused_creates() -> int:
        return sum(1 for r in cluster.heketi.requests if (r.path, r.status) == ("/volumes", 500))

    # under load the last of those bounded retries can still be on its way: wait until the
    # count holds for a second (at most 20 s), then it must be small and stay put
    settled, deadline = refused_creates(), time.monotonic() + 20.0
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = refused_creates()
        if now == settled:
            break
        settled = now
    assert settled <= 3
    time.sleep(1.0)
    assert refused_creates() == settled
    (refused,) = cluster.events(reason="ProvisioningFailed", name="fast")
    assert refused.get("count", 1) == 1
    fast = cluster.get_claim("fast")
    assert fast is not None and fast["spec"].get("volumeName") is None


@pytest.mark.parametrize(
    "changed",
    [{"resturl": "SECOND"}, {"volumenameprefix": "other"}],
    ids=["another-resturl", "another-volumenameprefix"],
)
def test_a_retry_after_the_class_was_recreated_finishes_the_volume_its_claim_recorded(
    cluster: Cluster, changed: dict[str, str]
) -> None:
    with HeketiTestServer(admin_key=HEKETI_KEY) as second:
        cluster.storage_class()
        first = cluster.start_controller()
        cluster.kube.fail_next(verb="create", path_regex=PV_CREATE, count=1000, status=500)
        cluster.claim()
        wait_for("the first attempt's volume", lambda: cluster.heketi.volumes())
        cluster.stop_controller(first, release=False)  # crash: intent and volume, no PV
        recorded = (cluster.get_claim() or {})["metadata"]["annotations"]
        cluster.api_delete(f"/apis/storage.k8s.io/v1/storageclasses/{CLASS}")
        edits = {k: (second.url if v == "SECOND" else v) for k, v in changed.items()}
        cluster.storage_class(parameters=cluster.class_parameters(**edits))
        cluster.kube.clear_faults()
        cluster.start_controller()
        pv = cluster.pv_for(cluster.wait_bound())
        (volume,) = cluster.heketi.volumes()
        assert second.volumes() == []
        assert pv is not None and pv["spec"]["csi"]["volumeHandle"] == volume["id"]
        assert volume["name"] == recorded[names.ANN_HEKETI_VOLUME_NAME]
        assert pv["metadata"]["annotations"][names.ANN_HEKETI_URL] == cluster.heketi.url
        assert pv["spec"]["csi"]["volumeAttributes"]["volume"] == volume["name"]
