"""`glusterfs-provisioner migrate`, as deploy/migrate's service account, on the Kubernetes
API test server and on a real cluster (`make contract-kube`: the real PV binder and
pv-protection), with any Heketi (the test server, or a real v10.4.1 with `make
contract`): it asks Heketi whether it knows the volumes of in-tree Heketi PVs, brings a
PV across with its claim bound again, rolls back, prunes the in-tree Endpoints, and
replaces an in-tree class, leaving the Heketi volume alone."""

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from provisioner import cli
from provisioner.core import annotations
from provisioner.heketi.client import HeketiClient
from provisioner.heketi.errors import HeketiNotFound
from provisioner.heketi.types import Durability, VolumeCreateRequest
from provisioner.kube.api import KubeError
from provisioner.kube.client import api_client
from provisioner.migrate import command
from testbed.clusters import Cluster
from testbed.controller_world import Target
from tests.contract.conftest import unique
from tests.integration.migrate.world import (
    claim,
    endpoints,
    heketi_annotations,
    in_tree_pv,
    service,
    wait_for,
)

UNKNOWN_ID = "0123456789abcdef0123456789abcdef"
#: The PV binder of a real kube-controller-manager sets phases at its own pace.
BINDER_DEADLINE = 120.0


@dataclass
class Migration:
    """A cluster holding in-tree PVs of namespace `ns` (class `in_tree_class`), a real
    Heketi volume behind `pv("known")`, and the migrate command's kubeconfig."""

    cluster: Cluster
    client: HeketiClient
    volume_id: str
    volume_name: str
    ns: str
    in_tree_class: str
    kubeconfig: Path

    def pv(self, claim_name: str) -> str:
        return f"pvc-{self.ns}-{claim_name}"

    def in_tree(self, claim_name: str, volume_id: str, path: str) -> None:
        ep = f"{annotations.IN_TREE_DYNAMIC_ENDPOINTS_PREFIX}{claim_name}"
        self.cluster.create(endpoints(ep, namespace=self.ns))
        self.cluster.create(service(ep, namespace=self.ns))
        ann = heketi_annotations(volume_id, 2001)
        self.cluster.create(in_tree_pv(self.pv(claim_name), path=path, endpoints_name=ep,
                                       claim_name=claim_name, policy="Delete",
                                       namespace=self.ns, storage_class=self.in_tree_class,
                                       annotations=ann))  # fmt: skip
        self.cluster.create(claim(claim_name, volume=self.pv(claim_name), namespace=self.ns,
                                  storage_class=self.in_tree_class))  # fmt: skip
        wait_for(f"claim {claim_name} bound", lambda: self.phase(claim_name) == "Bound",
                 timeout=BINDER_DEADLINE)  # fmt: skip

    def phase(self, claim_name: str) -> str:
        found = self.cluster.get("persistentvolumeclaims", claim_name, self.ns) or {}
        return str((found.get("status") or {}).get("phase", ""))

    def migrate(self, *argv: str) -> tuple[int, str]:
        parsed = cli.build_parser().parse_args(["migrate", *argv])
        config = command.config_from_args(parsed)
        out = io.StringIO()
        client = api_client(str(self.kubeconfig))
        return command.execute(config, api_client=client, out=out), out.getvalue()

    def remove_pvs(self) -> None:
        """A real cluster keeps PVs between runs: ours go, finalizers lifted."""
        for pv in self.cluster.list("persistentvolumes"):
            if pv["metadata"]["name"].startswith(f"pvc-{self.ns}-"):
                with contextlib.suppress(KubeError):
                    self.cluster.patch("persistentvolumes", pv["metadata"]["name"], None,
                                       {"metadata": {"finalizers": None}})  # fmt: skip
                self.cluster.delete("persistentvolumes", pv["metadata"]["name"])


