"""deploy/overlays/sidecars/: the "standard sidecar" deployment renders, validates, and
runs `node --controller-service` next to external-provisioner and external-resizer."""

import copy
from typing import Any

import kubernetes_validate
import pytest
import yaml

from provisioner import cli
from provisioner.core.annotations import DRIVER_NAME
from provisioner.core.storageclass import parse_parameters
from provisioner.csi import node_command
from provisioner.csi.heketi_access import split_parameters, with_url
from tests.unit.deploy.manifests import (
    DEPLOY,
    Obj,
    base_objects,
    container,
    example_objects,
    expand_env,
    find,
    flag_value,
    kustomize_render,
    load_yaml_documents,
    object_id,
    pod_containers,
    pod_spec,
)

OVERLAY = DEPLOY / "overlays" / "sidecars"
NAMESPACE = "glusterfs-provisioner"
KUBERNETES_VERSIONS = ("1.26", "1.37")
SOCKET = "/csi/csi.sock"
CONTROLLER = "glusterfs-provisioner-csi-controller"


def overlay_spec() -> Obj:
    (spec,) = load_yaml_documents(OVERLAY / "kustomization.yaml")
    return spec


def deleted_ids(spec: Obj) -> set[str]:
    ids = set()
    for entry in spec["patches"]:
        patch = yaml.safe_load(entry["patch"])
        assert patch.pop("$patch") == "delete"
        ids.add(object_id(patch))
    return ids


def own_objects(spec: Obj) -> list[Obj]:
    """The overlay's own files with its namespace, label and image applied."""
    files = [OVERLAY / name for name in spec["resources"] if name.endswith(".yaml")]
    images = {image["name"]: image for image in spec["images"]}
    objects = []
    for obj in (o for path in files for o in load_yaml_documents(path)):
        obj = copy.deepcopy(obj)
        for entry in spec["labels"]:
            obj["metadata"].setdefault("labels", {}).update(entry["pairs"])
            if obj["kind"] == "Deployment":
                obj["spec"]["template"]["metadata"]["labels"].update(entry["pairs"])
        for item in pod_containers(obj):
            image = images.get(item["image"])
            if image is not None:
                item["image"] = f"{image['name']}:{image['newTag']}"
        objects.append(obj)
    return objects


SPEC = overlay_spec()
OBJECTS = [o for o in base_objects() if object_id(o) not in deleted_ids(SPEC)] + own_objects(SPEC)
DEPLOYMENT = find(OBJECTS, "Deployment", CONTROLLER)
PLUGIN = container(DEPLOYMENT, "glusterfs-plugin")


def test_kubectl_kustomize_renders_exactly_these_objects() -> None:
    rendered = kustomize_render(OVERLAY)
    assert {object_id(o): o for o in rendered} == {object_id(o): o for o in OBJECTS}


def test_the_pvc_controller_and_its_rbac_are_replaced_not_doubled() -> None:
    assert deleted_ids(SPEC) == {
        f"Deployment/{NAMESPACE}/glusterfs-provisioner-controller",
        f"PodDisruptionBudget/{NAMESPACE}/glusterfs-provisioner-controller",
        f"ServiceAccount/{NAMESPACE}/glusterfs-provisioner-controller",
        "ClusterRole/glusterfs-provisioner-controller",
        "ClusterRoleBinding/glusterfs-provisioner-controller",
        f"Role/{NAMESPACE}/glusterfs-provisioner-leader-election",
        f"RoleBinding/{NAMESPACE}/glusterfs-provisioner-leader-election",
    }
    base_ids = {object_id(o) for o in base_objects()}
    assert deleted_ids(SPEC) <= base_ids, "a delete patch names an object the base lacks"
    assert [o["metadata"]["name"] for o in OBJECTS if o["kind"] == "Deployment"] == [CONTROLLER]
    assert find(OBJECTS, "DaemonSet") == find(base_objects(), "DaemonSet")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("obj", own_objects(SPEC), ids=object_id)
def test_every_overlay_object_validates_against_the_kubernetes_schema(
    obj: Obj, version: str
) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


def test_the_plugin_command_line_serves_the_controller_service() -> None:
    env = {"NODE_ID": "worker-1"}
    args = cli.build_parser().parse_args(expand_env(PLUGIN["args"], env))
    assert args.controller_service
    assert flag_value(PLUGIN["args"], "--driver-name") == DRIVER_NAME
    assert flag_value(PLUGIN["args"], "--endpoint") == f"unix://{SOCKET}"
    config = node_command.config_from_args(args)
    assert config.controller is not None


