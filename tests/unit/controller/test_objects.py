"""Reading claims and building the PV: every field, and what we refuse to provision."""

from typing import Any

import pytest

from provisioner import errors, names
from provisioner.controller import objects as o
from provisioner.controller.quantity import parse_bytes
from provisioner.heketi.types import Durability, Volume
from provisioner.pv_annotations import heketi_annotations
from provisioner.storageclass import parse_parameters

UID = "0b5c7d1e-1111-2222-3333-444455556666"


def claim(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "3Gi"}},
        "storageClassName": "glusterfs",
    }
    base.update(spec)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "apps", "uid": UID, "resourceVersion": "7"},
        "spec": base,
    }


def volume() -> Volume:
    return Volume(
        id="a" * 32,
        name=f"pvc-{UID}",
        size_gib=3,
        cluster="c" * 32,
        durability=Durability(type="replicate", replica=3),
        gid=2001,
        hosts=("10.0.0.1", "10.0.0.2", "10.0.0.3"),
        device="10.0.0.1:pvc-x",
        backup_volfile_servers=("10.0.0.2", "10.0.0.3"),
        options=(),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3Gi", 3 << 30),
        ("1G", 10**9),
        ("1.5Gi", 3 << 29),
        ("500Mi", 500 << 20),
        ("2e9", 2 * 10**9),
        ("100", 100),
        ("1k", 1000),
        ("100m", 1),
    ],
    ids=["Gi", "G", "fraction", "Mi", "exponent", "bytes", "k", "milli-rounds-up"],
)
def test_quantities_parse_to_bytes(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "Gi", "3 Gi", "3GB", "-1Gi"], ids=repr)
def test_bad_quantities_are_refused(text: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        parse_bytes(text)


def test_the_pv_carries_every_field_the_node_plugin_and_deletion_need() -> None:
    params = parse_parameters(
        {
            "resturl": "http://heketi:8080",
            "restuser": "admin",
            "secretNamespace": "storage",
            "secretName": "heketi",
        }
    )
    storage_class = {
        "metadata": {"name": "glusterfs"},
        "reclaimPolicy": "Retain",
        "mountOptions": ["log-level=WARNING"],
    }
    pv = o.build_pv(
        pvc=claim(),
        storage_class=storage_class,
        params=params,
        volume=volume(),
        driver=names.DRIVER_NAME,
        gid=2001,
    )
    assert pv["metadata"] == {
        "name": f"pvc-{UID}",
        "annotations": {
            names.ANN_PROVISIONED_BY: names.DRIVER_NAME,
            names.ANN_GID: "2001",
            names.ANN_HEKETI_URL: "http://heketi:8080",
            names.ANN_HEKETI_USER: "admin",
            names.ANN_HEKETI_VOLUME_NAME: f"pvc-{UID}",
            names.ANN_SECRET_NAMESPACE: "storage",
            names.ANN_SECRET_NAME: "heketi",
        },
        "finalizers": [names.PV_FINALIZER],
    }
    assert pv["spec"] == {
        "capacity": {"storage": "3Gi"},
        "accessModes": ["ReadWriteMany"],
        "persistentVolumeReclaimPolicy": "Retain",
        "storageClassName": "glusterfs",
        "volumeMode": "Filesystem",
        "mountOptions": ["log-level=WARNING"],
        "claimRef": {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "namespace": "apps",
            "name": "data",
            "uid": UID,
        },
        "csi": {
            "driver": names.DRIVER_NAME,
            "volumeHandle": "a" * 32,
            "volumeAttributes": {
                names.CTX_SERVERS: "10.0.0.1,10.0.0.2,10.0.0.3",
                names.CTX_VOLUME: f"pvc-{UID}",
            },
        },
    }


def test_the_pv_defaults_to_reclaim_policy_delete_and_no_mount_options() -> None:
    params = parse_parameters({"resturl": "http://heketi:8080", "restauthenabled": "false"})
    pv = o.build_pv(
        pvc=claim(),
        storage_class={"metadata": {"name": "g"}},
        params=params,
        volume=volume(),
        driver="d",
        gid=5,
    )
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert "mountOptions" not in pv["spec"]
    assert names.ANN_SECRET_NAME not in pv["metadata"]["annotations"]


@pytest.mark.parametrize(
    "modes",
    [
        ["ReadWriteOnce"],
        ["ReadOnlyMany"],
        ["ReadWriteMany"],
        ["ReadWriteOncePod"],
        ["ReadWriteOnce", "ReadOnlyMany"],
    ],
    ids=["RWO", "ROX", "RWX", "RWOP", "RWO+ROX"],
)
def test_every_kubernetes_access_mode_is_accepted(modes: list[str]) -> None:
    assert o.rejection(claim(accessModes=modes)) is None


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"volumeMode": "Block"}, "volumeMode Block is not supported"),
        ({"selector": {"matchLabels": {"a": "b"}}}, "selector"),
        ({"accessModes": ["ReadWriteSometimes"]}, "unsupported access modes ReadWriteSometimes"),
        ({"accessModes": []}, "no accessModes"),
        ({"resources": {"requests": {}}}, "requests no storage"),
    ],
    ids=["block", "selector", "unknown-mode", "no-modes", "no-size"],
)
def test_claims_we_cannot_serve_are_rejected_with_the_reason(
    spec: dict[str, Any], reason: str
) -> None:
    rejection = o.rejection(claim(**spec))
    assert rejection is not None and reason in rejection


