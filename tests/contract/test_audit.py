"""`glusterfs-provisioner audit` end to end on any Heketi and on both Kubernetes APIs
(the API test server, and a real kube-apiserver 1.36 with `make contract-kube`), as
the service account of deploy/audit/ under its read-only RBAC: it reads Heketi only
through v10.4.1's routes, takes the key from the Secret its Role names, and finds our
orphan and the claim stuck pending, never the volume a PV holds."""

import base64
import contextlib
import io
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from provisioner import cli
from provisioner.audit import command
from provisioner.core import annotations
from provisioner.heketi.client import HeketiClient
from provisioner.heketi.errors import HeketiNotFound
from provisioner.heketi.registry import HeketiClients
from provisioner.heketi.types import Durability, VolumeCreateRequest
from provisioner.kube.client import api_client
from testbed.clusters import INSTALL_NS, Cluster
from testbed.controller_world import Target
from testbed.heketi import routes
from tests.contract.conftest import Call, RecordingSession

#: The Secret deploy/audit/audit-rbac.yaml lets the audit read (the example's name).
KEY_SECRET = "heketi-admin"


@dataclass(frozen=True)
class Audited:
    """What the audit looks at: a namespace, the Heketi volume of a bound PV, an
    orphan, and a claim of this driver's class that nothing provisions."""

    ns: str
    healthy: str
    orphan: str


def _create(client: HeketiClient, name: str) -> str:
    request = VolumeCreateRequest(size_gib=1, name=name, durability=Durability(type="none"))
    return client.create_volume(request).id


def _claim(ns: str, name: str, storage_class: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": storage_class,
                     "resources": {"requests": {"storage": "1Gi"}}}}  # fmt: skip


def _pv(name: str, ns: str, claim: str, handle: str, url: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {annotations.ANN_HEKETI_URL: url}},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"],
                     "storageClassName": "", "persistentVolumeReclaimPolicy": "Retain",
                     "csi": {"driver": annotations.DRIVER_NAME, "volumeHandle": handle},
                     "claimRef": {"namespace": ns, "name": "kept"}}}  # fmt: skip


def _key_secret(cluster: Cluster, key: str) -> None:
    cluster.delete("secrets", KEY_SECRET, INSTALL_NS)
    cluster.create({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/glusterfs",
                    "metadata": {"name": KEY_SECRET, "namespace": INSTALL_NS},
                    "data": {"key": base64.b64encode(key.encode()).decode()}})  # fmt: skip


@pytest.fixture
def audited(cluster: Cluster, target: Target) -> Iterator[Audited]:
    client = HeketiClient(target.config())
    ns = cluster.namespace("audited")
    storage_class = f"{ns}-class"
    cluster.create({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                    "metadata": {"name": storage_class}, "provisioner": annotations.DRIVER_NAME,
                    "parameters": {"resturl": target.url}})  # fmt: skip
    _key_secret(cluster, target.key)
    made: list[str] = []
    pv_name = ""
    try:
        kept = cluster.create(_claim(ns, "kept", ""))
        pv_name = f"pvc-{kept['metadata']['uid']}"
        made.append(_create(client, pv_name))
        cluster.create(_pv(pv_name, ns, "kept", made[0], target.url))
        cluster.create(_claim(ns, "waiting", storage_class))
        made.append(_create(client, f"pvc-{uuid.uuid4()}"))
        yield Audited(ns, made[0], made[1])
    finally:
        for volume_id in made:
            with contextlib.suppress(HeketiNotFound):
                client.delete_volume(volume_id)
        client.close()
        cluster.delete("namespaces", ns)
        if pv_name:
            cluster.delete("persistentvolumes", pv_name)
        cluster.delete("storageclasses", storage_class)
        cluster.delete("secrets", KEY_SECRET, INSTALL_NS)


def test_the_audit_finds_the_orphan_and_the_pending_claim_as_its_account_on_heketi_routes(
    cluster: Cluster, target: Target, audited: Audited, tmp_path: Path
) -> None:
    calls: list[Call] = []
    clients = HeketiClients(sessions=lambda config: RecordingSession(config, calls))
    args = cli.build_parser().parse_args(
        ["audit", "--heketi-url", target.url, "--pending-after", "0s", "-o", "json",
         "--heketi-secret", f"{INSTALL_NS}/{KEY_SECRET}", "--state-namespace", INSTALL_NS]
    )  # fmt: skip
    out = io.StringIO()
    with api_client(str(cluster.kubeconfig("audit", tmp_path))) as kube:
        code = command.execute(command.config_from_args(args), api_client=kube, environ={},
                               out=out, now=time.time, heketi_clients=clients)  # fmt: skip
    clients.close()
    report = json.loads(out.getvalue())
    orphans = {v["id"] for v in report["orphaned_volumes"]}
    assert code == command.EXIT_FINDINGS
    assert audited.orphan in orphans and audited.healthy not in orphans
    stuck = {c["claim"] for c in report["pending_claims"]}
    assert f"{audited.ns}/waiting" in stuck and f"{audited.ns}/kept" not in stuck
    assert calls
    assert all(routes.route_of(c.method, c.path) for c in calls)
