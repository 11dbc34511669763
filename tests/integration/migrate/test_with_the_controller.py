"""Migrated PVs under our controller: a Heketi PV's volume goes with its claim, a static
one stays, and no new volume gets a GID a migrated one holds."""

from collections.abc import Iterator

import pytest

from provisioner.controller.controller import Controller, ControllerConfig
from provisioner.core import annotations
from tests.integration.controller.conftest import FAST_BACKOFF, FAST_HEKETI, FAST_INFORMER
from tests.integration.migrate.world import NS, World, claim, wait_for


class Interrupted(Exception):
    """Stands for a crash of apply between two steps."""


def _start(world: World) -> Controller:
    config = ControllerConfig(workers=2, backoff=FAST_BACKOFF, informer=FAST_INFORMER,
                              heketi_settings=FAST_HEKETI, drain_seconds=5.0,
                              sync_timeout_seconds=10.0, secret_ttl_seconds=5.0)  # fmt: skip
    running = Controller(world.kube.api_client(), config, identity="migrate-test")
    running.start()
    return running


@pytest.fixture
def controller(world: World) -> Iterator[Controller]:
    running = _start(world)
    try:
        yield running
    finally:
        running.stop()


def _phase(world: World, pv: str) -> str:
    return str(((world.kube.get("persistentvolumes", pv) or {}).get("status") or {}).get("phase"))


def _narrow_class(world: World) -> None:
    world.kube.create({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "csi-narrow"}, "provisioner": annotations.DRIVER_NAME,
        "parameters": {"resturl": world.heketi.url, "restuser": "admin",
                       "secretNamespace": "kube-system", "secretName": "heketi-secret",
                       "gidMin": "2001", "gidMax": "2002"},
    })  # fmt: skip


def _new_volume_gid(world: World) -> str:
    fresh = claim("fresh", volume="", storage_class="csi-narrow")
    fresh["spec"].pop("volumeName")
    created = world.kube.create(fresh)
    pv = wait_for("the new PV", lambda: world.kube.get(
        "persistentvolumes", f"pvc-{created['metadata']['uid']}"))  # fmt: skip
    return str(pv["metadata"]["annotations"][annotations.ANN_GID])


def _delete_claim(world: World, name: str) -> None:
    path = f"{world.kube.url}/api/v1/namespaces/{NS}/persistentvolumeclaims/{name}"
    world.kube.api_client().call_api("DELETE", path, {"Accept": "application/json"})


def test_deleting_a_migrated_heketi_claim_deletes_its_volume_and_a_static_one_stays(
    world: World, controller: Controller
) -> None:
    world.add_static()
    pv_name, _ = world.add_heketi()
    assert world.migrate("apply", "--all") == 0, world.output
    _delete_claim(world, "db")
    wait_for("the Heketi PV gone", lambda: world.kube.get("persistentvolumes", pv_name) is None)
    assert world.heketi.volumes() == []
    _delete_claim(world, "data")
    wait_for("the static PV Released", lambda: _phase(world, "gluster-pv") == "Released")
    assert world.kube.get("persistentvolumes", "gluster-pv") is not None


def test_a_new_volume_never_gets_the_gid_of_a_migrated_one(
    world: World, controller: Controller
) -> None:
    world.add_heketi(gid=2001)
    assert world.migrate("apply", "--all") == 0, world.output
    _narrow_class(world)
    assert _new_volume_gid(world) == "2002"


def test_a_controller_started_while_a_migrated_pv_is_gone_keeps_its_gid_used(
    world: World,
) -> None:
    world.add_heketi(gid=2001)

    def stop_after_delete(pv: str, step: object) -> None:
        if getattr(step, "name", "") == "UNPROTECT":
            raise Interrupted(pv)

    world.checkpoint = stop_after_delete
    with pytest.raises(Interrupted):
        world.migrate("apply", "--all")
    assert world.kube.get("persistentvolumes", "pvc-db-0000") is None  # only the record holds it
    running = _start(world)
    try:
        _narrow_class(world)
        assert _new_volume_gid(world) == "2002"
    finally:
        running.stop()


def test_growing_a_migrated_heketi_claim_expands_its_volume(
    world: World, controller: Controller
) -> None:
    pv_name, volume_id = world.add_heketi()
    assert world.migrate("apply", "--all") == 0, world.output
    patch = {"spec": {"resources": {"requests": {"storage": "2Gi"}}}}
    path = f"{world.kube.url}/api/v1/namespaces/{NS}/persistentvolumeclaims/db"
    world.kube.api_client().call_api(
        "PATCH", path, {"Content-Type": "application/merge-patch+json"}, body=patch
    )
    wait_for("the PV grown", lambda: (world.kube.get("persistentvolumes", pv_name) or {})
             .get("spec", {}).get("capacity", {}).get("storage") == "2Gi")  # fmt: skip
    (volume,) = world.heketi.volumes()
    assert volume["id"] == volume_id and volume["size"] == 2