def test_the_plugin_gets_its_heketi_url_and_key_from_env_and_the_example_secret() -> None:
    env = {item["name"]: item for item in PLUGIN["env"]}
    assert env["HEKETI_URL"]["value"].startswith("http")
    key_ref = env["HEKETI_KEY"]["valueFrom"]["secretKeyRef"]
    secret = find(example_objects(), "Secret")
    assert (key_ref["name"], key_ref["key"]) == (secret["metadata"]["name"], "key")
    assert "--heketi-key-file" not in " ".join(PLUGIN["args"]), "secrets never on the command line"


@pytest.mark.parametrize("name", ["csi-provisioner", "csi-resizer", "liveness-probe"])
def test_every_sidecar_talks_to_the_plugin_socket(name: str) -> None:
    sidecar = container(DEPLOYMENT, name)
    assert flag_value(sidecar["args"], "--csi-address") == SOCKET
    mounts = {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}
    assert mounts["socket-dir"] == "/csi"


@pytest.mark.parametrize("name", ["csi-provisioner", "csi-resizer"])
def test_sidecars_elect_a_leader_in_the_pods_namespace(name: str) -> None:
    args = container(DEPLOYMENT, name)["args"]
    assert "--leader-election" in args
    assert flag_value(args, "--leader-election-namespace") == "$(POD_NAMESPACE)"


def test_external_provisioner_passes_the_claim_name_for_volumenameprefix() -> None:
    assert "--extra-create-metadata" in container(DEPLOYMENT, "csi-provisioner")["args"]


def test_liveness_is_checked_through_the_plugins_probe() -> None:
    probe_port = flag_value(container(DEPLOYMENT, "liveness-probe")["args"], "--http-endpoint")
    ports = {p["name"]: p["containerPort"] for p in PLUGIN["ports"]}
    assert probe_port == f":{ports[PLUGIN['livenessProbe']['httpGet']['port']]}"


def test_every_container_runs_unprivileged_as_one_user() -> None:
    pod = pod_spec(DEPLOYMENT)
    assert pod["securityContext"]["runAsNonRoot"] is True
    for item in pod_containers(DEPLOYMENT):
        context = item["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, item["name"]
        assert context["readOnlyRootFilesystem"] is True, item["name"]
        assert context["capabilities"]["drop"] == ["ALL"], item["name"]


def rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = find(OBJECTS, "ClusterRole", CONTROLLER)["rules"]
    return rules


def allowed(group: str, resource: str, verb: str) -> bool:
    return any(
        group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
        for rule in rules()
    )


@pytest.mark.parametrize(
    ("group", "resource", "verb"),
    [
        ("", "persistentvolumes", "create"),
        ("", "persistentvolumes", "delete"),
        ("", "persistentvolumes", "patch"),
        ("", "persistentvolumeclaims", "watch"),
        ("", "persistentvolumeclaims", "update"),
        ("", "persistentvolumeclaims/status", "patch"),
        ("storage.k8s.io", "storageclasses", "watch"),
        ("", "events", "create"),
        ("", "secrets", "get"),
    ],
    ids=lambda v: v or "core",
)
def test_the_sidecars_may_do_what_they_need(group: str, resource: str, verb: str) -> None:
    assert allowed(group, resource, verb)


def test_the_sidecars_may_not_list_or_change_secrets() -> None:
    assert not any(allowed("", "secrets", verb) for verb in ("list", "watch", "update", "create"))


def test_the_service_account_is_bound_to_both_roles() -> None:
    account = pod_spec(DEPLOYMENT)["serviceAccountName"]
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        binding = next(
            o for o in OBJECTS if o["kind"] == kind and CONTROLLER in o["metadata"]["name"]
        )
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
        ]
    lease_rules = find(OBJECTS, "Role", f"{CONTROLLER}-leader-election")["rules"]
    assert lease_rules[0]["resources"] == ["leases"]


def test_the_example_storage_class_parses_and_names_the_example_secret() -> None:
    (storage_class,) = load_yaml_documents(OVERLAY / "storageclass-example.yaml")
    kubernetes_validate.validate(storage_class, KUBERNETES_VERSIONS[-1], strict=True)
    assert storage_class["provisioner"] == DRIVER_NAME
    parameters = storage_class["parameters"]
    split = split_parameters(parameters)
    parse_parameters(with_url(split.parameters, "http://heketi:8080"))
    secret = find(example_objects(), "Secret")["metadata"]
    for kind in ("provisioner", "controller-expand"):
        assert parameters[f"csi.storage.k8s.io/{kind}-secret-name"] == secret["name"]
        assert parameters[f"csi.storage.k8s.io/{kind}-secret-namespace"] == secret["namespace"]
    plugin_env = {item["name"]: item.get("value") for item in PLUGIN["env"]}
    assert parameters["resturl"] == plugin_env["HEKETI_URL"]
