"""deploy/examples/: the StorageClass, Heketi Secret, claim and pod users start from."""

import importlib.util
import re

import pytest

from provisioner.names import DRIVER_NAME
from tests.unit.deploy.manifests import EXAMPLES, Obj, example_objects, find, pod_spec

OBJECTS = example_objects()

#: Every parameter of the in-tree kubernetes.io/glusterfs plugin this driver keeps.
IN_TREE_PARAMETERS = (
    "resturl",
    "restauthenabled",
    "restuser",
    "restuserkey",
    "secretNamespace",
    "secretName",
    "clusterid",
    "volumetype",
    "gidMin",
    "gidMax",
    "volumeoptions",
    "volumenameprefix",
    "snapfactor",
)


def _storage_class() -> Obj:
    return find(OBJECTS, "StorageClass", "glusterfs")


def test_storage_class_glusterfs_is_ours_and_allows_expansion() -> None:
    storage_class = _storage_class()
    assert storage_class["provisioner"] == DRIVER_NAME
    assert storage_class["allowVolumeExpansion"] is True
    assert storage_class["reclaimPolicy"] == "Delete"


@pytest.mark.parametrize("parameter", IN_TREE_PARAMETERS)
def test_storage_class_shows_every_parameter_set_or_commented(parameter: str) -> None:
    text = (EXAMPLES / "storageclass.yaml").read_text(encoding="utf-8")
    active = parameter in _storage_class()["parameters"]
    commented = re.search(rf"^\s*#\s*{parameter}:\s*\S", text, re.MULTILINE) is not None
    assert active or commented, f"{parameter} is neither set nor shown commented out"


def test_storage_class_parameters_are_accepted_by_the_parameter_parser() -> None:
    if importlib.util.find_spec("provisioner.storageclass") is None:
        pytest.skip("provisioner/storageclass.py has not landed yet")
    from provisioner.storageclass import parse_parameters

    params = parse_parameters(_storage_class()["parameters"])
    assert params.secret_namespace == "glusterfs-provisioner"
    assert params.secret_name == "heketi-admin"
    assert params.warnings == ()


def test_heketi_secret_is_the_one_the_class_names() -> None:
    parameters = _storage_class()["parameters"]
    secret = find(OBJECTS, "Secret")
    assert secret["type"] == "kubernetes.io/glusterfs"
    assert set(secret["stringData"]) == {"key"}
    assert secret["metadata"]["namespace"] == parameters["secretNamespace"]
    assert secret["metadata"]["name"] == parameters["secretName"]


def test_pod_mounts_the_example_claim_of_the_class_at_data() -> None:
    claim = find(OBJECTS, "PersistentVolumeClaim")
    pod = find(OBJECTS, "Pod")
    assert claim["spec"]["storageClassName"] == _storage_class()["metadata"]["name"]
    assert claim["metadata"]["namespace"] == pod["metadata"]["namespace"]
    volumes = {v["name"]: v for v in pod_spec(pod)["volumes"]}
    (mount,) = pod_spec(pod)["containers"][0]["volumeMounts"]
    assert mount["mountPath"] == "/data"
    claim_ref = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
    assert claim_ref == claim["metadata"]["name"]
