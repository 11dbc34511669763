"""Point 8: validation a provisioner relies on (PVC immutability, bad selectors)."""

import http.client
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes import client

from testbed.kube.server import KubeTestServer
from tests.integration.test_servers.kube_support import (
    JSON,
    Api,
    new_namespace,
    pv_body,
    pvc_body,
    sc_body,
    status_of,
    unique,
)

IMMUTABLE = (
    "spec: Forbidden: spec is immutable after creation except resources.requests and "
    "volumeAttributesClassName for bound claims"
)


def _claim(api: Api, *, bound: bool, volume_name: str | None = None) -> str:
    ns = new_namespace(api)
    api.core.create_namespaced_persistent_volume_claim(
        ns, pvc_body("data", size="2Gi", volume_name=volume_name)
    )
    if bound:
        api.core.patch_namespaced_persistent_volume_claim_status(
            "data", ns, {"status": {"phase": "Bound"}}
        )
    return ns


def _patch(api: Api, ns: str, spec: dict[str, Any]) -> client.V1PersistentVolumeClaim:
    return api.core.patch_namespaced_persistent_volume_claim("data", ns, {"spec": spec})


def _grow(size: str) -> dict[str, Any]:
    return {"resources": {"requests": {"storage": size}}}


@pytest.mark.parametrize(
    ("bound", "volume_name", "spec", "message"),
    [
        pytest.param(False, None, {"accessModes": ["ReadWriteMany"]}, IMMUTABLE, id="access-modes"),
        pytest.param(False, None, {"storageClassName": "other"}, IMMUTABLE, id="class-name"),
        pytest.param(False, "pv-a", {"volumeName": "pv-b"}, IMMUTABLE, id="volume-name-twice"),
        pytest.param(False, None, _grow("3Gi"), IMMUTABLE, id="grow-while-pending"),
        pytest.param(
            True,
            None,
            _grow("1Gi"),
            "spec.resources.requests.storage: Forbidden: field can not be less than previous value",
            id="shrink-while-bound",
        ),
    ],
)
def test_forbidden_claim_spec_change_is_invalid(
    api: Api, bound: bool, volume_name: str | None, spec: dict[str, Any], message: str
) -> None:
    ns = _claim(api, bound=bound, volume_name=volume_name)
    with pytest.raises(client.ApiException) as err:
        _patch(api, ns, spec)
    status = status_of(err.value)
    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert message in status["message"]
    assert status["details"]["kind"] == "PersistentVolumeClaim"


def test_volume_name_can_be_set_once_on_a_pending_claim(api: Api) -> None:
    ns = _claim(api, bound=False)
    assert _patch(api, ns, {"volumeName": "pv-a"}).spec.volume_name == "pv-a"


def test_bound_claim_can_grow(api: Api) -> None:
    ns = _claim(api, bound=True)
    grown = _patch(api, ns, _grow("3Gi"))
    assert grown.spec.resources.requests == {"storage": "3Gi"}
    assert grown.metadata.generation is None  # the PVC registry strategy never sets it


def test_same_size_in_other_units_is_no_change(api: Api) -> None:
    ns = _claim(api, bound=False)
    before = api.core.read_namespaced_persistent_volume_claim("data", ns)
    after = _patch(api, ns, _grow("2048Mi"))
    assert after.spec.resources.requests == {"storage": "2Gi"}
    assert after.metadata.resource_version == before.metadata.resource_version


def test_volume_source_is_immutable(api: Api) -> None:
    name = unique("pv")
    api.core.create_persistent_volume(pv_body(name))
    with pytest.raises(client.ApiException) as err:
        api.core.patch_persistent_volume(name, {"spec": {"csi": {"volumeHandle": "other"}}})
    assert "spec.persistentvolumesource" in status_of(err.value)["message"]


def test_volume_claim_ref_and_capacity_can_change(api: Api) -> None:
    name = unique("pv")
    api.core.create_persistent_volume(pv_body(name))
    patched = api.core.patch_persistent_volume(
        name,
        {"spec": {"capacity": {"storage": "5Gi"}, "claimRef": {"namespace": "a", "name": "b"}}},
    )
    assert patched.spec.capacity == {"storage": "5Gi"}


def test_storage_class_parameters_are_immutable(api: Api) -> None:
    name = unique("sc")
    api.storage.create_storage_class(sc_body(name))
    with pytest.raises(client.ApiException) as err:
        api.storage.patch_storage_class(name, {"parameters": {"resturl": "http://other"}})
    assert (
        "parameters: Forbidden: updates to parameters are forbidden."
        in status_of(err.value)["message"]
    )