@pytest.fixture
def migration(cluster: Cluster, target: Target, tmp_path: Path) -> Iterator[Migration]:
    client = HeketiClient(target.config())
    request = VolumeCreateRequest(size_gib=1, name=unique("migrate"),
                                  durability=Durability(type="none"))  # fmt: skip
    volume = client.create_volume(request)
    ns = cluster.namespace("mig")
    made = Migration(cluster, client, volume.id, volume.name, ns, f"{ns}-in-tree",
                     cluster.kubeconfig("migrate", tmp_path))  # fmt: skip
    try:
        cluster.create({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/glusterfs",
                        "metadata": {"name": "heketi", "namespace": ns},
                        "stringData": {"key": target.key}})  # fmt: skip
        cluster.create({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                        "metadata": {"name": made.in_tree_class},
                        "provisioner": annotations.IN_TREE_PLUGIN,
                        "parameters": {"resturl": target.url, "restuser": "admin",
                                       "secretNamespace": ns, "secretName": "heketi"}})  # fmt: skip
        made.in_tree("known", volume.id, volume.name)
        yield made
    finally:
        with contextlib.suppress(HeketiNotFound):
            client.delete_volume(volume.id)
        client.close()
        if cluster.real:
            cluster.delete("storageclasses", made.in_tree_class)
            cluster.delete("namespaces", ns)
            made.remove_pvs()


def test_plan_confirms_a_known_volume_and_blocks_unknown_or_misnamed_ones(
    migration: Migration,
) -> None:
    m = migration
    m.in_tree("ghost", UNKNOWN_ID, f"vol_{UNKNOWN_ID}")
    m.in_tree("renamed", m.volume_id, "some-other-volume")
    code, out = m.migrate("plan")
    assert code == 1
    assert f"{m.pv('ghost')}: BLOCKED: Heketi at" in out
    assert f"does not know volume id {UNKNOWN_ID}" in out
    mismatch = f"'{m.volume_name}', but the PV mounts 'some-other-volume'"
    assert f"names volume {m.volume_id} {mismatch}" in out
    assert f"{m.pv('known')}: 1. record the in-tree PV" in out


def test_apply_brings_the_pv_across_with_its_claim_bound_again_and_leaves_the_heketi_volume(
    migration: Migration,
) -> None:
    m = migration
    uid = (m.cluster.get("persistentvolumeclaims", "known", m.ns) or {})["metadata"]["uid"]
    code, out = m.migrate("apply", "--pv", m.pv("known"), "--prune-endpoints")
    assert code == 0, out
    pv = m.cluster.get("persistentvolumes", m.pv("known")) or {}
    assert pv["spec"]["csi"]["volumeHandle"] == m.volume_id
    assert "glusterfs" not in pv["spec"]
    wait_for("the claim Bound again", lambda: m.phase("known") == "Bound", timeout=BINDER_DEADLINE)
    assert (m.cluster.get("persistentvolumeclaims", "known", m.ns) or {})["metadata"]["uid"] == uid
    ep = f"{annotations.IN_TREE_DYNAMIC_ENDPOINTS_PREFIX}known"
    assert m.cluster.get("endpoints", ep, m.ns) is None
    assert m.cluster.get("services", ep, m.ns) is None
    assert m.client.get_volume(m.volume_id).id == m.volume_id
    lost = [e for e in m.cluster.events(m.ns, "known") if e["reason"] == "ClaimLost"]
    print(f"\nmigrate apply: Events on the claim meanwhile: {[e['message'] for e in lost]}")


def test_rollback_restores_the_in_tree_pv_with_its_claim_bound(migration: Migration) -> None:
    m = migration
    assert m.migrate("apply", "--pv", m.pv("known"))[0] == 0
    wait_for("the claim Bound", lambda: m.phase("known") == "Bound", timeout=BINDER_DEADLINE)
    code, out = m.migrate("rollback", "--pv", m.pv("known"))
    assert code == 0, out
    pv = m.cluster.get("persistentvolumes", m.pv("known")) or {}
    assert pv["spec"]["glusterfs"]["path"] == m.volume_name
    assert "csi" not in pv["spec"]
    wait_for("the claim Bound again", lambda: m.phase("known") == "Bound", timeout=BINDER_DEADLINE)


def test_classes_replace_recreates_the_in_tree_class_under_its_name_with_our_driver(
    migration: Migration,
) -> None:
    m = migration
    code, out = m.migrate("classes", "--replace")
    assert code == 0, out
    replaced = m.cluster.get("storageclasses", m.in_tree_class) or {}
    assert replaced["provisioner"] == annotations.DRIVER_NAME
    assert replaced["parameters"]["secretName"] == "heketi"
