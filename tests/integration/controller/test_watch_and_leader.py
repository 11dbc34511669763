"""Watches that expire or drop, and two controllers electing a leader."""

from provisioner.controller.controller import Controller
from tests.integration.controller.conftest import SYSTEM_NS, Cluster, wait_for


def test_claims_made_while_the_watch_history_was_compacted_are_not_missed(
    running: Cluster,
) -> None:
    controller = running.controllers[0]
    running.claim("before")
    running.wait_bound("before")
    relists = controller.claims.relists
    # a change elsewhere moves the store past the claims watch's version, which the
    # compaction then makes too old: the re-watch gets 410 Gone
    running.kube.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bump", "namespace": "apps"}}
    )
    running.kube.compact()
    running.kube.cut_watches()
    running.claim("after")
    running.wait_bound("after")
    wait_for("a relist after 410", lambda: controller.claims.relists > relists)


def test_claims_made_across_dropped_watch_connections_are_not_missed(running: Cluster) -> None:
    for i in range(6):
        running.claim(f"c{i}")
        running.kube.cut_watches()
    for i in range(6):
        running.wait_bound(f"c{i}")
    assert len(running.heketi.volumes()) == 6


def test_a_list_failing_at_start_is_retried_until_the_caches_sync(cluster: Cluster) -> None:
    cluster.storage_class()
    cluster.kube.fail_next(verb="list", path_regex="persistentvolumeclaims", count=3, status=503)
    cluster.start_controller()
    cluster.claim()
    cluster.wait_bound()


def _lease_holder(cluster: Cluster) -> str:
    lease = cluster.kube.get("leases", "glusterfs-csi-heketi-io", SYSTEM_NS) or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def _electing(cluster: Cluster, identity: str) -> Controller:
    return cluster.start_controller(identity=identity, leader_election=cluster.election())


def test_only_the_leader_provisions_and_a_successor_takes_over_after_a_crash(
    cluster: Cluster,
) -> None:
    cluster.storage_class()
    first = _electing(cluster, "first")
    wait_for("first to lead", lambda: first.is_leading())
    second = _electing(cluster, "second")
    wait_for("second to know the leader", second.ready)
    for i in range(3):
        cluster.claim(f"a{i}")
    for i in range(3):
        cluster.wait_bound(f"a{i}")
    assert not second.is_leading()
    wait_for("3 success events", lambda: len(cluster.events(reason="ProvisioningSucceeded")) == 3)
    assert {e["reportingInstance"] for e in cluster.events(reason="ProvisioningSucceeded")} == {
        "first"
    }
    cluster.stop_controller(first, release=False)  # a crash: the lease is not released
    wait_for("second to take over", second.is_leading, timeout=2.0 + 3.0)
    assert _lease_holder(cluster) == "second"
    for i in range(3):
        cluster.claim(f"b{i}")
    for i in range(3):
        cluster.wait_bound(f"b{i}")
    assert len(cluster.heketi.volumes()) == 6
    assert len(cluster.kube.list("persistentvolumes")) == 6


def test_a_stopping_leader_releases_the_lease_for_an_immediate_successor(
    cluster: Cluster,
) -> None:
    cluster.storage_class()
    first = cluster.start_controller(
        identity="first", leader_election=cluster.election(lease_duration=30.0, renew_deadline=20.0)
    )
    wait_for("first to lead", first.is_leading)
    second = cluster.start_controller(
        identity="second",
        leader_election=cluster.election(lease_duration=30.0, renew_deadline=20.0),
    )
    cluster.stop_controller(first)  # SIGTERM path: drain and release
    wait_for("second to lead well before the 30 s lease ends", second.is_leading, timeout=5.0)
    cluster.claim()
    cluster.wait_bound()


def test_a_leader_that_cannot_renew_stops_acting(cluster: Cluster) -> None:
    cluster.storage_class()
    leader = _electing(cluster, "only")
    wait_for("leading", leader.is_leading)
    cluster.kube.fail_next(verb="get", path_regex="/leases/", count=10_000, status=503)
    # is_leading() turns False first (acting stops at once), the lost-leadership
    # callback follows on the election thread: wait for it, do not race it
    wait_for("stepped down", lambda: not leader.is_leading(), timeout=5.0)
    wait_for("lost leadership reported", leader.lost_leadership.is_set, timeout=5.0)
    cluster.claim()
    cluster.claim("second")
    wait_for("claims seen", lambda: len(leader.claims) == 2)
    assert cluster.heketi.volumes() == []
