"""Point 2: fields the server sets on create, generateName, defaults, missing namespaces."""

import base64
import json
import re

import pytest
from kubernetes import client

from tests.integration.test_servers.kube_support import (
    Api,
    new_namespace,
    pv_body,
    pvc_body,
    sc_body,
    status_of,
    unique,
)

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _raw_create(api: Api, ns: str, body: dict[str, object]) -> dict[str, object]:
    response = api.core.create_namespaced_persistent_volume_claim(ns, body, _preload_content=False)
    created: dict[str, object] = json.loads(response.data)
    return created


def test_create_sets_uid_timestamp_and_resource_version_but_no_claim_generation(api: Api) -> None:
    ns = new_namespace(api)
    created = _raw_create(api, ns, pvc_body("data"))
    meta = created["metadata"]
    assert isinstance(meta, dict)
    assert re.fullmatch(r"[0-9a-f-]{36}", meta["uid"])
    assert RFC3339.match(meta["creationTimestamp"])
    assert meta["resourceVersion"].isdigit()
    assert "generation" not in meta  # the PVC registry strategy never sets it
    assert (created["kind"], created["apiVersion"]) == ("PersistentVolumeClaim", "v1")


def test_client_supplied_uid_and_timestamp_are_replaced(api: Api) -> None:
    ns = new_namespace(api)
    body = pvc_body("data")
    body["metadata"].update({"uid": "mine", "creationTimestamp": "2000-01-01T00:00:00Z"})
    created = api.core.create_namespaced_persistent_volume_claim(ns, body)
    assert created.metadata.uid != "mine"
    assert created.metadata.creation_timestamp.year > 2000


def test_create_carrying_a_resource_version_fails_like_the_apiserver(api: Api) -> None:
    ns = new_namespace(api)
    body = pvc_body("data")
    body["metadata"]["resourceVersion"] = "42"
    with pytest.raises(client.ApiException) as err:
        api.core.create_namespaced_persistent_volume_claim(ns, body)
    status = status_of(err.value)
    assert (status["code"], status["reason"]) == (500, "InternalError")
    assert "resourceVersion should not be set on objects to be created" in status["message"]


def test_generate_name_appends_five_random_characters(api: Api) -> None:
    ns = new_namespace(api)
    body = pvc_body("")
    body["metadata"] = {"generateName": "claim-"}
    first = api.core.create_namespaced_persistent_volume_claim(ns, body)
    second = api.core.create_namespaced_persistent_volume_claim(ns, body)
    assert re.fullmatch(r"claim-[a-z0-9]{5}", first.metadata.name)
    assert first.metadata.name != second.metadata.name


def test_claim_status_sent_on_create_is_reset_to_pending(api: Api) -> None:
    ns = new_namespace(api)
    body = pvc_body("data")
    body["status"] = {"phase": "Bound", "capacity": {"storage": "1Gi"}}
    created = api.core.create_namespaced_persistent_volume_claim(ns, body)
    assert created.status.phase == "Pending"
    assert created.status.capacity is None
    assert created.spec.volume_mode == "Filesystem"


def test_volume_gets_pending_phase_and_retain_default(api: Api) -> None:
    body = pv_body(unique("pv"))
    del body["spec"]["persistentVolumeReclaimPolicy"]
    created = api.core.create_persistent_volume(body)
    assert created.status.phase == "Pending"
    assert created.spec.persistent_volume_reclaim_policy == "Retain"


def test_secret_string_data_is_folded_into_base64_data(api: Api) -> None:
    ns = new_namespace(api)
    created = api.core.create_namespaced_secret(
        ns,
        {
            "metadata": {"name": "heketi"},
            "stringData": {"key": "s3cret"},
            "data": {"user": base64.b64encode(b"admin").decode()},
        },
    )
    assert created.data == {"user": "YWRtaW4=", "key": base64.b64encode(b"s3cret").decode()}
    assert created.string_data is None
    assert created.type == "Opaque"


def test_claim_without_class_gets_the_default_storage_class(api: Api) -> None:
    ns = new_namespace(api)
    name = unique("default-sc")
    api.storage.create_storage_class(sc_body(name, default=True))
    try:
        created = api.core.create_namespaced_persistent_volume_claim(
            ns, pvc_body("data", class_name=None)
        )
    finally:
        api.storage.delete_storage_class(name)
    assert created.spec.storage_class_name == name


def test_create_in_missing_namespace_is_not_found(api: Api) -> None:
    with pytest.raises(client.ApiException) as err:
        api.core.create_namespaced_persistent_volume_claim("nowhere", pvc_body("data"))
    assert err.value.status == 404
    assert status_of(err.value)["message"] == 'namespaces "nowhere" not found'
    assert status_of(err.value)["details"] == {"name": "nowhere", "kind": "namespaces"}


@pytest.mark.parametrize(
    ("name", "field", "message"),
    [
        pytest.param(
            "",
            "metadata.name",
            "Required value: name or generateName is required",
            id="missing-name",
        ),
        pytest.param(
            "Upper_Case", "metadata.name", 'Invalid value: "Upper_Case"', id="invalid-name"
        ),
    ],
)
def test_create_with_bad_name_is_invalid(api: Api, name: str, field: str, message: str) -> None:
    with pytest.raises(client.ApiException) as err:
        api.core.create_namespaced_persistent_volume_claim("default", pvc_body(name))
    status = status_of(err.value)
    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert status["details"]["causes"][0]["field"] == field
    assert message in status["message"]


def test_claim_without_storage_request_is_invalid(api: Api) -> None:
    body = pvc_body("data")
    body["spec"]["resources"] = {}
    with pytest.raises(client.ApiException) as err:
        api.core.create_namespaced_persistent_volume_claim("default", body)
    status = status_of(err.value)
    assert status["message"] == (
        'PersistentVolumeClaim "data" is invalid: spec.resources[storage]: Required value'
    )
