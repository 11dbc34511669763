"""`migrate plan` and `migrate apply` on the Kubernetes API test server."""

import json

from provisioner.core import annotations
from provisioner.migrate.target import static_handle
from tests.integration.migrate.world import NS, SERVERS, World


def _pv(world: World, name: str) -> dict:
    pv = world.kube.get("persistentvolumes", name)
    assert pv is not None, name
    return pv


def _claim(world: World, name: str) -> dict:
    claim = world.kube.get("persistentvolumeclaims", name, NS)
    assert claim is not None, name
    return claim


def test_plan_shows_each_in_tree_pv_with_its_servers_and_the_steps_of_apply(world: World) -> None:
    world.add_static()
    pv, volume_id = world.add_heketi()
    assert world.migrate("plan") == 0
    out = world.output
    assert "gluster-pv" in out and pv in out and volume_id in out
    assert ",".join(SERVERS) in out
    assert "gluster-pv: 1. record the in-tree PV" in out
    assert "gluster-heketi" in out  # the in-tree class, with its twin


def test_plan_json_has_the_documented_schema(world: World) -> None:
    world.add_static()
    pv, volume_id = world.add_heketi()
    assert world.migrate("plan", "-o", "json") == 0
    doc = json.loads(world.output)
    assert doc["schema"] == "glusterfs.csi.heketi.io/migrate-plan/v1"
    rows = {r["pv"]: r for r in doc["volumes"]}
    assert rows[pv] == {
        "pv": pv, "claim": f"{NS}/db", "kind": "heketi", "servers": list(SERVERS),
        "volume": f"vol_{volume_id}", "heketiVolumeId": volume_id, "gid": 2001,
        "reclaimPolicy": "Delete", "accessModes": ["ReadWriteMany"],
        "mountOptions": ["log-level=WARNING"], "readOnly": False, "state": "ready",
        "actions": rows[pv]["actions"], "blockers": [], "notes": [], "tls": False,
    }  # fmt: skip
    assert len(rows[pv]["actions"]) == 7
    assert rows["gluster-pv"]["kind"] == "static"
    assert rows["gluster-pv"]["reclaimPolicy"] == "Retain"
    assert doc["storageClasses"] == [
        {"name": "gluster-heketi", "default": True, "twin": "gluster-heketi-csi", "problem": None}
    ]


def test_apply_turns_a_static_pv_into_a_csi_pv_with_the_claim_bound_under_the_same_uid(
    world: World,
) -> None:
    world.add_static()
    before = _claim(world, "data")
    assert world.migrate("apply", "--pv", "gluster-pv") == 0, world.output
    pv, after = _pv(world, "gluster-pv"), _claim(world, "data")
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["status"]["phase"] == "Bound" and pv["status"]["phase"] == "Bound"
    assert "glusterfs" not in pv["spec"]
    assert pv["spec"]["csi"] == {
        "driver": annotations.DRIVER_NAME, "volumeHandle": static_handle("gluster-pv"),
        "readOnly": False,
        "volumeAttributes": {"servers": ",".join(SERVERS), "volume": "gv-legacy"},
    }  # fmt: skip
    assert pv["spec"]["claimRef"]["uid"] == before["metadata"]["uid"]
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["mountOptions"] == ["log-level=WARNING"]
    assert pv["metadata"]["labels"] == {"app": "legacy"}
    assert annotations.PV_FINALIZER not in pv["metadata"].get("finalizers", [])
    assert annotations.ANN_PROVISIONED_BY not in pv["metadata"]["annotations"]


def test_apply_gives_a_heketi_pv_what_our_controller_needs_to_delete_it(world: World) -> None:
    pv_name, volume_id = world.add_heketi()
    assert world.migrate("apply", "--all") == 0, world.output
    pv = _pv(world, pv_name)
    ann = pv["metadata"]["annotations"]
    assert pv["spec"]["csi"]["volumeHandle"] == volume_id
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert ann[annotations.ANN_PROVISIONED_BY] == annotations.DRIVER_NAME
    assert ann[annotations.ANN_HEKETI_URL] == world.heketi.url
    assert ann[annotations.ANN_SECRET_NAMESPACE] == "kube-system"
    assert ann[annotations.ANN_SECRET_NAME] == "heketi-secret"
    assert ann[annotations.ANN_GID] == "2001"
    assert ann[annotations.ANN_MIGRATED_FROM] == annotations.IN_TREE_PLUGIN
    assert "migrate-admin-key" not in json.dumps(pv)
    assert annotations.PV_FINALIZER in pv["metadata"]["finalizers"]
    assert [v["id"] for v in world.heketi.volumes()] == [volume_id]


