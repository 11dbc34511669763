"""Point 1: core resources, namespaced and cluster-scoped paths, every verb, discovery."""

import http.client
import json
import socket
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


def test_claim_goes_through_create_get_list_replace_patch_delete(api: Api) -> None:
    ns = new_namespace(api)
    created = api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("data"))
    fetched = api.core.read_namespaced_persistent_volume_claim("data", ns)
    assert fetched.metadata.uid == created.metadata.uid
    assert [
        c.metadata.name for c in api.core.list_namespaced_persistent_volume_claim(ns).items
    ] == ["data"]
    fetched.metadata.labels = {"tier": "gold"}
    replaced = api.core.replace_namespaced_persistent_volume_claim("data", ns, fetched)
    assert replaced.metadata.labels == {"tier": "gold"}
    patched = api.core.patch_namespaced_persistent_volume_claim(
        "data", ns, {"metadata": {"annotations": {"note": "x"}}}
    )
    assert patched.metadata.annotations == {"note": "x"}
    api.core.delete_namespaced_persistent_volume_claim("data", ns)
    with pytest.raises(client.ApiException) as err:
        api.core.read_namespaced_persistent_volume_claim("data", ns)
    assert err.value.status == 404


def test_list_across_namespaces_returns_claims_of_every_namespace(api: Api) -> None:
    first, second = new_namespace(api), new_namespace(api)
    api.core.create_namespaced_persistent_volume_claim(first, pvc_body("a"))
    api.core.create_namespaced_persistent_volume_claim(second, pvc_body("b"))
    listed = api.core.list_persistent_volume_claim_for_all_namespaces()
    keys = {(c.metadata.namespace, c.metadata.name) for c in listed.items}
    assert {(first, "a"), (second, "b")} <= keys


def test_cluster_scoped_volume_has_no_namespace(api: Api) -> None:
    name = unique("pv")
    created = api.core.create_persistent_volume(pv_body(name))
    assert created.metadata.namespace is None
    assert api.core.read_persistent_volume(name).spec.csi.volume_handle == f"handle-{name}"
    api.core.delete_persistent_volume(name)
    assert name not in [v.metadata.name for v in api.core.list_persistent_volume().items]


def test_storage_class_is_served_under_storage_group(api: Api) -> None:
    name = unique("sc")
    api.storage.create_storage_class(sc_body(name, parameters={"resturl": "http://heketi"}))
    assert api.storage.read_storage_class(name).parameters == {"resturl": "http://heketi"}
    api.storage.patch_storage_class(name, {"allowVolumeExpansion": True})
    assert api.storage.read_storage_class(name).allow_volume_expansion is True
    api.storage.delete_storage_class(name)


def test_secret_and_lease_are_namespaced_crud_resources(api: Api) -> None:
    ns = new_namespace(api)
    api.core.create_namespaced_secret(ns, {"metadata": {"name": "key"}, "data": {"k": "dg=="}})
    assert api.core.read_namespaced_secret("key", ns).data == {"k": "dg=="}
    lease = {
        "metadata": {"name": "leader"},
        "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15},
    }
    api.coordination.create_namespaced_lease(ns, lease)
    current = api.coordination.read_namespaced_lease("leader", ns)
    current.spec.holder_identity = "you"
    api.coordination.replace_namespaced_lease("leader", ns, current)
    assert api.coordination.read_namespaced_lease("leader", ns).spec.holder_identity == "you"
    api.coordination.delete_namespaced_lease("leader", ns)
    api.core.delete_namespaced_secret("key", ns)


