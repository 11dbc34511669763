"""deploy/overlays/openshift/ as the tests look at it: the overlay's objects
(the base, its own files, its patches applied, so the tests run without
kubectl; `kubectl kustomize` must render exactly these), the SCC definitions
and schema in openshift/, who may use which SCC, and the pods SCC admission sees.
"""

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.unit.deploy import scc
from tests.unit.deploy.manifests import DEPLOY, Obj, base_objects, find, load_yaml_documents

OVERLAY = DEPLOY / "overlays" / "openshift"
DATA = Path(__file__).parent / "openshift"
NAMESPACE = "glusterfs-provisioner"
CONTROLLER = "glusterfs-provisioner-controller"
NODE = "glusterfs-provisioner-node"
KUBERNETES_VERSIONS = ("1.26", "1.37")
#: The namespace's allocation the admission tests run with (scc.Namespace()).
ALLOCATION = scc.Namespace()
UID_LOW, UID_HIGH = scc.parse_block(ALLOCATION.uid_range)


def overlay_spec() -> Obj:
    (spec,) = load_yaml_documents(OVERLAY / "kustomization.yaml")
    return spec


def _apply_json_patch(obj: Obj, operations: list[Obj]) -> None:
    """RFC 6902 add/remove (what the overlay's patches use) on one object."""
    for operation in operations:
        *parents, last = [p.replace("~1", "/") for p in operation["path"].split("/")[1:]]
        target = obj
        for key in parents:
            target = target[key]
        if operation["op"] == "add":
            target[last] = copy.deepcopy(operation["value"])
        elif operation["op"] == "remove":
            del target[last]
        else:
            raise AssertionError(f"op {operation['op']} is not modelled")


def overlay_objects() -> list[Obj]:
    """The base, the overlay's own files (with its label), and its patches applied."""
    spec = overlay_spec()
    own = [
        o
        for name in spec["resources"]
        if name.endswith(".yaml")
        for o in load_yaml_documents(OVERLAY / name)
    ]
    for obj in own:
        for entry in spec["labels"]:
            obj["metadata"].setdefault("labels", {}).update(entry["pairs"])
    objects = base_objects() + own
    for entry in spec["patches"]:
        target = entry["target"]
        obj = find(objects, target["kind"], target["name"])
        _apply_json_patch(obj, yaml.safe_load(entry["patch"]))
    return objects


OBJECTS = overlay_objects()
DEPLOYMENT = find(OBJECTS, "Deployment", CONTROLLER)
DAEMONSET = find(OBJECTS, "DaemonSet", NODE)


def load_scc(name: str) -> Obj:
    (definition,) = load_yaml_documents(DATA / f"scc-{name}.yaml")
    return definition


def scc_schema() -> Obj:
    """The CRD's structural schema as JSON Schema: `nullable: true` admits null."""

    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(item) for item in node]
        if not isinstance(node, dict):
            return node
        converted = {key: convert(value) for key, value in node.items() if key != "nullable"}
        if node.get("nullable") and "type" in node:
            converted["type"] = [node["type"], "null"]
        return converted

    schema: Obj = convert(json.loads((DATA / "securitycontextconstraints.schema.json").read_text()))
    return schema


def sccs_usable_by(service_account: str) -> set[str]:
    """SCC names the overlay lets this ServiceAccount `use` (RBAC rules of the
    roles its bindings name; SCC admission asks in the pod's namespace)."""
    subject = {"kind": "ServiceAccount", "name": service_account, "namespace": NAMESPACE}
    names: set[str] = set()
    for binding in (o for o in OBJECTS if o["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        if subject not in binding["subjects"]:
            continue
        role = find(OBJECTS, binding["roleRef"]["kind"], binding["roleRef"]["name"])
        for rule in role["rules"]:
            if "security.openshift.io" in rule["apiGroups"] and "use" in rule["verbs"]:
                assert "securitycontextconstraints" in rule["resources"]
                names.update(rule["resourceNames"])
    return names


#: The volume the ServiceAccount admission plugin adds where a token is mounted
#: (kubernetes plugin/pkg/admission/serviceaccount/admission.go; the name's
#: suffix is random).
TOKEN_VOLUME: Obj = {
    "name": "kube-api-access-x7k2p",
    "projected": {
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {
                "configMap": {
                    "name": "kube-root-ca.crt",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }
            },
            {
                "downwardAPI": {
                    "items": [
                        {
                            "path": "namespace",
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                        }
                    ]
                }
            },
        ]
    },
}


def pod_of(workload: Obj) -> Obj:
    """The pod the workload's controller creates, as SCC admission sees it: after
    defaulting, which makes every container port of a hostNetwork pod a host port
    (kubernetes pkg/apis/core/v1/defaults.go defaultHostNetworkPorts), and after
    the ServiceAccount admission plugin, which adds TOKEN_VOLUME unless the pod or
    its ServiceAccount opts out of the token."""
    template = copy.deepcopy(workload["spec"]["template"])
    spec = template["spec"]
    if spec.get("hostNetwork"):
        for item in spec.get("initContainers", []) + spec["containers"]:
            for port in item.get("ports", []):
                port.setdefault("hostPort", port["containerPort"])
    accounts = [o for o in OBJECTS if o["kind"] == "ServiceAccount"]
    account = find(accounts, "ServiceAccount", spec["serviceAccountName"])
    automount = spec.get(
        "automountServiceAccountToken", account.get("automountServiceAccountToken")
    )
    if automount is not False:
        spec.setdefault("volumes", []).append(copy.deepcopy(TOKEN_VOLUME))
    return {"metadata": template["metadata"], "spec": spec}


def admit(
    workload: Obj, scc_name: str, mutate: Callable[[Obj], None] = lambda pod: None
) -> tuple[list[str], Obj]:
    pod = pod_of(workload)
    mutate(pod["spec"])
    return scc.admit(pod, load_scc(scc_name), ALLOCATION)