def test_the_claim_is_bound_again_after_at_most_one_claim_lost_warning(world: World) -> None:
    # The PV binder reports ClaimLost only if it looks at the claim while no PV of that
    # name exists; when it first looks after the new PV is there (a loaded binder, as in
    # pv_controller.go, where the deleted PV's claim is queued and synced later), the
    # claim is simply bound: both are what users may see.
    world.add_static()
    assert world.migrate("apply", "--all") == 0
    events = world.kube.list("events", NS)
    reasons = [e["reason"] for e in events if e["involvedObject"]["name"] == "data"]
    assert reasons in ([], ["ClaimLost"])
    assert _claim(world, "data")["status"]["phase"] == "Bound"


def test_apply_twice_changes_nothing_the_second_time(world: World) -> None:
    world.add_static()
    world.add_heketi()
    assert world.migrate("apply", "--all") == 0
    world.kube.clear_requests()
    assert world.migrate("apply", "--all") == 0
    assert "2 of 2 PVs done" in world.output
    writes = [r for r in world.kube.requests if r.verb not in ("get", "list", "watch")]
    assert writes == []


def test_dry_run_writes_nothing(world: World) -> None:
    world.add_static()
    world.add_heketi()
    world.kube.clear_requests()
    assert world.migrate("apply", "--all", "--dry-run", "--prune-endpoints") == 0
    assert "gluster-pv: would record the in-tree PV" in world.output
    assert "would delete it and its Service" in world.output
    verbs = {r.verb for r in world.kube.requests}
    assert verbs <= {"get", "list"} and "list" in verbs
    assert "glusterfs" in _pv(world, "gluster-pv")["spec"]


def test_rollback_restores_the_in_tree_pv_and_the_binding(world: World) -> None:
    world.add_static()
    original = _pv(world, "gluster-pv")
    uid = _claim(world, "data")["metadata"]["uid"]
    assert world.migrate("apply", "--all") == 0
    assert world.migrate("rollback", "--pv", "gluster-pv") == 0, world.output
    restored = _pv(world, "gluster-pv")
    assert restored["spec"]["glusterfs"] == original["spec"]["glusterfs"]
    assert restored["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert restored["spec"]["claimRef"]["uid"] == uid
    world.wait_bound("data", "gluster-pv")
    claim = _claim(world, "data")
    assert claim["metadata"]["uid"] == uid
    assert annotations.ANN_MIGRATION_RECORD not in claim["metadata"].get("annotations", {})


def test_rollback_then_apply_migrates_again(world: World) -> None:
    world.add_heketi()
    assert world.migrate("apply", "--all") == 0
    assert world.migrate("rollback", "--pv", "pvc-db-0000") == 0
    restored = _pv(world, "pvc-db-0000")
    assert restored["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert world.migrate("apply", "--all") == 0, world.output
    assert "csi" in _pv(world, "pvc-db-0000")["spec"]


def test_a_migrated_pv_whose_claim_was_deleted_since_needs_nothing(world: World) -> None:
    world.add_static()
    assert world.migrate("apply", "--all") == 0
    world.kube.api_client().call_api(
        "DELETE",
        f"{world.kube.url}/api/v1/namespaces/{NS}/persistentvolumeclaims/data",
        {"Accept": "application/json"},
    )
    assert world.migrate("plan") == 0
    assert "migrated" in world.output and "gluster-pv: 1." not in world.output


def test_a_heketi_pv_whose_volume_uses_tls_is_reported_and_refused_without_the_flag(
    world: World,
) -> None:
    pv, volume_id = world.add_heketi(options=("client.ssl on", "server.ssl on"))
    assert world.migrate("plan", "-o", "json") == 1
    (row,) = json.loads(world.output)["volumes"]
    assert (row["tls"], row["state"]) == (True, "blocked")
    (blocker,) = row["blockers"]
    assert blocker.startswith(
        f"Gluster volume vol_{volume_id} uses TLS (client.ssl on (Heketi volume {volume_id} "
        f"glustervolumeoptions); server.ssl on (Heketi volume {volume_id} glustervolumeoptions))"
    )
    assert blocker.endswith("then run with --gluster-tls-ready")
    assert world.migrate("apply", "--pv", pv) == 1
    assert f"{pv}: NOT DONE: blocked: Gluster volume vol_{volume_id} uses TLS" in world.output
    assert "glusterfs" in _pv(world, pv)["spec"]  # still the in-tree PV, untouched


def test_with_the_flag_a_tls_volume_is_migrated_with_a_note(world: World) -> None:
    pv, volume_id = world.add_heketi(options=("client.ssl on",))
    assert world.migrate("plan", "--gluster-tls-ready") == 0
    assert f"{pv}: note: uses TLS (client.ssl on (Heketi volume {volume_id}" in world.output
    assert world.migrate("apply", "--pv", pv, "--gluster-tls-ready") == 0, world.output
    assert _pv(world, pv)["spec"]["csi"]["volumeHandle"] == volume_id
