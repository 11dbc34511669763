"""deploy/audit/'s roles grant exactly the API calls `glusterfs-provisioner audit` makes.

The listing runs against the Kubernetes API test server (which logs every request) with
the key from `--heketi-secret` and the state ConfigMap in `--state-namespace`, as
deploy/audit/ expects; the test's own objects go straight into the server's store, so
the request log holds the audit's requests only. The same comparison against a real
kube-apiserver's audit log is tests/contract/test_audit.py with `make contract-kube`.
"""

import base64
import io
import time
from pathlib import Path
from typing import Any

import yaml

from provisioner import cli
from provisioner.audit import command
from testbed.heketi.server import HeketiTestServer
from testbed.kube.server import KubeTestServer
from tests.integration.deploy.test_controller_rbac import Grant, as_grant

MANIFEST = Path(__file__).resolve().parents[3] / "deploy" / "audit" / "audit-rbac.yaml"
NAMESPACE = "glusterfs-provisioner"
KEY = "audit-rbac-admin-key"


def _roles() -> dict[str, Any]:
    with MANIFEST.open(encoding="utf-8") as stream:
        docs = [doc for doc in yaml.safe_load_all(stream) if doc]
    return {d["kind"]: d for d in docs if d["kind"] in ("ClusterRole", "Role")}


def _grants(role: dict[str, Any]) -> set[Grant]:
    rules = role["rules"]
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]
            for v in rule["verbs"]}  # fmt: skip


def _audit(kube: KubeTestServer, heketi: HeketiTestServer) -> int:
    args = cli.build_parser().parse_args(
        ["audit", "--heketi-url", heketi.url, "--pending-after", "0s",
         "--heketi-secret", f"{NAMESPACE}/heketi-admin", "--state-namespace", NAMESPACE]
    )  # fmt: skip
    return command.execute(command.config_from_args(args), api_client=kube.api_client(),
                           environ={}, out=io.StringIO(), now=time.time)  # fmt: skip


def test_the_audit_roles_grant_what_the_listing_asks_for_and_nothing_more() -> None:
    with KubeTestServer() as kube, HeketiTestServer(admin_key=KEY) as heketi:
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        kube.create({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/glusterfs",
                     "metadata": {"name": "heketi-admin", "namespace": NAMESPACE},
                     "data": {"key": base64.b64encode(KEY.encode()).decode()}})  # fmt: skip
        assert _audit(kube, heketi) == command.EXIT_CLEAN
        asked = [(as_grant(r.verb, r.path), r.path.rsplit("/", 1)[-1]) for r in kube.requests]
    roles = _roles()
    cluster_wide = {grant for (grant, namespace), _ in asked if namespace is None}
    in_namespace = {grant for (grant, namespace), _ in asked if namespace is not None}
    assert cluster_wide == _grants(roles["ClusterRole"])
    assert in_namespace == _grants(roles["Role"])
    assert {namespace for (_, namespace), _ in asked if namespace} == {NAMESPACE}
    names = {name for rule in roles["Role"]["rules"] for name in rule["resourceNames"]}
    assert {name for (_, namespace), name in asked if namespace} == names
