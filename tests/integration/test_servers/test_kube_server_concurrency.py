"""Point 4: optimistic concurrency and the Status objects of errors."""

import pytest
from kubernetes import client

from testbed.kube.server import KubeTestServer
from tests.integration.test_servers.kube_support import (
    Api,
    new_namespace,
    pvc_body,
    status_of,
)

STALE = (
    'Operation cannot be fulfilled on persistentvolumeclaims "data": the object has been '
    "modified; please apply your changes to the latest version and try again"
)


@pytest.fixture
def ns(api: Api) -> str:
    name = new_namespace(api)
    api.core.create_namespaced_persistent_volume_claim(name, pvc_body("data"))
    return name


def test_replace_with_stale_resource_version_is_a_conflict(api: Api, ns: str) -> None:
    stale = api.core.read_namespaced_persistent_volume_claim("data", ns)
    api.core.patch_namespaced_persistent_volume_claim(
        "data", ns, {"metadata": {"labels": {"a": "b"}}}
    )
    stale.metadata.labels = {"mine": "yes"}
    with pytest.raises(client.ApiException) as err:
        api.core.replace_namespaced_persistent_volume_claim("data", ns, stale)
    assert status_of(err.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": STALE,
        "reason": "Conflict",
        "code": 409,
        "details": {"name": "data", "kind": "persistentvolumeclaims"},
    }


def test_replace_without_resource_version_is_unconditional(api: Api, ns: str) -> None:
    current = api.core.read_namespaced_persistent_volume_claim("data", ns)
    current.metadata.resource_version = None
    current.metadata.labels = {"forced": "yes"}
    replaced = api.core.replace_namespaced_persistent_volume_claim("data", ns, current)
    assert replaced.metadata.labels == {"forced": "yes"}


def test_create_of_existing_name_is_already_exists(api: Api, ns: str) -> None:
    with pytest.raises(client.ApiException) as err:
        api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("data"))
    status = status_of(err.value)
    assert (status["code"], status["reason"]) == (409, "AlreadyExists")
    assert status["message"] == 'persistentvolumeclaims "data" already exists'


def test_patch_carrying_resource_version_is_a_precondition(api: Api, ns: str) -> None:
    current = api.core.read_namespaced_persistent_volume_claim("data", ns)
    version = current.metadata.resource_version
    ok = api.core.patch_namespaced_persistent_volume_claim(
        "data", ns, {"metadata": {"resourceVersion": version, "labels": {"step": "1"}}}
    )
    assert ok.metadata.resource_version != version
    with pytest.raises(client.ApiException) as err:
        api.core.patch_namespaced_persistent_volume_claim(
            "data", ns, {"metadata": {"resourceVersion": version, "labels": {"step": "2"}}}
        )
    assert status_of(err.value)["message"] == STALE


def test_status_write_with_stale_resource_version_is_a_conflict(api: Api, ns: str) -> None:
    stale = api.core.read_namespaced_persistent_volume_claim("data", ns)
    api.core.patch_namespaced_persistent_volume_claim(
        "data", ns, {"metadata": {"labels": {"x": "y"}}}
    )
    stale.status.phase = "Bound"
    with pytest.raises(client.ApiException) as err:
        api.core.replace_namespaced_persistent_volume_claim_status("data", ns, stale)
    assert err.value.status == 409


def test_changing_uid_on_update_is_invalid(api: Api, ns: str) -> None:
    current = api.core.read_namespaced_persistent_volume_claim("data", ns)
    current.metadata.uid = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(client.ApiException) as err:
        api.core.replace_namespaced_persistent_volume_claim("data", ns, current)
    status = status_of(err.value)
    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert status["details"]["causes"][0]["field"] == "metadata.uid"


def test_name_in_body_must_match_the_url(api: Api, ns: str) -> None:
    current = api.core.read_namespaced_persistent_volume_claim("data", ns)
    current.metadata.name = "other"
    with pytest.raises(client.ApiException) as err:
        api.core.replace_namespaced_persistent_volume_claim("data", ns, current)
    status = status_of(err.value)
    assert (status["code"], status["reason"]) == (400, "BadRequest")
    assert status["message"] == (
        "the name of the object (other) does not match the name on the URL (data)"
    )


def test_replace_of_missing_object_is_not_found(api: Api, ns: str) -> None:
    with pytest.raises(client.ApiException) as err:
        api.core.replace_namespaced_persistent_volume_claim("ghost", ns, pvc_body("ghost"))
    assert status_of(err.value)["reason"] == "NotFound"


def test_list_at_compacted_exact_version_is_expired(api: Api, server: KubeTestServer) -> None:
    old = server.resource_version
    api.core.create_namespace({"metadata": {"name": "bump-for-expired"}})
    server.compact()
    with pytest.raises(client.ApiException) as err:
        api.core.list_namespace(resource_version=old, resource_version_match="Exact")
    status = status_of(err.value)
    assert (status["code"], status["reason"]) == (410, "Expired")
