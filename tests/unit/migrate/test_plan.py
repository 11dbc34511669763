"""`migrate plan` on hand-made cluster snapshots: every odd input gets a clear answer."""

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from provisioner.core import annotations
from provisioner.core.storageclass import ProvisioningParams
from provisioner.kube.secrets import SecretError
from provisioner.migrate.cluster import Snapshot
from provisioner.migrate.heketi_check import HeketiCheck
from provisioner.migrate.intree import Source
from provisioner.migrate.plan import BLOCKED, MIGRATED, READY, Plan, Settings, build_plan
from provisioner.migrate.target import static_handle

JSON = dict[str, Any]
HEKETI_ID = "0123456789abcdef0123456789abcdef"
NS = "apps"


def _endpoints(name: str = "glusterfs-cluster", namespace: str = NS) -> JSON:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "subsets": [{"addresses": [{"ip": "192.0.2.10"}, {"ip": "192.0.2.11"}],
                     "ports": [{"port": 1}]}],
    }  # fmt: skip


def _claim(name: str = "data", uid: str = "uid-data", pv: str = "gluster-pv") -> JSON:
    return {"metadata": {"name": name, "namespace": NS, "uid": uid},
            "spec": {"volumeName": pv}, "status": {"phase": "Bound"}}  # fmt: skip


def _pv(name: str = "gluster-pv", *, claim: str = "data", uid: str = "uid-data",
        path: str = "gv0", endpoints: str = "glusterfs-cluster") -> JSON:  # fmt: skip
    return {
        "metadata": {"name": name, "uid": f"pv-{name}", "annotations": {},
                     "finalizers": [annotations.PV_PROTECTION_FINALIZER]},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"],
                 "persistentVolumeReclaimPolicy": "Retain",
                 "glusterfs": {"endpoints": endpoints, "path": path},
                 "claimRef": {"namespace": NS, "name": claim, "uid": uid}},
        "status": {"phase": "Bound"},
    }  # fmt: skip


def _heketi(pv: JSON) -> JSON:
    pv["metadata"]["annotations"].update({
        annotations.ANN_IN_TREE_HEKETI_ID: HEKETI_ID, annotations.ANN_GID: "2001",
        annotations.ANN_PROVISIONED_BY: annotations.IN_TREE_PLUGIN,
    })  # fmt: skip
    pv["spec"].update(persistentVolumeReclaimPolicy="Delete", storageClassName="gluster-heketi")
    pv["spec"]["glusterfs"]["path"] = f"vol_{HEKETI_ID}"
    return pv


_CLASS = {
    "metadata": {"name": "gluster-heketi"}, "provisioner": annotations.IN_TREE_PLUGIN,
    "parameters": {"resturl": "http://heketi:8080", "secretNamespace": "kube-system",
                   "secretName": "heketi-secret"},
}  # fmt: skip


@dataclass
class World:
    pvs: list[JSON]
    claims: list[JSON]
    endpoints: list[JSON]
    classes: list[JSON]

    def snapshot(self) -> Snapshot:
        return Snapshot(tuple(self.pvs), tuple(self.claims), tuple(self.endpoints),
                        tuple(self.classes))  # fmt: skip


def _static_world() -> World:
    return World([_pv()], [_claim()], [_endpoints()], [copy.deepcopy(_CLASS)])


def _heketi_world() -> World:
    return World([_heketi(_pv())], [_claim()], [_endpoints()], [copy.deepcopy(_CLASS)])


def _knows_every_volume(source: Source, params: ProvisioningParams) -> list[str]:
    return []


def _plan(world: World, confirm: Any = _knows_every_volume) -> Plan:
    return build_plan(world.snapshot(), Settings(annotations.DRIVER_NAME, confirm))


def _second_pv_on_the_same_volume(world: World, *, heketi: bool) -> None:
    pv = _pv("gluster-pv-2", claim="data2", uid="uid-data2")
    world.pvs.append(_heketi(pv) if heketi else pv)
    world.claims.append(_claim("data2", "uid-data2", "gluster-pv-2"))


class _NoSecret:
    def key(self, namespace: str, name: str) -> str:
        raise SecretError(f"Secret {namespace}/{name} (the Heketi key Secret) does not exist")


def _secret_gone(source: Source, params: ProvisioningParams) -> list[str]:
    return HeketiCheck(_NoSecret()).problems(source, params)  # type: ignore[arg-type]


def _heketi_says_unknown(source: Source, params: ProvisioningParams) -> list[str]:
    return [f"Heketi at {params.rest_url} does not know volume id {source.heketi_id}"]


