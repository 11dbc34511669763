"""`glusterfs-provisioner migrate` asks any Heketi (the test server, or a real v10.4.1
with `make contract`) whether it knows the volumes of in-tree Heketi PVs, and leaves
the volume alone while bringing its PV across."""

import contextlib
import io
from collections.abc import Iterator

import pytest

from provisioner import cli, names
from provisioner.heketi.client import HeketiClient
from provisioner.heketi.errors import HeketiNotFound
from provisioner.heketi.types import Durability, VolumeCreateRequest
from provisioner.migrate import command
from testbed.kube_server import KubeTestServer
from tests.contract.conftest import Target, unique
from tests.integration.migrate.world import (
    NS,
    claim,
    endpoints,
    heketi_annotations,
    in_tree_pv,
    service,
    wait_for,
)

UNKNOWN_ID = "0123456789abcdef0123456789abcdef"


def _in_tree(kube: KubeTestServer, claim_name: str, volume_id: str, path: str) -> None:
    ep = f"{names.IN_TREE_DYNAMIC_ENDPOINTS_PREFIX}{claim_name}"
    kube.create(endpoints(ep))
    kube.create(service(ep))
    kube.create(in_tree_pv(f"pvc-{claim_name}", path=path, endpoints_name=ep,
                           claim_name=claim_name, policy="Delete", storage_class="in-tree",
                           annotations=heketi_annotations(volume_id, 2001)))  # fmt: skip
    kube.create(claim(claim_name, volume=f"pvc-{claim_name}", storage_class="in-tree"))
    wait_for(f"claim {claim_name} bound", lambda: _phase(kube, claim_name) == "Bound")


def _phase(kube: KubeTestServer, claim_name: str) -> str:
    found = kube.get("persistentvolumeclaims", claim_name, NS) or {}
    return str((found.get("status") or {}).get("phase", ""))


@pytest.fixture
def cluster(target: Target) -> Iterator[tuple[KubeTestServer, HeketiClient, str, str]]:
    """(kube, client, id of a real volume with its in-tree PV `pvc-known`, its name)."""
    client = HeketiClient(target.config())
    name = unique("migrate")
    request = VolumeCreateRequest(size_gib=1, name=name, durability=Durability(type="none"))
    volume = client.create_volume(request)
    try:
        with KubeTestServer(binder=True, pv_protection=True) as kube:
            kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
            kube.create({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/glusterfs",
                         "metadata": {"name": "heketi", "namespace": NS},
                         "stringData": {"key": target.key}})  # fmt: skip
            kube.create({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                         "metadata": {"name": "in-tree"}, "provisioner": names.IN_TREE_PLUGIN,
                         "parameters": {"resturl": target.url, "restuser": "admin",
                                        "secretNamespace": NS,
                                        "secretName": "heketi"}})  # fmt: skip
            _in_tree(kube, "known", volume.id, volume.name)
            yield kube, client, volume.id, volume.name
    finally:
        with contextlib.suppress(HeketiNotFound):
            client.delete_volume(volume.id)
        client.close()


def _migrate(kube: KubeTestServer, *argv: str) -> tuple[int, str]:
    config = command.config_from_args(cli.build_parser().parse_args(["migrate", *argv]))
    out = io.StringIO()
    return command.execute(config, api_client=kube.api_client(), out=out), out.getvalue()


def test_plan_confirms_a_known_volume_and_blocks_unknown_or_misnamed_ones(
    cluster: tuple[KubeTestServer, HeketiClient, str, str],
) -> None:
    kube, _, volume_id, name = cluster
    _in_tree(kube, "ghost", UNKNOWN_ID, f"vol_{UNKNOWN_ID}")
    _in_tree(kube, "renamed", volume_id, "some-other-volume")
    code, out = _migrate(kube, "plan")
    assert code == 1
    assert "pvc-ghost: BLOCKED: Heketi at" in out
    assert f"does not know volume id {UNKNOWN_ID}" in out
    assert f"names volume {volume_id} '{name}', but the PV mounts 'some-other-volume'" in out
    assert "pvc-known: 1. record the in-tree PV" in out


def test_apply_brings_the_pv_across_and_leaves_the_heketi_volume(
    cluster: tuple[KubeTestServer, HeketiClient, str, str],
) -> None:
    kube, client, volume_id, _ = cluster
    code, out = _migrate(kube, "apply", "--pv", "pvc-known")
    assert code == 0, out
    pv = kube.get("persistentvolumes", "pvc-known") or {}
    assert pv["spec"]["csi"]["volumeHandle"] == volume_id
    assert client.get_volume(volume_id).id == volume_id
