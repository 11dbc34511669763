"""Point 6: the status subresource of claims and volumes."""

from tests.integration.test_servers.kube_support import (
    Api,
    new_namespace,
    pv_body,
    pvc_body,
    unique,
)


def test_main_resource_update_ignores_status(api: Api) -> None:
    ns = new_namespace(api)
    claim = api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("data"))
    claim.status.phase = "Bound"
    claim.metadata.labels = {"changed": "yes"}
    updated = api.core.replace_namespaced_persistent_volume_claim("data", ns, claim)
    assert updated.status.phase == "Pending"
    assert updated.metadata.labels == {"changed": "yes"}


def test_main_resource_patch_ignores_status(api: Api) -> None:
    name = unique("pv")
    api.core.create_persistent_volume(pv_body(name))
    patched = api.core.patch_persistent_volume(
        name, {"status": {"phase": "Released"}, "metadata": {"labels": {"a": "b"}}}
    )
    assert patched.status.phase == "Pending"
    assert patched.metadata.labels == {"a": "b"}


def test_status_update_ignores_spec_and_metadata(api: Api) -> None:
    ns = new_namespace(api)
    claim = api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("data"))
    claim.status.phase = "Bound"
    claim.status.capacity = {"storage": "2Gi"}
    claim.spec.volume_name = "sneaky"
    claim.metadata.labels = {"sneaky": "yes"}
    updated = api.core.replace_namespaced_persistent_volume_claim_status("data", ns, claim)
    assert (updated.status.phase, updated.status.capacity) == ("Bound", {"storage": "2Gi"})
    assert updated.spec.volume_name is None
    assert updated.metadata.labels == {}


def test_status_patch_changes_only_status(api: Api) -> None:
    name = unique("pv")
    api.core.create_persistent_volume(pv_body(name))
    patched = api.core.patch_persistent_volume_status(
        name, {"status": {"phase": "Available"}, "spec": {"capacity": {"storage": "9Gi"}}}
    )
    assert patched.status.phase == "Available"
    assert patched.spec.capacity == {"storage": "1Gi"}


def test_status_write_does_not_bump_generation(api: Api) -> None:
    ns = new_namespace(api)
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}
    api.core.create_namespaced_pod(ns, pod)  # Pods keep a generation; claims have none
    patched = api.core.patch_namespaced_pod_status("p", ns, {"status": {"phase": "Running"}})
    assert (patched.status.phase, patched.metadata.generation) == ("Running", 1)
