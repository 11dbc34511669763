"""The kustomize base in deploy/: renders, validates, and hangs together."""

import kubernetes_validate
import pytest

from provisioner.core.annotations import DRIVER_NAME
from tests.unit.deploy.manifests import (
    DEPLOY,
    Obj,
    base_objects,
    container,
    example_objects,
    find,
    flag_value,
    kustomization,
    kustomize_render,
    load_yaml_documents,
    object_id,
    pod_containers,
    pod_spec,
)

NAMESPACE = "glusterfs-provisioner"
#: Validated against the first Kubernetes release without the in-tree glusterfs
#: plugin (the clusters that need this project) and the newest schema shipped.
KUBERNETES_VERSIONS = ("1.26", "1.37")
CLUSTER_SCOPED_KINDS = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CSIDriver",
    "StorageClass",
}

BASE = base_objects()
EXAMPLES = example_objects()


def _deployment() -> Obj:
    return find(BASE, "Deployment", "glusterfs-provisioner-controller")


def _daemonset() -> Obj:
    return find(BASE, "DaemonSet", "glusterfs-provisioner-node")


def test_kubectl_kustomize_renders_the_base_files_with_the_declared_label_and_image() -> None:
    rendered = kustomize_render(DEPLOY)
    by_id = {object_id(obj): obj for obj in rendered}
    assert len(by_id) == len(rendered), "two rendered objects share kind, namespace and name"
    assert by_id == {object_id(obj): obj for obj in BASE}