@pytest.mark.parametrize(
    ("body_change", "field"),
    [
        pytest.param(
            lambda b: b["spec"].update(accessModes=[]), "spec.accessModes", id="no-access-modes"
        ),
        pytest.param(
            lambda b: b["spec"].update(accessModes=["Everything"]),
            "spec.accessModes",
            id="unknown-access-mode",
        ),
        pytest.param(
            lambda b: b["metadata"].update(labels={"bad key!": "x"}),
            "metadata.labels",
            id="bad-label",
        ),
    ],
)
def test_invalid_new_claim_names_the_field(
    api: Api, body_change: Callable[[dict[str, Any]], None], field: str
) -> None:
    body = pvc_body("data")
    body_change(body)
    with pytest.raises(client.ApiException) as err:
        api.core.create_namespaced_persistent_volume_claim("default", body)
    assert status_of(err.value)["details"]["causes"][0]["field"] == field


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        pytest.param(
            "spec.volumeName=x",
            "field label not supported: spec.volumeName",
            id="unsupported-field",
        ),
        pytest.param("metadata.name", "invalid selector", id="no-operator"),
    ],
)
def test_bad_field_selector_is_a_bad_request(api: Api, selector: str, message: str) -> None:
    with pytest.raises(client.ApiException) as err:
        api.core.list_persistent_volume_claim_for_all_namespaces(field_selector=selector)
    status = status_of(err.value)
    assert (status["code"], status["reason"]) == (400, "BadRequest")
    assert message in status["message"]


def test_bad_label_selector_is_a_bad_request(api: Api) -> None:
    with pytest.raises(client.ApiException) as err:
        api.core.list_persistent_volume(label_selector="a in (")
    assert err.value.status == 400


def test_undecodable_quantity_is_a_bad_request(api: Api) -> None:
    body = pvc_body("data", size="lots")
    with pytest.raises(client.ApiException) as err:
        api.core.create_namespaced_persistent_volume_claim("default", body)
    status = status_of(err.value)
    assert (status["code"], status["reason"]) == (400, "BadRequest")
    assert "quantities must match the regular expression" in status["message"]


@pytest.mark.parametrize(
    ("size", "canonical"),
    [
        pytest.param("2048Mi", "2Gi", id="binary"),
        pytest.param("0.5Gi", "512Mi", id="fractional-binary"),
        pytest.param("1000M", "1G", id="decimal"),
        pytest.param("1500", "1500", id="plain"),
        pytest.param("5e3", "5e3", id="exponent"),
    ],
)
def test_quantities_come_back_in_canonical_form(api: Api, size: str, canonical: str) -> None:
    ns = new_namespace(api)
    created = api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("data", size=size))
    assert created.spec.resources.requests == {"storage": canonical}


def _post(server: KubeTestServer, path: str, body: dict[str, Any]) -> JSON:
    """The Status answered to a raw POST (the client's own models refuse these bodies)."""
    url = urlsplit(server.url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=5)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        status: JSON = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    return status


def _refused_patch(api: Api, ns: str, patch: dict[str, Any]) -> JSON:
    api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("data"))
    with pytest.raises(client.ApiException) as err:
        api.core.patch_namespaced_persistent_volume_claim("data", ns, patch)
    return status_of(err.value)


@pytest.mark.parametrize(
    ("resource", "body", "message"),
    [
        pytest.param(
            "persistentvolumeclaims",
            {"metadata": {"name": "data"}, "spec": 5},
            "spec: expected an object, got number",
            id="claim-spec-number",
        ),
        pytest.param(
            "secrets",
            {"metadata": {"name": "key"}, "data": []},
            "data: expected an object, got array",
            id="secret-data-array",
        ),
    ],
)
def test_created_field_of_the_wrong_json_type_is_a_bad_request(
    api: Api, server: KubeTestServer, resource: str, body: dict[str, Any], message: str
) -> None:
    ns = new_namespace(api)
    status = _post(server, f"/api/v1/namespaces/{ns}/{resource}", body)
    assert (status["code"], status["reason"]) == (400, "BadRequest")
    assert status["message"] == f"cannot decode the object: {message}"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        pytest.param(
            {"spec": {"accessModes": "ReadWriteOnce"}},
            "spec.accessModes: expected an array, got string",
            id="access-modes-string",
        ),
        pytest.param(
            {"metadata": {"finalizers": "x"}},
            "metadata.finalizers: expected an array, got string",
            id="finalizers-string",
        ),
    ],
)
def test_patched_field_of_the_wrong_json_type_is_a_bad_request(
    api: Api, patch: dict[str, Any], message: str
) -> None:
    status = _refused_patch(api, new_namespace(api), patch)
    assert (status["code"], status["reason"]) == (400, "BadRequest")
    assert status["message"] == f"cannot decode the object: {message}"