Change = Callable[[World], None]
CASES: list[tuple[str, Callable[[], World], Change, Any, str]] = [
    ("endpoints missing", _static_world, lambda w: w.endpoints.clear(), None,
     "Endpoints apps/glusterfs-cluster does not exist"),
    ("endpoints with empty subsets", _static_world,
     lambda w: w.endpoints[0].update(subsets=[]), None, "lists no ready addresses"),
    ("endpoints with only not-ready addresses", _static_world,
     lambda w: w.endpoints[0].update(subsets=[{"notReadyAddresses": [{"ip": "192.0.2.9"}]}]),
     None, "lists no ready addresses"),
    ("two Heketi PVs on one Gluster volume", _heketi_world,
     lambda w: _second_pv_on_the_same_volume(w, heketi=True), None,
     "is also used by PV gluster-pv-2"),
    ("claim being deleted", _static_world,
     lambda w: w.claims[0]["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z"), None,
     "claim apps/data is being deleted"),
    ("PV Available", _static_world, lambda w: w.pvs[0].update(status={"phase": "Available"}),
     None, "PV is Available (no claim uses it)"),
    ("PV Released", _static_world, lambda w: w.pvs[0].update(status={"phase": "Released"}),
     None, "PV is Released (its claim is gone)"),
    ("PV Failed", _static_world, lambda w: w.pvs[0].update(status={"phase": "Failed"}),
     None, "PV is Failed (its reclaim failed)"),
    ("claim gone, a new one of the same name", _static_world,
     lambda w: w.claims[0]["metadata"].update(uid="another-uid"), None,
     "claim apps/data (uid uid-data) does not exist"),
    ("Heketi does not know the id", _heketi_world, lambda w: None, _heketi_says_unknown,
     f"does not know volume id {HEKETI_ID}"),
    ("class gone", _heketi_world, lambda w: w.classes.clear(), None,
     "StorageClass gluster-heketi does not exist"),
    ("class with a bad parameter", _heketi_world,
     lambda w: w.classes[0]["parameters"].update(bogus="1"), None,
     "unknown StorageClass parameter 'bogus'"),
    ("secret gone", _heketi_world, lambda w: None, _secret_gone,
     "Secret kube-system/heketi-secret (the Heketi key Secret) does not exist"),
    ("static volume with reclaim policy Delete", _static_world,
     lambda w: w.pvs[0]["spec"].update(persistentVolumeReclaimPolicy="Delete"), None,
     "static volume with reclaim policy Delete"),
    ("Heketi id neither annotated nor in the path", _heketi_world,
     lambda w: (w.pvs[0]["metadata"]["annotations"].pop(annotations.ANN_IN_TREE_HEKETI_ID),
                w.pvs[0]["spec"]["glusterfs"].update(path="myprefix_apps_db_1234")), None,
     "Heketi volume id unknown"),
    ("PV being deleted", _static_world,
     lambda w: w.pvs[0]["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z"), None,
     "PV is being deleted"),
    ("PV with a finalizer of someone else", _static_world,
     lambda w: w.pvs[0]["metadata"]["finalizers"].append("example.com/backup"), None,
     "finalizers migrate does not own: example.com/backup"),
    ("unreadable record on the claim", _static_world,
     lambda w: w.claims[0]["metadata"].update(annotations={annotations.ANN_MIGRATION_RECORD: "{"}),
     None, "is not a migrate record"),
    ("no endpoints name", _static_world,
     lambda w: w.pvs[0]["spec"]["glusterfs"].update(endpoints=""), None,
     "spec.glusterfs.endpoints is empty"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "change", "confirm", "expected"),
    [pytest.param(m, c, f, e, id=i) for i, m, c, f, e in CASES],
)
def test_a_bad_input_blocks_the_pv_with_a_clear_reason(
    make: Callable[[], World], change: Change, confirm: Any, expected: str
) -> None:
    world = make()
    change(world)
    row = _plan(world, confirm or _knows_every_volume).row("gluster-pv")
    assert row is not None
    assert row.state == BLOCKED
    assert any(expected in b for b in row.blockers), row.blockers
    assert row.actions == () and row.target is None


def test_a_static_pv_reads_its_servers_from_the_claims_namespace() -> None:
    row = _plan(_static_world()).row("gluster-pv")
    assert row is not None and row.state == READY
    assert row.servers == ("192.0.2.10", "192.0.2.11")


