"""An interrupted `migrate apply` (or rollback) loses nothing, and a rerun finishes it."""

from enum import Enum

import pytest

from provisioner.core import annotations
from provisioner.migrate.rollback import Back
from provisioner.migrate.steps import Step
from tests.integration.migrate.world import NS, World


class Interrupted(Exception):
    """Stands for a crash or Ctrl-C between two steps."""


def _interrupt_after(wanted: Enum):  # type: ignore[no-untyped-def]
    def checkpoint(pv: str, step: Enum) -> None:
        if step == wanted:
            raise Interrupted(f"{pv}: stopped after {step.name}")

    return checkpoint


def _settled(world: World, pv_name: str, claim_name: str, claim_uid: str) -> dict:
    world.wait_bound(claim_name, pv_name)
    pvs = [p for p in world.kube.list("persistentvolumes") if p["metadata"]["name"] == pv_name]
    assert len(pvs) == 1
    pv = pvs[0]
    claim = world.kube.get("persistentvolumeclaims", claim_name, NS) or {}
    assert claim["metadata"]["uid"] == claim_uid
    assert claim["spec"]["volumeName"] == pv_name
    assert pv["spec"]["claimRef"]["uid"] == claim_uid
    return pv


#: Every write apply makes, per kind: an interruption after each one is a crash point
#: (after CREATE stands for one during the wait for the bind, after UNPROTECT for one
#: during the wait for the PV to go). A static PV is Retain already: no RETAIN write.
_WRITES = {
    "static": (Step.RECORD, Step.DELETE, Step.UNPROTECT, Step.CREATE),
    "heketi": (Step.RECORD, Step.RETAIN, Step.DELETE, Step.UNPROTECT, Step.CREATE),
}
_CRASH_POINTS = [
    pytest.param(kind, step, id=f"{kind}-after-{step.name.lower()}")
    for kind, steps in _WRITES.items()
    for step in steps
]


@pytest.mark.parametrize(("kind", "step"), _CRASH_POINTS)
def test_apply_interrupted_after_any_step_is_finished_by_a_rerun(
    world: World, kind: str, step: Step
) -> None:
    if kind == "static":
        world.add_static()
        pv_name, claim_name, volume_id = "gluster-pv", "data", ""
    else:
        pv_name, volume_id = world.add_heketi()
        claim_name = "db"
    uid = world.kube.get("persistentvolumeclaims", claim_name, NS)["metadata"]["uid"]  # type: ignore[index]
    world.checkpoint = _interrupt_after(step)
    with pytest.raises(Interrupted):
        world.migrate("apply", "--all")
    world.checkpoint = None
    assert world.migrate("plan") == 0, world.output
    assert world.migrate("apply", "--all") == 0, world.output
    pv = _settled(world, pv_name, claim_name, uid)
    assert pv["spec"]["csi"]["driver"] == annotations.DRIVER_NAME
    assert "glusterfs" not in pv["spec"]
    if volume_id:
        assert [v["id"] for v in world.heketi.volumes()] == [volume_id]
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert world.kube.get("endpoints", "glusterfs-cluster" if kind == "static"
                          else "glusterfs-dynamic-db", NS) is not None  # fmt: skip


def test_a_run_stopped_while_the_pv_is_gone_shows_as_interrupted_in_the_plan(
    world: World,
) -> None:
    world.add_static()
    world.checkpoint = _interrupt_after(Step.UNPROTECT)
    with pytest.raises(Interrupted):
        world.migrate("apply", "--all")
    world.checkpoint = None
    assert world.kube.get("persistentvolumes", "gluster-pv") is None
    assert world.migrate("plan") == 0
    assert "interrupted" in world.output
    assert "gluster-pv: 1. create the CSI PV" in world.output


@pytest.mark.parametrize("verb", ["patch", "delete", "create"])
def test_an_api_error_stops_apply_without_loss_and_a_rerun_finishes(
    world: World, verb: str
) -> None:
    world.add_static()
    uid = world.kube.get("persistentvolumeclaims", "data", NS)["metadata"]["uid"]  # type: ignore[index]
    world.kube.fail_next(verb=verb, path_regex="/persistentvolumes", status=500)
    assert world.migrate("apply", "--all") == 1
    assert "NOT DONE" in world.output and "run apply again" in world.output
    assert world.migrate("apply", "--all") == 0, world.output
    _settled(world, "gluster-pv", "data", uid)


#: Every write rollback makes after a finished apply (RESTORE_POLICY only follows an
#: apply stopped before its delete: see the test after this one).
_BACK_WRITES = (Back.RETAIN, Back.DELETE, Back.UNPROTECT, Back.CREATE, Back.CLEAR_RECORD)


@pytest.mark.parametrize("step", _BACK_WRITES, ids=[s.name.lower() for s in _BACK_WRITES])
def test_rollback_interrupted_after_any_step_is_finished_by_a_rerun(
    world: World, step: Back
) -> None:
    pv_name, volume_id = world.add_heketi()
    uid = world.kube.get("persistentvolumeclaims", "db", NS)["metadata"]["uid"]  # type: ignore[index]
    assert world.migrate("apply", "--all") == 0
    world.checkpoint = _interrupt_after(step)
    with pytest.raises(Interrupted):
        world.migrate("rollback", "--pv", pv_name)
    world.checkpoint = None
    assert world.migrate("rollback", "--pv", pv_name) == 0, world.output
    pv = _settled(world, pv_name, "db", uid)
    assert pv["spec"]["glusterfs"]["path"] == f"vol_{volume_id}"
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert [v["id"] for v in world.heketi.volumes()] == [volume_id]


def test_rollback_of_a_run_stopped_before_the_delete(world: World) -> None:
    pv_name, _ = world.add_heketi()
    world.checkpoint = _interrupt_after(Step.RETAIN)
    with pytest.raises(Interrupted):
        world.migrate("apply", "--all")
    world.checkpoint = None
    assert world.migrate("rollback", "--pv", pv_name) == 0, world.output
    pv = world.kube.get("persistentvolumes", pv_name) or {}
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    claim = world.kube.get("persistentvolumeclaims", "db", NS) or {}
    assert annotations.ANN_MIGRATION_RECORD not in claim["metadata"].get("annotations", {})


def test_a_finalizer_list_changed_under_apply_is_read_again(world: World) -> None:
    world.add_static()
    uid = world.kube.get("persistentvolumeclaims", "data", NS)["metadata"]["uid"]  # type: ignore[index]

    def someone_adds_a_finalizer(pv: str, step: Enum) -> None:
        if step == Step.DELETE:  # the PV is Terminating; its finalizers change under us
            world.kube.fail_next(verb="patch", path_regex="/persistentvolumes/", status=422)

    world.checkpoint = someone_adds_a_finalizer
    assert world.migrate("apply", "--all") == 0, world.output
    _settled(world, "gluster-pv", "data", uid)
