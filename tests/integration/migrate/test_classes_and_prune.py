"""`migrate classes` and `apply --prune-endpoints` on the Kubernetes API test server."""

import pytest

from provisioner import errors
from provisioner.core import annotations
from provisioner.kube.api import KubeUnavailable
from tests.integration.migrate.world import CLASS, NS, World


def _class(world: World, name: str) -> dict:
    sc = world.kube.get("storageclasses", name)
    assert sc is not None, name
    return sc


def test_classes_makes_a_csi_twin_with_the_same_parameters(world: World) -> None:
    original = _class(world, CLASS)
    assert world.migrate("classes") == 0
    twin = _class(world, f"{CLASS}-csi")
    assert twin["provisioner"] == annotations.DRIVER_NAME
    assert twin["parameters"] == original["parameters"]
    assert twin["reclaimPolicy"] == "Delete"
    assert annotations.ANN_DEFAULT_CLASS not in twin["metadata"]["annotations"]
    assert _class(world, CLASS)["provisioner"] == annotations.IN_TREE_PLUGIN
    assert world.migrate("classes") == 0  # again: nothing new
    assert "create CSI twin" not in world.output


def test_classes_replace_recreates_the_class_under_its_name_keeping_the_default(
    world: World,
) -> None:
    original = _class(world, CLASS)
    assert world.migrate("classes", "--replace") == 0, world.output
    replaced = _class(world, CLASS)
    assert replaced["provisioner"] == annotations.DRIVER_NAME
    assert replaced["parameters"] == original["parameters"]
    assert replaced["metadata"]["annotations"][annotations.ANN_DEFAULT_CLASS] == "true"
    assert replaced["metadata"]["uid"] != original["metadata"]["uid"]
    assert world.migrate("classes", "--replace") == 0
    assert "No in-tree GlusterFS StorageClasses." in world.output


def test_classes_replace_interrupted_after_the_delete_is_finished_by_a_rerun(
    world: World,
) -> None:
    assert world.migrate("classes") == 0  # the twin, which holds the class meanwhile
    world.kube.fail_next(verb="create", path_regex="/storageclasses$", count=1)
    with pytest.raises(KubeUnavailable):
        world.migrate("classes", "--replace")
    assert world.kube.get("storageclasses", CLASS) is None  # deleted, not yet re-created
    assert world.migrate("classes", "--replace") == 0
    assert _class(world, CLASS)["provisioner"] == annotations.DRIVER_NAME
    assert _class(world, CLASS)["metadata"]["annotations"][annotations.ANN_DEFAULT_CLASS] == "true"


def test_prune_deletes_dynamic_endpoints_no_in_tree_pv_uses_and_keeps_hand_made_ones(
    world: World,
) -> None:
    world.add_static()
    world.add_heketi()
    assert world.migrate("apply", "--pv", "pvc-db-0000", "--prune-endpoints") == 0
    assert world.kube.get("endpoints", "glusterfs-dynamic-db", NS) is None
    assert world.kube.get("services", "glusterfs-dynamic-db", NS) is None
    assert world.kube.get("endpoints", "glusterfs-cluster", NS) is not None


def test_a_named_hand_made_endpoints_is_kept_while_an_in_tree_pv_uses_it(world: World) -> None:
    world.add_static()
    world.add_static("gluster-pv-2", "data2")  # same Endpoints glusterfs-cluster
    prune = ("--prune", f"{NS}/glusterfs-cluster")
    assert world.migrate("apply", "--pv", "gluster-pv", *prune) == 0
    assert "kept, PV gluster-pv-2 uses it" in world.output
    assert world.kube.get("endpoints", "glusterfs-cluster", NS) is not None
    assert world.migrate("apply", "--pv", "gluster-pv-2", *prune) == 0
    assert world.kube.get("endpoints", "glusterfs-cluster", NS) is None
    assert world.kube.get("services", "glusterfs-cluster", NS) is None


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("apply", "--pv", "nope"), "nope: NOT DONE: not an in-tree GlusterFS PV"),
        (("rollback", "--pv", "nope"), ""),
    ],
    ids=["apply unknown PV", "rollback unknown PV"],
)
def test_unknown_pvs_are_reported_not_guessed(world: World, argv: tuple[str, ...],
                                              expected: str) -> None:  # fmt: skip
    if argv[0] == "rollback":
        with pytest.raises(errors.NotFound, match="PV nope does not exist"):
            world.migrate(*argv)
        return
    assert world.migrate(*argv) == 1
    assert expected in world.output


def test_classes_dry_run_writes_nothing(world: World) -> None:
    world.kube.clear_requests()
    assert world.migrate("classes", "--replace", "--dry-run") == 0
    assert f"StorageClass {CLASS}: delete the in-tree class" in world.output
    assert {r.verb for r in world.kube.requests} <= {"get", "list"}
    assert _class(world, CLASS)["provisioner"] == annotations.IN_TREE_PLUGIN


def test_rollback_dry_run_writes_nothing(world: World) -> None:
    world.add_static()
    assert world.migrate("apply", "--all") == 0
    world.kube.clear_requests()
    assert world.migrate("rollback", "--pv", "gluster-pv", "--dry-run") == 0
    assert "gluster-pv: would create the recorded in-tree PV" in world.output
    assert {r.verb for r in world.kube.requests} <= {"get", "list"}
