"""deploy/overlays/openshift/: renders, validates, and grants the `privileged`
SecurityContextConstraints (SCC) to the node plugin only.

The SCC definitions (openshift/, from the OpenShift release manifests) are data
for test_openshift_scc_admission.py; here they are checked against the SCC
schema of openshift/api.
"""

from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests.unit.deploy.manifests import (
    Obj,
    base_objects,
    find,
    kustomize_render,
    object_id,
    pod_spec,
)
from tests.unit.deploy.openshift_overlay import (
    CONTROLLER,
    DAEMONSET,
    DEPLOYMENT,
    KUBERNETES_VERSIONS,
    NAMESPACE,
    NODE,
    OBJECTS,
    OVERLAY,
    load_scc,
    scc_schema,
    sccs_usable_by,
)

# --- rendering and schemas --------------------------------------------------


def test_kubectl_kustomize_renders_exactly_these_objects() -> None:
    rendered = kustomize_render(OVERLAY)
    assert {object_id(o): o for o in rendered} == {object_id(o): o for o in OBJECTS}


def test_the_overlay_is_the_base_plus_the_node_plugins_scc_binding() -> None:
    added = {object_id(o) for o in OBJECTS} - {object_id(o) for o in base_objects()}
    assert added == {
        "ClusterRole/glusterfs-provisioner-node-scc",
        f"RoleBinding/{NAMESPACE}/glusterfs-provisioner-node-scc",
    }
    assert len(OBJECTS) == len(base_objects()) + 2


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("obj", OBJECTS, ids=object_id)
def test_every_object_validates_against_the_kubernetes_schema(obj: Obj, version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("name", ["restricted-v2", "privileged"])
def test_the_scc_definitions_validate_against_the_openshift_api_schema(name: str) -> None:
    jsonschema.validate(load_scc(name), scc_schema())


@pytest.mark.parametrize(
    ("field", "value"),
    [("allowHostPID", "yes"), ("volumes", "emptyDir"), ("runAsUser", {"uidRangeMin": "x"})],
    ids=["boolean-as-string", "list-as-string", "uid-as-string"],
)
def test_the_openshift_schema_refuses_a_malformed_scc(field: str, value: Any) -> None:
    broken = load_scc("restricted-v2") | {field: value}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, scc_schema())


def test_the_openshift_schema_refuses_an_scc_missing_a_required_field() -> None:
    broken = {k: v for k, v in load_scc("privileged").items() if k != "allowHostNetwork"}
    with pytest.raises(jsonschema.ValidationError, match="allowHostNetwork"):
        jsonschema.validate(broken, scc_schema())


# --- who may use which SCC ----------------------------------------------------


def test_only_the_node_plugin_may_use_the_privileged_scc() -> None:
    assert sccs_usable_by(NODE) == {"privileged"}
    assert sccs_usable_by(CONTROLLER) == set()
    role = find(OBJECTS, "ClusterRole", "glusterfs-provisioner-node-scc")
    assert role["rules"] == [
        {
            "apiGroups": ["security.openshift.io"],
            "resources": ["securitycontextconstraints"],
            "resourceNames": ["privileged"],
            "verbs": ["use"],
        }
    ]


@pytest.mark.parametrize(
    ("workload", "required"),
    [(CONTROLLER, "restricted-v2"), (NODE, "privileged")],
)
def test_each_pod_template_requires_the_scc_it_is_tested_under(
    workload: str, required: str
) -> None:
    obj = DEPLOYMENT if workload == CONTROLLER else DAEMONSET
    annotations = obj["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"openshift.io/required-scc": required}
    assert pod_spec(obj)["serviceAccountName"] == workload


def test_the_namespace_opts_out_of_the_default_node_selector() -> None:
    namespace = find(OBJECTS, "Namespace", NAMESPACE)
    assert namespace["metadata"]["annotations"] == {"openshift.io/node-selector": ""}