def test_endpoints_namespace_is_where_the_servers_are_read_when_set() -> None:
    world = _static_world()
    world.pvs[0]["spec"]["glusterfs"]["endpointsNamespace"] = "storage"
    world.endpoints[0]["subsets"][0]["addresses"] = [{"ip": "192.0.2.99"}]  # apps/: not used
    world.endpoints.append(_endpoints(namespace="storage"))
    row = _plan(world).row("gluster-pv")
    assert row is not None and row.servers == ("192.0.2.10", "192.0.2.11")


def test_servers_are_the_ips_deduplicated_in_order_and_hostnames_are_not_used() -> None:
    world = _static_world()
    world.endpoints[0]["subsets"] = [
        {"addresses": [{"ip": "192.0.2.12", "hostname": "gluster-a"}, {"ip": "192.0.2.10"}]},
        {"addresses": [{"ip": "192.0.2.12"}, {"ip": "192.0.2.11"}]},
    ]
    row = _plan(world).row("gluster-pv")
    assert row is not None and row.servers == ("192.0.2.12", "192.0.2.10", "192.0.2.11")


def test_two_static_pvs_on_one_gluster_volume_get_a_note_and_their_own_handles() -> None:
    world = _static_world()
    _second_pv_on_the_same_volume(world, heketi=False)
    plan = _plan(world)
    first, second = plan.row("gluster-pv"), plan.row("gluster-pv-2")
    assert first is not None and second is not None
    assert (first.state, second.state) == (READY, READY)
    assert first.notes == ("also used by PV gluster-pv-2",)
    handles = {r.target["spec"]["csi"]["volumeHandle"] for r in (first, second) if r.target}
    assert len(handles) == 2


def test_names_at_maximum_length_still_give_a_handle_within_csi_limits() -> None:
    long_pv, long_claim = "p" * 253, "c" * 253
    world = World([_pv(long_pv, claim=long_claim)], [_claim(long_claim, pv=long_pv)],
                  [_endpoints()], [])  # fmt: skip
    row = _plan(world).row(long_pv)
    assert row is not None and row.state == READY and row.target is not None
    handle = row.target["spec"]["csi"]["volumeHandle"]
    assert handle == static_handle(long_pv) and len(handle.encode()) <= 128


def test_the_heketi_id_is_taken_from_the_path_when_not_annotated() -> None:
    world = _heketi_world()
    world.pvs[0]["metadata"]["annotations"].pop(annotations.ANN_IN_TREE_HEKETI_ID)
    row = _plan(world).row("gluster-pv")
    assert row is not None and row.state == READY and row.heketi_id == HEKETI_ID


def test_a_migrated_pv_is_listed_as_migrated_with_nothing_to_do() -> None:
    world = _static_world()
    world.pvs[0]["spec"].pop("glusterfs")
    world.pvs[0]["spec"]["csi"] = {"driver": annotations.DRIVER_NAME, "volumeHandle": "h"}
    world.pvs[0]["metadata"]["annotations"][annotations.ANN_MIGRATED_FROM] = (
        annotations.IN_TREE_PLUGIN
    )
    row = _plan(world).row("gluster-pv")
    assert row is not None and row.state == MIGRATED and row.actions == ()


@pytest.mark.parametrize(
    "source",
    [{"csi": {"driver": "other.csi.example.com", "volumeHandle": "x"}},
     {"nfs": {"server": "192.0.2.1", "path": "/x"}}],
    ids=["another CSI driver", "nfs"],
)  # fmt: skip
def test_pvs_of_other_plugins_are_not_listed(source: JSON) -> None:
    world = _static_world()
    world.pvs[0]["spec"].pop("glusterfs")
    world.pvs[0]["spec"].update(source)
    assert _plan(world).volumes == ()


def test_an_unbound_pv_without_endpoints_namespace_names_the_unknown_namespace() -> None:
    world = _static_world()
    world.pvs[0]["spec"].pop("claimRef")
    world.pvs[0]["status"] = {"phase": "Available"}
    row = _plan(world).row("gluster-pv")
    assert row is not None and row.state == BLOCKED
    assert "Endpoints glusterfs-cluster: no endpointsNamespace and no claim" in " ".join(
        row.blockers
    )


def test_ipv6_endpoint_addresses_are_left_out_with_a_note() -> None:
    world = _static_world()
    world.endpoints[0]["subsets"][0]["addresses"].append({"ip": "2001:db8::7"})
    row = _plan(world).row("gluster-pv")
    assert row is not None and row.state == READY
    assert row.servers == ("192.0.2.10", "192.0.2.11")
    assert row.notes == ("IPv6 addresses left out (the node plugin mounts over IPv4): 2001:db8::7",)


