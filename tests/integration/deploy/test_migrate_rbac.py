"""The migrate ClusterRole in deploy/migrate/ grants exactly the API calls migrate makes.

Every action runs against the Kubernetes API test server (which logs every request):
plan with the Heketi check, apply --all with --prune-endpoints and a named --prune, a
rollback finished after an interruption while the PV was gone (the record is then
found by listing claims), and classes --replace. The test's own objects go straight
into the server's store, so the request log holds migrate's requests only.
"""

from enum import Enum
from pathlib import Path

import pytest
import yaml

from testbed.heketi.server import HeketiTestServer
from testbed.kube.server import KubeTestServer
from tests.integration.deploy.test_controller_rbac import Grant, as_grant
from tests.integration.migrate.world import (
    NS,
    World,
    heketi_class,
    heketi_client,
    heketi_secret,
)

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


class Interrupted(Exception):
    """Stands for a crash of a rollback between two steps."""


def _granted() -> set[Grant]:
    with (DEPLOY / "migrate" / "migrate-rbac.yaml").open(encoding="utf-8") as stream:
        docs = [doc for doc in yaml.safe_load_all(stream) if doc]
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _stop_after_delete(pv: str, step: Enum) -> None:
    if step.name == "UNPROTECT":
        raise Interrupted(pv)


def _every_action(world: World) -> None:
    world.add_static()
    pv, _ = world.add_heketi()
    assert world.migrate("plan") == 0
    prune = ("--prune-endpoints", "--prune", f"{NS}/glusterfs-cluster")
    assert world.migrate("apply", "--all", *prune) == 0, world.output
    world.checkpoint = _stop_after_delete
    with pytest.raises(Interrupted):
        world.migrate("rollback", "--pv", pv)
    world.checkpoint = None
    assert world.migrate("rollback", "--pv", pv) == 0, world.output
    assert world.migrate("classes", "--replace") == 0


def test_the_migrate_cluster_role_grants_what_migrate_asks_for_and_nothing_more() -> None:
    with (
        KubeTestServer(binder=True, pv_protection=True) as kube,
        HeketiTestServer(admin_key="migrate-admin-key") as heketi,
    ):
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        kube.create(heketi_secret())
        kube.create(heketi_class(heketi.url))
        client = heketi_client(heketi.url)
        try:
            _every_action(World(kube, heketi, client))
        finally:
            client.close()
        asked = {as_grant(r.verb, r.path)[0] for r in kube.requests}
    assert asked == _granted()