def test_deploy_applies_the_base_and_not_the_examples() -> None:
    (top,) = load_yaml_documents(DEPLOY / "kustomization.yaml")
    assert top["resources"] == ["base"]
    assert not any("examples" in path for path in kustomization()["resources"])
    assert {obj["kind"] for obj in BASE} == {
        "Namespace",
        "CSIDriver",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "PodDisruptionBudget",
        "DaemonSet",
    }


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("obj", BASE + EXAMPLES, ids=object_id)
def test_every_object_validates_against_the_kubernetes_schema(obj: Obj, version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


def test_every_namespaced_base_object_lives_in_the_provisioner_namespace() -> None:
    for obj in BASE:
        expected = None if obj["kind"] in CLUSTER_SCOPED_KINDS else NAMESPACE
        assert obj["metadata"].get("namespace") == expected, object_id(obj)
    assert find(BASE, "Namespace")["metadata"]["name"] == NAMESPACE


def test_the_namespace_admits_the_privileged_node_plugin() -> None:
    labels = find(BASE, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"


@pytest.mark.parametrize("kind", ["Deployment", "DaemonSet"])
def test_workload_selector_matches_its_pod_template_labels(kind: str) -> None:
    workload = find(BASE, kind)
    selector = workload["spec"]["selector"]["matchLabels"]
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()


def test_controller_and_node_pods_are_selected_apart() -> None:
    controller = _deployment()["spec"]["selector"]["matchLabels"]
    node = _daemonset()["spec"]["template"]["metadata"]["labels"]
    assert not controller.items() <= node.items()


def test_disruption_budget_and_spread_select_the_controller_pods() -> None:
    labels = _deployment()["spec"]["template"]["metadata"]["labels"]
    pdb = find(BASE, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    spread = pod_spec(_deployment())["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]
    assert pdb.items() <= labels.items()
    assert spread.items() <= labels.items()


def test_pods_run_as_service_accounts_of_the_base() -> None:
    accounts = {o["metadata"]["name"] for o in BASE if o["kind"] == "ServiceAccount"}
    for workload in (_deployment(), _daemonset()):
        assert pod_spec(workload)["serviceAccountName"] in accounts


@pytest.mark.parametrize("kind", ["ClusterRoleBinding", "RoleBinding"])
def test_bindings_tie_an_existing_role_to_an_existing_service_account(kind: str) -> None:
    accounts = {
        (o["metadata"]["namespace"], o["metadata"]["name"])
        for o in BASE
        if o["kind"] == "ServiceAccount"
    }
    for binding in (o for o in BASE if o["kind"] == kind):
        role_ref = binding["roleRef"]
        role = find(BASE, role_ref["kind"], role_ref["name"])
        if kind == "RoleBinding":
            assert role["metadata"]["namespace"] == binding["metadata"]["namespace"]
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount"
            assert (subject["namespace"], subject["name"]) in accounts


def _rules_of(account: str) -> list[Obj]:
    rules: list[Obj] = []
    for binding in (o for o in BASE if o["kind"] in ("ClusterRoleBinding", "RoleBinding")):
        if account in {subject["name"] for subject in binding["subjects"]}:
            rules += find(BASE, binding["roleRef"]["kind"], binding["roleRef"]["name"])["rules"]
    return rules


def test_the_node_account_may_only_create_events() -> None:
    node = pod_spec(_daemonset())["serviceAccountName"]
    assert _rules_of(node) == [{"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}]


def test_only_the_node_plugin_container_gets_an_api_token() -> None:
    daemonset = _daemonset()
    node_account = find(BASE, "ServiceAccount", pod_spec(daemonset)["serviceAccountName"])
    assert node_account["automountServiceAccountToken"] is False
    token_dir = "/var/run/secrets/kubernetes.io/serviceaccount"
    with_token = {
        c["name"]
        for c in pod_containers(daemonset)
        if any(m["mountPath"] == token_dir for m in c.get("volumeMounts", []))
    }
    assert with_token == {"glusterfs-plugin"}


def test_rbac_rules_name_every_group_resource_and_verb_without_wildcards() -> None:
    for role in (o for o in BASE if o["kind"] in ("ClusterRole", "Role")):
        for rule in role["rules"]:
            assert rule.keys() == {"apiGroups", "resources", "verbs"}, object_id(role)
            for field in ("apiGroups", "resources", "verbs"):
                assert rule[field], f"{object_id(role)}: empty {field}"
                assert not any("*" in value for value in rule[field]), f"{object_id(role)}: {rule}"


def test_leases_are_granted_only_in_the_controller_namespace() -> None:
    cluster_resources = {
        resource
        for role in BASE
        if role["kind"] == "ClusterRole"
        for rule in role["rules"]
        for resource in rule["resources"]
    }
    assert "leases" not in cluster_resources
    role = find(BASE, "Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update"],
        },
    ]


def test_csidriver_is_named_after_the_driver_and_needs_no_attach() -> None:
    driver = find(BASE, "CSIDriver")
    assert driver["metadata"]["name"] == DRIVER_NAME
    assert driver["spec"]["attachRequired"] is False
    assert driver["spec"]["fsGroupPolicy"] == "None"
    assert driver["spec"]["podInfoOnMount"] is False


def test_every_component_uses_the_driver_name_constant() -> None:
    controller_args = container(_deployment(), "controller")["args"]
    plugin_args = container(_daemonset(), "glusterfs-plugin")["args"]
    registrar_args = container(_daemonset(), "node-driver-registrar")["args"]
    assert flag_value(controller_args, "--driver-name") == DRIVER_NAME
    assert flag_value(plugin_args, "--driver-name") == DRIVER_NAME
    assert f"/plugins/{DRIVER_NAME}/" in flag_value(registrar_args, "--kubelet-registration-path")
    storage_class = find(EXAMPLES, "StorageClass", "glusterfs")
    assert storage_class["provisioner"] == DRIVER_NAME


def _host_paths(workload: Obj) -> dict[str, str]:
    return {
        volume["name"]: volume["hostPath"]["path"]
        for volume in pod_spec(workload)["volumes"]
        if "hostPath" in volume
    }


def _mount_path(container_obj: Obj, volume: str) -> str:
    paths: list[str] = [
        m["mountPath"] for m in container_obj["volumeMounts"] if m["name"] == volume
    ]
    assert len(paths) == 1, f"{container_obj['name']} does not mount {volume}"
    return paths[0]


def test_plugin_socket_registrar_and_probe_agree_on_one_socket() -> None:
    daemonset = _daemonset()
    host_dir = _host_paths(daemonset)["socket-dir"]
    assert host_dir == f"/var/lib/kubelet/plugins/{DRIVER_NAME}"
    plugin = container(daemonset, "glusterfs-plugin")
    endpoint = flag_value(plugin["args"], "--endpoint")
    assert endpoint.startswith("unix://")
    socket_in_pod = endpoint.removeprefix("unix://")
    registrar = container(daemonset, "node-driver-registrar")
    assert flag_value(registrar["args"], "--csi-address") == socket_in_pod
    for each in pod_containers(daemonset):
        socket_dir = _mount_path(each, "socket-dir")
        assert socket_in_pod == f"{socket_dir}/csi.sock", each["name"]
    registration = flag_value(
        container(daemonset, "node-driver-registrar")["args"],
        "--kubelet-registration-path",
    )
    assert registration == f"{host_dir}/csi.sock"


def test_registrar_writes_into_the_kubelet_plugin_registry() -> None:
    daemonset = _daemonset()
    registrar = container(daemonset, "node-driver-registrar")
    assert _host_paths(daemonset)["registration-dir"] == "/var/lib/kubelet/plugins_registry"
    assert _mount_path(registrar, "registration-dir") == "/registration"


def test_node_ports_on_the_host_network_do_not_collide() -> None:
    ports = [p["containerPort"] for c in pod_containers(_daemonset()) for p in c.get("ports", [])]
    assert len(ports) == len(set(ports)), ports


def test_node_plugin_is_privileged_with_bidirectional_kubelet_mounts() -> None:
    daemonset = _daemonset()
    plugin = container(daemonset, "glusterfs-plugin")
    kubelet_dir = flag_value(plugin["args"], "--kubelet-dir")
    assert plugin["securityContext"]["privileged"] is True
    bidirectional = {
        m["mountPath"]
        for m in plugin["volumeMounts"]
        if m.get("mountPropagation") == "Bidirectional"
    }
    assert bidirectional == {f"{kubelet_dir}/pods", f"{kubelet_dir}/plugins/kubernetes.io/csi"}
    host_paths = _host_paths(daemonset)
    for mount in plugin["volumeMounts"]:
        if mount["mountPath"] in bidirectional:
            assert host_paths[mount["name"]] == mount["mountPath"], "host and pod paths must match"


def test_node_plugin_shares_the_host_pid_and_network_namespaces() -> None:
    spec = pod_spec(_daemonset())
    assert spec["hostPID"] is True
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"


def test_node_id_is_the_kubernetes_node_name() -> None:
    plugin = container(_daemonset(), "glusterfs-plugin")
    env = {var["name"]: var for var in plugin["env"]}
    assert env["NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert flag_value(plugin["args"], "--node-id") == "$(NODE_ID)"


def test_sidecars_are_pinned_kubernetes_csi_releases() -> None:
    for name in ("node-driver-registrar",):
        image = container(_daemonset(), name)["image"]
        repository, _, tag = image.rpartition(":")
        assert repository.startswith("registry.k8s.io/sig-storage/"), image
        assert tag.startswith("v") and tag != "latest", image


def test_controller_runs_two_leader_elected_replicas_in_its_namespace() -> None:
    deployment = _deployment()
    controller = container(deployment, "controller")
    assert deployment["spec"]["replicas"] == 2
    assert "--leader-elect" in controller["args"]
    assert flag_value(controller["args"], "--leader-election-namespace") == "$(POD_NAMESPACE)"
    env = {var["name"]: var for var in controller["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"


@pytest.mark.parametrize(
    ("workload", "name"), [("Deployment", "controller"), ("DaemonSet", "glusterfs-plugin")]
)
def test_probes_and_metrics_use_the_metrics_address_port(workload: str, name: str) -> None:
    """Both daemons serve /metrics, /healthz and /readyz themselves; their probes use them."""
    served = container(find(BASE, workload), name)
    port = int(flag_value(served["args"], "--metrics-address").rpartition(":")[2])
    ports = {p["name"]: p["containerPort"] for p in served["ports"]}
    assert ports["metrics"] == port
    assert served["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert served["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


def test_controller_runs_unprivileged_with_resources_set() -> None:
    deployment = _deployment()
    controller = container(deployment, "controller")
    assert pod_spec(deployment)["securityContext"]["runAsNonRoot"] is True
    context = controller["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= controller["resources"]["requests"].keys()
    assert "memory" in controller["resources"]["limits"]


def test_both_roles_run_the_same_image() -> None:
    controller = container(_deployment(), "controller")["image"]
    plugin = container(_daemonset(), "glusterfs-plugin")["image"]
    assert controller == plugin


def _host_path_of(workload: Obj, container_name: str, path: str) -> str | None:
    """The host path behind `path` in a container, if a hostPath volume holds it."""
    host_paths = _host_paths(workload)
    for mount in container(workload, container_name)["volumeMounts"]:
        root = mount["mountPath"].rstrip("/")
        if mount["name"] in host_paths and (path == root or path.startswith(f"{root}/")):
            return host_paths[mount["name"]] + path[len(root) :]
    return None


@pytest.mark.parametrize("flag", ["--state-dir", "--mount-log-dir", "--fuse-cgroup"])
def test_node_plugin_keeps_what_must_outlive_it_on_the_host(flag: str) -> None:
    daemonset = _daemonset()
    path = flag_value(container(daemonset, "glusterfs-plugin")["args"], flag)
    assert _host_path_of(daemonset, "glusterfs-plugin", path) is not None, f"{flag}={path}"


def test_fuse_clients_go_to_a_cgroup_of_the_hosts_cgroup_tree() -> None:
    daemonset = _daemonset()
    args = container(daemonset, "glusterfs-plugin")["args"]
    fuse_cgroup = flag_value(args, "--fuse-cgroup")
    host = _host_path_of(daemonset, "glusterfs-plugin", fuse_cgroup)
    assert host is not None
    assert host.startswith("/sys/fs/cgroup/")
    assert host.count("/") == 4, "a direct child of the cgroup root"
    assert flag_value(args, "--fuse-cgroup-namespace") == "/proc/1/ns/cgroup"
    assert pod_spec(daemonset)["hostPID"] is True, "/proc/1 is the host's init only with hostPID"