def test_endpoints_with_only_ipv6_addresses_block_the_pv() -> None:
    world = _static_world()
    world.endpoints[0]["subsets"][0]["addresses"] = [{"ip": "2001:db8::7"}]
    row = _plan(world).row("gluster-pv")
    assert row is not None and row.state == BLOCKED
    assert "lists only IPv6 addresses" in " ".join(row.blockers)


def test_more_than_sixteen_servers_are_cut_to_the_first_sixteen() -> None:
    world = _static_world()
    world.endpoints[0]["subsets"][0]["addresses"] = [{"ip": f"192.0.2.{n}"} for n in range(20)]
    row = _plan(world).row("gluster-pv")
    assert row is not None and len(row.servers) == 16 and row.servers[0] == "192.0.2.0"
    assert "20 servers listed; the CSI PV names the first 16" in row.notes


def test_a_plan_of_ten_thousand_pvs_lists_each_once_and_prints_its_cost() -> None:
    count = 10_000
    pvs = [_pv(f"pv-{n}", claim=f"c-{n}", uid=f"u-{n}", path=f"gv-{n}") for n in range(count)]
    claims = [_claim(f"c-{n}", f"u-{n}", f"pv-{n}") for n in range(count)]
    world = World(pvs, claims, [_endpoints()], [])
    started = time.perf_counter()
    plan = _plan(world)
    elapsed = time.perf_counter() - started
    print(f"\nplan of {count} in-tree PVs: {elapsed:.2f}s")  # a figure, not an assertion
    assert len(plan.volumes) == count
    assert {r.state for r in plan.volumes} == {READY}


def _tls_class(world: World) -> World:
    world.classes[0]["parameters"]["volumeoptions"] = "client.ssl on, server.ssl on"
    return world


def test_a_heketi_pv_of_a_class_with_tls_volumeoptions_is_blocked_naming_the_flag() -> None:
    row = _plan(_tls_class(_heketi_world())).row("gluster-pv")
    assert row is not None and row.state == BLOCKED and row.tls
    assert row.blockers == (
        f"Gluster volume vol_{HEKETI_ID} uses TLS (client.ssl on (StorageClass gluster-heketi "
        "volumeoptions); server.ssl on (StorageClass gluster-heketi volumeoptions)): the node "
        "plugin mounts it only with the client's certificate, key and CA (--gluster-tls-dir; "
        "deploy/components/gluster-tls, docs/tls.md); give it them, then run with "
        "--gluster-tls-ready",
    )


def test_with_tls_ready_the_pv_is_ready_and_the_note_says_why() -> None:
    snapshot = _tls_class(_heketi_world()).snapshot()
    settings = Settings(annotations.DRIVER_NAME, _knows_every_volume, tls_ready=True)
    row = build_plan(snapshot, settings).row("gluster-pv")
    assert row is not None and row.state == READY and row.tls
    assert any(note.startswith("uses TLS (client.ssl on") for note in row.notes)


@pytest.mark.parametrize(
    ("options", "tls"),
    [(("client.ssl off", "server.ssl off"), False), (("client.ssl  ON",), True),
     (("server.ssl enable",), True), (("performance.cache-size 64MB",), False)],
    ids=["off", "upper-case", "enable", "other-option"],
)  # fmt: skip
def test_tls_is_read_from_the_options_heketi_lists_for_the_volume(
    options: tuple[str, ...], tls: bool
) -> None:
    settings = Settings(
        annotations.DRIVER_NAME, _knows_every_volume, heketi_options=lambda _: options
    )
    row = build_plan(_heketi_world().snapshot(), settings).row("gluster-pv")
    assert row is not None and row.tls is tls and (row.state == BLOCKED) is tls


def test_a_static_pv_has_no_tls_finding() -> None:
    row = _plan(_tls_class(_static_world())).row("gluster-pv")
    assert row is not None and not row.tls and row.state == READY


def test_a_heketi_pv_with_kube_controller_managers_deletion_finalizer_is_ready() -> None:
    # kube-controller-manager 1.33+ keeps kubernetes.io/pv-controller on a Heketi-made PV
    # of policy Delete (observed with make contract-kube); apply sets Retain and lifts it.
    world = _heketi_world()
    world.pvs[0]["metadata"]["finalizers"].append(annotations.IN_TREE_DELETION_FINALIZER)
    row = _plan(world, _knows_every_volume).row("gluster-pv")
    assert row is not None and row.state == READY, row.blockers
