"""Point 5: JSON patch, JSON merge patch and strategic merge patch."""

import pytest
from kubernetes import client

from tests.integration.test_servers.kube_support import (
    Api,
    new_namespace,
    pvc_body,
    status_of,
)

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


@pytest.fixture
def ns(api: Api) -> str:
    name = new_namespace(api)
    body = pvc_body("data", labels={"keep": "1", "drop": "1"}, finalizers=["a/one", "b/two"])
    api.core.create_namespaced_persistent_volume_claim(name, body)
    return name


def test_json_patch_applies_operations_in_order(api: Api, ns: str) -> None:
    ops = [
        {"op": "add", "path": "/metadata/annotations", "value": {"x": "1"}},
        {"op": "replace", "path": "/metadata/labels/keep", "value": "2"},
        {"op": "remove", "path": "/metadata/labels/drop"},
        {"op": "copy", "from": "/metadata/labels/keep", "path": "/metadata/annotations/y"},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]
    patched = api.core.patch_namespaced_persistent_volume_claim("data", ns, ops)
    assert patched.metadata.labels == {"keep": "2"}
    assert patched.metadata.annotations == {"x": "1", "y": "2"}
    assert patched.metadata.finalizers == ["b/two"]


def test_json_patch_test_operation_guards_the_change(api: Api, ns: str) -> None:
    guarded = [
        {"op": "test", "path": "/metadata/finalizers", "value": ["a/one", "b/two"]},
        {"op": "replace", "path": "/metadata/finalizers", "value": ["b/two"]},
    ]
    patched = api.core.patch_namespaced_persistent_volume_claim("data", ns, guarded)
    assert patched.metadata.finalizers == ["b/two"]
    with pytest.raises(client.ApiException) as err:
        api.core.patch_namespaced_persistent_volume_claim("data", ns, guarded)
    status = status_of(err.value)
    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert "test failed" in status["message"]


def test_json_patch_on_missing_path_is_rejected(api: Api, ns: str) -> None:
    with pytest.raises(client.ApiException) as err:
        api.core.patch_namespaced_persistent_volume_claim(
            "data", ns, [{"op": "remove", "path": "/metadata/annotations/none"}]
        )
    assert err.value.status == 422


def test_merge_patch_merges_maps_deletes_nulls_and_replaces_lists(api: Api, ns: str) -> None:
    patched = api.core.patch_namespaced_persistent_volume_claim(
        "data",
        ns,
        {"metadata": {"labels": {"drop": None, "new": "1"}, "finalizers": ["c/three"]}},
        _content_type=MERGE,
    )
    assert patched.metadata.labels == {"keep": "1", "new": "1"}
    assert patched.metadata.finalizers == ["c/three"]


def test_strategic_merge_adds_finalizers_as_a_set(api: Api, ns: str) -> None:
    patched = api.core.patch_namespaced_persistent_volume_claim(
        "data", ns, {"metadata": {"finalizers": ["b/two", "c/three"]}}
    )
    assert patched.metadata.finalizers == ["a/one", "b/two", "c/three"]


def test_strategic_merge_deletes_from_primitive_list(api: Api, ns: str) -> None:
    patched = api.core.patch_namespaced_persistent_volume_claim(
        "data", ns, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a/one"]}}
    )
    assert patched.metadata.finalizers == ["b/two"]


def test_strategic_merge_keys_claim_conditions_by_type(api: Api, ns: str) -> None:
    first = {
        "status": {
            "conditions": [
                {"type": "Resizing", "status": "True"},
                {"type": "FileSystemResizePending", "status": "True"},
            ]
        }
    }
    api.core.patch_namespaced_persistent_volume_claim_status("data", ns, first)
    second = {
        "status": {
            "conditions": [
                {"type": "Resizing", "status": "False", "reason": "Done"},
                {"type": "FileSystemResizePending", "$patch": "delete"},
            ]
        }
    }
    patched = api.core.patch_namespaced_persistent_volume_claim_status("data", ns, second)
    conditions = [(c.type, c.status, c.reason) for c in patched.status.conditions]
    assert conditions == [("Resizing", "False", "Done")]


def test_strategic_merge_replace_directive_replaces_a_map(api: Api, ns: str) -> None:
    patched = api.core.patch_namespaced_persistent_volume_claim(
        "data", ns, {"metadata": {"labels": {"$patch": "replace", "only": "this"}}}
    )
    assert patched.metadata.labels == {"only": "this"}


def test_patch_of_missing_object_is_not_found(api: Api, ns: str) -> None:
    with pytest.raises(client.ApiException) as err:
        api.core.patch_namespaced_persistent_volume_claim("ghost", ns, {"metadata": {}})
    assert status_of(err.value)["reason"] == "NotFound"


def test_server_side_apply_is_refused_with_unsupported_media_type(api: Api, ns: str) -> None:
    with pytest.raises(client.ApiException) as err:
        api.core.patch_namespaced_persistent_volume_claim(
            "data",
            ns,
            {"metadata": {"labels": {"a": "b"}}},
            _content_type="application/apply-patch+yaml",
            field_manager="test",
        )
    assert err.value.status == 415
