"""deploy/examples/: the StorageClass, Heketi Secret, claim and pod users start from."""

import importlib.util
import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from provisioner.core.annotations import DRIVER_NAME
from tests.unit.deploy.manifests import EXAMPLES, Obj, example_objects, find, pod_spec

OBJECTS = example_objects()

#: Every parameter of the in-tree kubernetes.io/glusterfs plugin this driver keeps, and ours.
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
    "restcafile",
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


def _commented_parameters() -> dict[str, str]:
    text = (EXAMPLES / "storageclass.yaml").read_text(encoding="utf-8")
    found = re.findall(r'^\s*#\s*([A-Za-z]+):\s*"([^"]*)"\s*$', text, re.MULTILINE)
    return dict(found)


def _parser() -> Callable[[Mapping[str, str]], Any]:
    if importlib.util.find_spec("provisioner.core.storageclass") is None:
        pytest.skip("provisioner/core/storageclass.py has not landed yet")
    from provisioner.core.storageclass import parse_parameters

    return parse_parameters


def test_storage_class_parameters_are_accepted_by_the_parameter_parser() -> None:
    params = _parser()(_storage_class()["parameters"])
    assert params.secret_namespace == "glusterfs-provisioner"
    assert params.secret_name == "heketi-admin"
    assert params.warnings == ()


@pytest.mark.parametrize("parameter", sorted(_commented_parameters()))
def test_commented_out_example_values_are_valid_when_set(parameter: str) -> None:
    parameters = dict(_storage_class()["parameters"])
    if parameter == "restcafile":
        parameters["resturl"] = parameters["resturl"].replace("http://", "https://")
    parameters[parameter] = _commented_parameters()[parameter]
    params = _parser()(parameters)
    if parameter == "restuserkey":  # overridden by secretName, and deprecated: says so
        assert any("restuserkey" in warning for warning in params.warnings)
    else:
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