def test_a_claim_with_a_claim_as_data_source_is_not_rejected() -> None:
    pvc = claim(dataSource={"kind": "PersistentVolumeClaim", "name": "x"})
    assert o.rejection(pvc) is None


def test_the_legacy_class_annotation_names_the_class() -> None:
    pvc = claim(storageClassName=None)
    pvc["metadata"]["annotations"] = {names.ANN_BETA_STORAGE_CLASS: "old"}
    assert o.claim_class(pvc) == "old"


def _intent(params_text: dict[str, str], **extra: str) -> dict[str, Any]:
    pvc = claim()
    recorded = heketi_annotations(parse_parameters(params_text), volume_name="vol_1")
    pvc["metadata"]["annotations"] = {**recorded, **extra}
    return pvc


FIRST = {
    "resturl": "https://first:8080",
    "restuser": "ops",
    "secretNamespace": "storage",
    "secretName": "first-key",
    "restcafile": "/etc/heketi/first.pem",
}


def test_a_claims_recorded_heketi_replaces_the_one_its_class_names_now() -> None:
    now = parse_parameters(
        {"resturl": "http://second:8080", "restuserkey": "inline", "volumetype": "none"}
    )
    params = o.recorded_location(_intent(FIRST), now)
    assert heketi_annotations(params, volume_name="vol_1") == heketi_annotations(
        parse_parameters(FIRST), volume_name="vol_1"
    )
    assert params.rest_user_key is None  # the class's inline key belongs to another Heketi
    assert params.durability == now.durability  # what to create still comes from the class


def test_a_claim_with_no_recorded_heketi_keeps_its_class() -> None:
    now = parse_parameters({"resturl": "http://second:8080"})
    assert o.recorded_location(claim(), now) is now


def test_the_inline_key_of_a_class_on_the_recorded_heketi_is_kept() -> None:
    now = parse_parameters({"resturl": "http://first:8080", "restuserkey": "inline"})
    pvc = _intent({"resturl": "http://first:8080", "restuserkey": "inline"})
    assert o.recorded_location(pvc, now).rest_user_key == "inline"


@pytest.mark.parametrize(
    ("annotation", "value", "message"),
    [
        (names.ANN_HEKETI_URL, "file:///etc/passwd", "must be an http:// or https:// URL"),
        (names.ANN_HEKETI_URL, "http://u:pw@first", "must not contain credentials"),
        (names.ANN_HEKETI_CA, "../ca.pem", "must be an absolute path"),
    ],
    ids=["not-http", "credentials", "relative-ca"],
)
def test_an_edited_recorded_heketi_that_is_unusable_is_refused(
    annotation: str, value: str, message: str
) -> None:
    now = parse_parameters({"resturl": "http://second:8080"})
    with pytest.raises(errors.ProvisionerError, match=message) as caught:
        o.recorded_location(_intent(FIRST, **{annotation: value}), now)
    assert "pw" not in str(caught.value)


def test_the_recorded_volume_name_is_read_back() -> None:
    assert o.recorded_volume_name(_intent(FIRST)) == "vol_1"
    assert o.recorded_volume_name(claim()) is None
