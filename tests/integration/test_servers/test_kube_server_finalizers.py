"""Point 7: deletion with finalizers, delete preconditions, namespace deletion."""

import pytest
from kubernetes import client

from tests.integration.test_servers.kube_support import (
    Api,
    pvc_body,
    status_of,
    watch_events,
)


def _claim_with_finalizer(api: Api, ns: str) -> str:
    created = api.core.create_namespaced_persistent_volume_claim(
        ns, pvc_body("data", finalizers=["example.com/hold"])
    )
    version: str = created.metadata.resource_version
    return version


def test_delete_with_finalizer_marks_the_object_and_emits_modified(api: Api, ns: str) -> None:
    version = _claim_with_finalizer(api, ns)
    answer = api.core.delete_namespaced_persistent_volume_claim("data", ns)
    assert answer.metadata.deletion_timestamp is not None
    still = api.core.read_namespaced_persistent_volume_claim("data", ns)
    assert still.metadata.finalizers == ["example.com/hold"]
    events = watch_events(
        api.core.list_namespaced_persistent_volume_claim, ns, resource_version=version, count=1
    )
    assert events[0][0] == "MODIFIED"
    assert events[0][1]["metadata"]["deletionTimestamp"]


def test_removing_the_last_finalizer_deletes_the_object(api: Api, ns: str) -> None:
    _claim_with_finalizer(api, ns)
    marked = api.core.delete_namespaced_persistent_volume_claim("data", ns)
    api.core.patch_namespaced_persistent_volume_claim(
        "data", ns, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/hold"]}}
    )
    with pytest.raises(client.ApiException) as err:
        api.core.read_namespaced_persistent_volume_claim("data", ns)
    assert err.value.status == 404
    events = watch_events(
        api.core.list_namespaced_persistent_volume_claim,
        ns,
        resource_version=marked.metadata.resource_version,
        count=1,
    )
    assert [kind for kind, _ in events] == ["DELETED"]


def test_second_delete_of_a_terminating_object_changes_nothing(api: Api, ns: str) -> None:
    _claim_with_finalizer(api, ns)
    first = api.core.delete_namespaced_persistent_volume_claim("data", ns)
    second = api.core.delete_namespaced_persistent_volume_claim("data", ns)
    assert second.metadata.resource_version == first.metadata.resource_version
    assert second.metadata.deletion_timestamp == first.metadata.deletion_timestamp


def test_adding_a_finalizer_to_a_terminating_object_is_invalid(api: Api, ns: str) -> None:
    _claim_with_finalizer(api, ns)
    api.core.delete_namespaced_persistent_volume_claim("data", ns)
    with pytest.raises(client.ApiException) as err:
        api.core.patch_namespaced_persistent_volume_claim(
            "data", ns, {"metadata": {"finalizers": ["example.com/late"]}}
        )
    status = status_of(err.value)
    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert "no new finalizers can be added if the object is being deleted" in status["message"]


def test_delete_without_finalizers_removes_at_once_and_returns_the_object(
    api: Api, ns: str
) -> None:
    created = api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("data"))
    answer = api.core.delete_namespaced_persistent_volume_claim("data", ns)
    assert answer.metadata.uid == created.metadata.uid
    assert api.core.list_namespaced_persistent_volume_claim(ns).items == []


@pytest.mark.parametrize(
    ("preconditions", "message"),
    [
        pytest.param(
            {"uid": "not-the-uid"},
            "Precondition failed: UID in precondition: not-the-uid",
            id="uid",
        ),
        pytest.param(
            {"resourceVersion": "1"},
            "Precondition failed: ResourceVersion in precondition: 1",
            id="resource-version",
        ),
    ],
)
def test_delete_with_failed_precondition_is_a_conflict(
    api: Api, ns: str, preconditions: dict[str, str], message: str
) -> None:
    api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("data"))
    with pytest.raises(client.ApiException) as err:
        api.core.delete_namespaced_persistent_volume_claim(
            "data", ns, body=client.V1DeleteOptions(preconditions=preconditions)
        )
    status = status_of(err.value)
    assert (status["code"], status["reason"]) == (409, "Conflict")
    assert message in status["message"]
    assert api.core.read_namespaced_persistent_volume_claim("data", ns)


def test_delete_with_matching_preconditions_deletes(api: Api, ns: str) -> None:
    created = api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("data"))
    api.core.delete_namespaced_persistent_volume_claim(
        "data",
        ns,
        body=client.V1DeleteOptions(
            preconditions={
                "uid": created.metadata.uid,
                "resourceVersion": created.metadata.resource_version,
            }
        ),
    )
    assert api.core.list_namespaced_persistent_volume_claim(ns).items == []


def test_deleting_a_namespace_deletes_its_objects_and_waits_for_finalizers(
    api: Api, ns: str
) -> None:
    _claim_with_finalizer(api, ns)
    api.core.create_namespaced_secret(ns, {"metadata": {"name": "s"}})
    api.core.delete_namespace(ns)
    assert api.core.read_namespace(ns).status.phase == "Terminating"
    assert api.core.list_namespaced_secret(ns).items == []
    with pytest.raises(client.ApiException) as err:
        api.core.create_namespaced_secret(ns, {"metadata": {"name": "late"}})
    assert err.value.status == 403
    api.core.patch_namespaced_persistent_volume_claim(
        "data", ns, {"metadata": {"finalizers": None}}
    )
    with pytest.raises(client.ApiException) as gone:
        api.core.read_namespace(ns)
    assert gone.value.status == 404
