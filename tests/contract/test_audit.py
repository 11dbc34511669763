"""`glusterfs-provisioner audit` end to end on any Heketi (with the Kubernetes test
server): it reads Heketi only through v10.4.1's routes and finds our orphan."""

import contextlib
import io
import json
import time
import uuid
from collections.abc import Iterator

import pytest

from provisioner import cli, names
from provisioner.audit import command
from provisioner.heketi.client import HeketiClient
from provisioner.heketi.errors import HeketiNotFound
from provisioner.heketi.registry import HeketiClients
from provisioner.heketi.types import Durability, VolumeCreateRequest
from testbed.heketi import routes
from testbed.kube.server import KubeTestServer
from tests.contract.conftest import Call, RecordingSession, Target

NS = "audited"


def _create(client: HeketiClient, name: str) -> str:
    request = VolumeCreateRequest(size_gib=1, name=name, durability=Durability(type="none"))
    return client.create_volume(request).id


@pytest.fixture
def world(target: Target) -> Iterator[tuple[KubeTestServer, str, str]]:
    """(kube, id of a volume with PV and claim, id of an orphan)."""
    client = HeketiClient(target.config())
    made: list[str] = []
    with KubeTestServer() as kube:
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        claim = kube.create(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "kept", "namespace": NS},
                "spec": {
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": "glusterfs",
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        )
        pv_name = f"pvc-{claim['metadata']['uid']}"
        made.append(_create(client, pv_name))
        kube.create(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": pv_name, "annotations": {names.ANN_HEKETI_URL: target.url}},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": "glusterfs",
                    "csi": {"driver": names.DRIVER_NAME, "volumeHandle": made[0]},
                    "claimRef": {"namespace": NS, "name": "kept"},
                },
            }
        )
        made.append(_create(client, f"pvc-{uuid.uuid4()}"))
        yield kube, made[0], made[1]
    for volume_id in made:
        with contextlib.suppress(HeketiNotFound):
            client.delete_volume(volume_id)


def test_the_audit_finds_the_orphan_and_not_the_bound_volume_on_heketi_routes(
    target: Target, world: tuple[KubeTestServer, str, str]
) -> None:
    kube, healthy, orphan = world
    calls: list[Call] = []
    clients = HeketiClients(sessions=lambda config: RecordingSession(config, calls))
    args = cli.build_parser().parse_args(
        ["audit", "--heketi-url", target.url, "--pending-after", "0s", "-o", "json"]
    )
    out = io.StringIO()
    code = command.execute(
        command.config_from_args(args),
        api_client=kube.api_client(),
        environ={"HEKETI_KEY": target.key},
        out=out,
        now=time.time,
        heketi_clients=clients,
    )
    clients.close()
    orphans = {v["id"] for v in json.loads(out.getvalue())["orphaned_volumes"]}
    assert code == command.EXIT_FINDINGS and orphan in orphans and healthy not in orphans
    assert calls
    assert all(routes.route_of(c.method, c.path) for c in calls)
