"""The issue-12 crash scenario on any Heketi and any Kubernetes (the API test server, or
a real cluster with `make contract-kube`): a burst of claims through the
`glusterfs-provisioner controller` process, the elected leader, SIGKILLed mid-burst and
started again (it takes the Lease over once the dead leader's expires).
Every claim binds exactly once; claims deleted while it was down leave no volume;
deleting every claim leaves no volume behind (no orphans)."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.clusters import Cluster
from testbed.controller_world import Controller, Target, World
from tests.contract.controller_world import wait_for, world_on


@pytest.fixture
def world(cluster: Cluster, target: Target, tmp_path: Path) -> Iterator[tuple[World, Controller]]:
    with world_on(cluster, target, tmp_path, "crash") as made:
        yield made


def crash_mid_burst(w: World, controller: Controller, count: int) -> None:
    if w.target.server is not None:
        w.target.server.set_latency(100)  # creates are still running in Heketi at the crash
    controller.start()
    for i in range(count):
        w.claim(f"c{i:03d}")
    wait_for("a quarter of the claims bound", lambda: len(w.bound()) >= count // 4)
    controller.kill()
    print(f"\ncrash: the leader killed with {len(w.bound())} of {count} claims bound")


def test_a_leader_killed_mid_burst_binds_every_claim_once_and_leaves_no_orphan(
    world: tuple[World, Controller],
) -> None:
    w, controller = world
    count = 200
    crash_mid_burst(w, controller, count)
    restarted = time.monotonic()
    controller.start()
    wait_for("every claim bound", lambda: len(w.bound()) == count)
    print(f"crash: all {count} bound {time.monotonic() - restarted:.1f} s after the restart")
    volumes = w.heketi_volumes()
    pvs = w.volumes()
    assert len(volumes) == count == len(pvs)
    assert {pv["spec"]["csi"]["volumeHandle"] for pv in pvs} == set(volumes)
    for i in range(count):
        w.delete_claim(f"c{i:03d}")
    wait_for("every volume deleted", lambda: not w.heketi_volumes() or None)
    wait_for("every PV gone", lambda: not w.volumes() or None)
    print(f"crash: claims deleted, {len(w.heketi_volumes())} volumes left (orphans)")


def test_claims_deleted_while_the_controller_was_down_leave_no_volume(
    world: tuple[World, Controller],
) -> None:
    w, controller = world
    count = 60
    crash_mid_burst(w, controller, count)
    gone = [f"c{i:03d}" for i in range(0, count, 3)]  # bound ones and pending ones alike
    for name in gone:
        w.delete_claim(name)
    controller.start()
    wait_for("the other claims bound", lambda: len(w.bound()) == count - len(gone))
    wait_for(
        "only the kept claims' volumes",
        lambda: len(w.heketi_volumes()) == count - len(gone) or None,
    )
    wait_for("the deleted claims gone", lambda: len(w.claims()) == count - len(gone))
    # A claim deleted while its create was running may still have been bound from a
    # cache that had not seen the deletion; its PV is then Released and deleted.
    wait_for("only the kept claims' PVs", lambda: len(w.volumes()) == count - len(gone) or None)
    assert len(w.heketi_volumes()) == count - len(gone)
