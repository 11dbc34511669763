"""Point 3: one global resourceVersion; no-op writes change nothing; lists carry it."""

import json
from collections.abc import Iterator

import pytest
from kubernetes import watch

from testbed.kube.server import KubeTestServer
from tests.integration.test_servers.kube_support import (
    Api,
    api_for,
    new_namespace,
    pv_body,
    pvc_body,
)


@pytest.fixture
def server() -> Iterator[KubeTestServer]:
    with KubeTestServer() as kube:
        yield kube


@pytest.fixture
def api(server: KubeTestServer) -> Api:
    return api_for(server)


def test_writes_to_different_types_share_one_increasing_counter(api: Api) -> None:
    ns = new_namespace(api)
    claim = api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("a"))
    volume = api.core.create_persistent_volume(pv_body("pv-a"))
    secret = api.core.create_namespaced_secret(ns, {"metadata": {"name": "s"}})
    versions = [int(o.metadata.resource_version) for o in (claim, volume, secret)]
    assert versions == sorted(versions)
    assert len(set(versions)) == 3


def test_list_reports_the_latest_resource_version_of_the_store(
    api: Api, server: KubeTestServer
) -> None:
    ns = new_namespace(api)
    api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("a"))
    api.core.create_persistent_volume(pv_body("pv-b"))
    listed = api.core.list_namespaced_persistent_volume_claim(ns)
    assert listed.metadata.resource_version == server.resource_version


def test_write_that_changes_nothing_keeps_resource_version_and_emits_no_event(
    api: Api,
) -> None:
    ns = new_namespace(api)
    created = api.core.create_namespaced_persistent_volume_claim(
        ns, pvc_body("a", labels={"x": "1"})
    )
    same = api.core.patch_namespaced_persistent_volume_claim(
        "a", ns, {"metadata": {"labels": {"x": "1"}}}
    )
    replaced = api.core.replace_namespaced_persistent_volume_claim("a", ns, same)
    assert same.metadata.resource_version == created.metadata.resource_version
    assert replaced.metadata.resource_version == created.metadata.resource_version
    events = list(
        watch.Watch().stream(
            api.core.list_namespaced_persistent_volume_claim,
            ns,
            resource_version=created.metadata.resource_version,
            timeout_seconds=1,
        )
    )
    assert events == []


def test_resource_version_is_an_opaque_string_in_json(api: Api) -> None:
    ns = new_namespace(api)
    raw = api.core.create_namespaced_persistent_volume_claim(
        ns, pvc_body("a"), _preload_content=False
    )
    assert isinstance(json.loads(raw.data)["metadata"]["resourceVersion"], str)