def test_core_and_events_group_events_share_one_store(api: Api) -> None:
    ns = new_namespace(api)
    core_event = {
        "metadata": {"name": "e1"},
        "involvedObject": {"kind": "PersistentVolumeClaim", "name": "data", "namespace": ns},
        "reason": "ProvisioningSucceeded",
        "message": "done",
        "type": "Normal",
        "reportingComponent": "glusterfs-provisioner",
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "action": "Provision",
        "reportingInstance": "controller-0",
    }
    api.core.create_namespaced_event(ns, core_event)
    seen = api.events.read_namespaced_event("e1", ns)
    assert (seen.regarding.name, seen.note, seen.reporting_controller) == (
        "data",
        "done",
        "glusterfs-provisioner",
    )
    new_event = {
        "metadata": {"name": "e2"},
        "regarding": {"kind": "Pod", "name": "p", "namespace": ns},
        "reason": "Started",
        "note": "hello",
        "type": "Normal",
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "action": "Start",
        "reportingController": "kubelet",
        "reportingInstance": "node-1",
    }
    api.events.create_namespaced_event(ns, new_event)
    as_core = api.core.read_namespaced_event("e2", ns)
    assert (as_core.involved_object.name, as_core.message) == ("p", "hello")
    assert (as_core.api_version, seen.api_version) == ("v1", "events.k8s.io/v1")
    assert len(api.core.list_namespaced_event(ns).items) == 2


def test_namespace_listing_includes_the_default_namespaces(api: Api) -> None:
    names = {n.metadata.name for n in api.core.list_namespace().items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names


def test_unknown_object_answers_not_found_status(api: Api) -> None:
    with pytest.raises(client.ApiException) as err:
        api.storage.read_storage_class("missing")
    assert status_of(err.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'storageclasses.storage.k8s.io "missing" not found',
        "reason": "NotFound",
        "code": 404,
        "details": {"name": "missing", "group": "storage.k8s.io", "kind": "storageclasses"},
    }


def test_discovery_lists_versions_groups_and_resources(api: Api) -> None:
    assert client.CoreApi(api.api_client).get_api_versions().versions == ["v1"]
    groups = {g.name for g in client.ApisApi(api.api_client).get_api_versions().groups}
    assert {"storage.k8s.io", "events.k8s.io", "coordination.k8s.io"} <= groups
    core = {r.name for r in api.core.get_api_resources().resources}
    assert {
        "persistentvolumeclaims",
        "persistentvolumeclaims/status",
        "persistentvolumes",
        "secrets",
        "namespaces",
        "events",
    } <= core
    storage = api.storage.get_api_resources()
    assert storage.group_version == "storage.k8s.io/v1"
    assert "storageclasses" in {r.name for r in storage.resources}


def test_timestamps_come_back_in_the_servers_format(api: Api) -> None:
    ns = new_namespace(api)
    lease = {
        "metadata": {"name": "leader"},
        "spec": {"holderIdentity": "me", "renewTime": "2026-01-01T01:00:00.5+01:00"},
    }
    api.coordination.create_namespaced_lease(ns, lease)
    raw = api.coordination.read_namespaced_lease("leader", ns, _preload_content=False)
    assert json.loads(raw.data)["spec"]["renewTime"] == "2026-01-01T00:00:00.500000Z"


def test_undecodable_timestamp_is_a_bad_request(server: KubeTestServer, api: Api) -> None:
    ns = new_namespace(api)
    body = {"metadata": {"name": "e"}, "involvedObject": {}, "lastTimestamp": "yesterday"}
    url = urlsplit(server.url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=5)
    conn.request(
        "POST",
        f"/api/v1/namespaces/{ns}/events",
        body=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    response = conn.getresponse()
    status = json.loads(response.read())
    conn.close()
    assert (response.status, status["reason"]) == (400, "BadRequest")
    assert 'parsing time "yesterday"' in status["message"]


def test_event_about_a_cluster_scoped_object_lives_in_default(api: Api) -> None:
    about_volume = {
        "metadata": {"name": "pv-event"},
        "reason": "VolumeDeleted",
        "involvedObject": {"kind": "PersistentVolume", "name": "pv-1"},
    }
    assert api.core.create_namespaced_event("default", about_volume).metadata.name == "pv-event"
    ns = new_namespace(api)
    with pytest.raises(client.ApiException) as err:
        api.core.create_namespaced_event(ns, about_volume)
    assert status_of(err.value)["message"] == (
        'Event "pv-event" is invalid: involvedObject.namespace: Invalid value: "": does not '
        "match event.namespace"
    )


def test_new_style_event_needs_its_reporting_fields(api: Api) -> None:
    ns = new_namespace(api)
    event = {
        "metadata": {"name": "e"},
        "regarding": {"kind": "Pod", "name": "p", "namespace": ns},
        "reason": "Started",
        "type": "Normal",
        "eventTime": "2026-01-01T00:00:00.000000Z",
    }
    with pytest.raises(client.ApiException) as err:
        api.events.create_namespaced_event(ns, event)
    fields = [c["field"] for c in status_of(err.value)["details"]["causes"]]
    assert fields == ["reportingController", "reportingInstance", "action"]


def test_patch_with_unknown_field_drops_it_and_warns(server: KubeTestServer, api: Api) -> None:
    ns = new_namespace(api)
    api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("data"))
    status, headers, _ = _raw_patch(server, ns, "", {"spec": {"volumeNam": "typo"}})
    assert status == 200
    assert headers.get_all("Warning") == ['299 - "unknown field \\"spec.volumeNam\\""']
    assert "volumeNam" not in server.get("persistentvolumeclaims", "data", ns)["spec"]


def test_strict_field_validation_rejects_unknown_fields(server: KubeTestServer, api: Api) -> None:
    ns = new_namespace(api)
    api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("data"))
    status, _, body = _raw_patch(
        server, ns, "?fieldValidation=Strict", {"metadata": {"finalizer": ["x"]}}
    )
    assert (status, body["reason"]) == (400, "BadRequest")
    assert body["message"] == 'strict decoding error: unknown field "metadata.finalizer"'


def _raw_patch(
    server: KubeTestServer, ns: str, query: str, patch: dict[str, object]
) -> tuple[int, http.client.HTTPMessage, dict[str, object]]:
    url = urlsplit(server.url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=5)
    conn.request(
        "PATCH",
        f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data{query}",
        body=json.dumps(patch),
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    return response.status, response.headers, body


def _raw_claim_post(server: KubeTestServer, ns: str, head: str, body: bytes) -> JSON:
    """The Status answered to a claim POST sent as raw HTTP with `head` as extra headers."""
    url = urlsplit(server.url)
    with socket.create_connection((url.hostname or "", url.port or 80), timeout=5) as sock:
        sock.sendall(
            f"POST /api/v1/namespaces/{ns}/persistentvolumeclaims HTTP/1.1\r\n"
            f"Host: {url.netloc}\r\nContent-Type: application/json\r\n{head}\r\n".encode()
            + body
        )
        response = http.client.HTTPResponse(sock)
        response.begin()
        status: JSON = json.loads(response.read())
    return status


@pytest.mark.parametrize(
    ("head", "body", "code", "reason"),
    [
        pytest.param(
            "Transfer-Encoding: chunked\r\n",
            # 2 MiB, then the head of a second 2 MiB chunk and nothing more: the server
            # refuses at that head (4 MiB > 3 MiB) having read every byte sent, so it
            # closes cleanly and the answer is never lost to a connection reset.
            b"%x\r\n%s\r\n%x\r\n" % (2 * 2**20, b" " * 2 * 2**20, 2 * 2**20),
            413,
            "RequestEntityTooLarge",
            id="chunked-body-over-the-limit",
        ),
        pytest.param(
            "Transfer-Encoding: chunked\r\n",
            b"zz\r\n",  # refused at this line; nothing unread, so no reset
            400,
            "BadRequest",
            id="malformed-chunk-size",
        ),
        pytest.param(
            "Content-Length: ten\r\n", b"", 400, "BadRequest", id="non-numeric-content-length"
        ),
    ],
)
def test_bad_request_bodies_get_a_status_not_an_internal_error(
    api: Api, server: KubeTestServer, head: str, body: bytes, code: int, reason: str
) -> None:
    ns = new_namespace(api)
    status = _raw_claim_post(server, ns, head, body)
    assert (status["code"], status["reason"]) == (code, reason)
    assert api.core.list_namespaced_persistent_volume_claim(ns).items == []
