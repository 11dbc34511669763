"""Request bodies a client sends, answered as the real apiserver answers them.

Content types (negotiation.NegotiateInputSerializerForMediaType and errUnsupportedMediaType
in k8s.io/apiserver): what this server cannot decode, such as the protobuf client-go sends
by default, is a 415 `Status`; malformed JSON is a 400; neither is ever a 500. And
`metadata.generation` as each type's registry strategy keeps it.
"""

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes import client

from testbed.kube.server import KubeTestServer
from tests.integration.test_servers.kube_support import Api, pv_body, pvc_body, status_of, unique

PROTOBUF = "application/vnd.kubernetes.protobuf"
#: The start of a protobuf-encoded Kubernetes object: magic "k8s\0", then a runtime.Unknown.
PROTOBUF_BODY = b"k8s\x00\n\x0c\n\x02v1\x12\x06Secret\x12\x10\n\x0e\n\x01s\x12\x00"
UNSUPPORTED = (
    "the body of the request was in an unknown format - accepted media types include: "
    "application/json"
)


def send(
    server: KubeTestServer, method: str, path: str, body: bytes, content_type: str | None
) -> tuple[int, Any]:
    """One raw HTTP request; the status code and the decoded JSON answer."""
    url = urlsplit(server.url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    headers = {} if content_type is None else {"Content-Type": content_type}
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def secret(name: str) -> bytes:
    return json.dumps({"metadata": {"name": name}, "stringData": {"k": "v"}}).encode()


def make_secret(server: KubeTestServer, ns: str) -> str:
    name = unique("s")
    code, _ = send(server, "POST", f"/api/v1/namespaces/{ns}/secrets", secret(name), None)
    assert code == 201
    return name


@pytest.mark.parametrize(
    ("method", "target", "content_type"),
    [
        ("POST", "collection", PROTOBUF),
        ("PUT", "item", PROTOBUF),
        ("DELETE", "item", PROTOBUF),
        ("DELETE", "collection", PROTOBUF),
        ("POST", "collection", "application/yaml"),
        ("POST", "collection", "text/plain; charset=utf-8"),
    ],
    ids=["create-protobuf", "update-protobuf", "delete-protobuf", "deletecollection-protobuf",
         "create-yaml", "create-text"],
)  # fmt: skip
def test_a_body_in_a_media_type_the_server_does_not_decode_is_415_unsupported_media_type(
    server: KubeTestServer, ns: str, method: str, target: str, content_type: str
) -> None:
    name = make_secret(server, ns)
    path = f"/api/v1/namespaces/{ns}/secrets" + (f"/{name}" if target == "item" else "")
    code, status = send(server, method, path, PROTOBUF_BODY, content_type)
    assert code == 415
    assert status == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": UNSUPPORTED, "reason": "UnsupportedMediaType", "code": 415,
    }  # fmt: skip
    assert send(server, "GET", f"/api/v1/namespaces/{ns}/secrets/{name}", b"", None)[0] == 200


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "application/json; charset=utf-8", "Application/JSON"],
    ids=["none-means-json", "json", "json-with-charset", "json-in-capitals"],
)
def test_json_is_decoded_whatever_the_header_spells(
    server: KubeTestServer, ns: str, content_type: str | None
) -> None:
    name = unique("s")
    code, created = send(
        server, "POST", f"/api/v1/namespaces/{ns}/secrets", secret(name), content_type
    )
    assert (code, created["metadata"]["name"]) == (201, name)


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("POST", "collection", b'{"metadata": {"name": '),
        ("POST", "collection", b"\xff\xfe not utf-8"),
        ("POST", "collection", b"[" * 100_000 + b"]" * 100_000),
        ("PUT", "item", b"{not json"),
        ("DELETE", "item", b"{not json"),
        ("DELETE", "item", b"[" * 100_000 + b"]" * 100_000),
        ("DELETE", "collection", b"\xff"),
    ],
    ids=["create-truncated", "create-not-utf8", "create-too-deep", "update-garbage",
         "delete-garbage", "delete-too-deep", "deletecollection-not-utf8"],
)  # fmt: skip
def test_a_malformed_json_body_is_400_bad_request_never_500(
    server: KubeTestServer, ns: str, method: str, target: str, body: bytes
) -> None:
    name = make_secret(server, ns)
    path = f"/api/v1/namespaces/{ns}/secrets" + (f"/{name}" if target == "item" else "")
    code, status = send(server, method, path, body, "application/json")
    assert (code, status["reason"], status["code"]) == (400, "BadRequest", 400)
    assert status["message"].startswith("couldn't get version/kind; json parse error: ")
    assert send(server, "GET", f"/api/v1/namespaces/{ns}/secrets/{name}", b"", None)[0] == 200


def test_a_patch_in_protobuf_is_415_before_its_body_is_read(
    server: KubeTestServer, ns: str
) -> None:
    name = make_secret(server, ns)
    path = f"/api/v1/namespaces/{ns}/secrets/{name}"
    code, status = send(server, "PATCH", path, PROTOBUF_BODY, PROTOBUF)
    assert (code, status["reason"]) == (415, "UnsupportedMediaType")
    assert status["message"].startswith(
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, "
        "application/strategic-merge-patch+json"
    )


def test_the_real_client_reads_the_415_as_an_api_exception_with_its_status(
    server: KubeTestServer, api: Api, ns: str
) -> None:
    # The generated API methods refuse to send a non-JSON body, so the request goes
    # through the client's own REST layer; the answer through its usual deserialisation.
    response = api.api_client.rest_client.request(
        "POST", f"{server.url}/api/v1/namespaces/{ns}/secrets",
        headers={"Content-Type": PROTOBUF}, body=PROTOBUF_BODY,
    )  # fmt: skip
    response.read()
    with pytest.raises(client.ApiException) as raised:
        api.api_client.response_deserialize(response, {"201": "V1Secret"})
    assert (raised.value.status, raised.value.reason) == (415, "Unsupported Media Type")
    assert status_of(raised.value)["reason"] == "UnsupportedMediaType"


def lease_body(name: str, renew: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"holderIdentity": "a", "renewTime": renew}}


def test_lease_renewals_never_set_a_generation(api: Api, ns: str) -> None:
    created = api.coordination.create_namespaced_lease(
        ns, lease_body("leader", "2026-01-01T00:00:00.000000Z")
    )
    assert created.metadata.generation is None
    for second in range(1, 4):
        lease = api.coordination.read_namespaced_lease("leader", ns)
        lease.spec.renew_time = f"2026-01-01T00:00:0{second}.000000Z"
        renewed = api.coordination.replace_namespaced_lease("leader", ns, lease)
        assert renewed.metadata.generation is None


def test_claims_and_volumes_never_get_a_generation_even_when_their_spec_changes(
    api: Api, ns: str
) -> None:
    claim = api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("data"))
    patched = api.core.patch_namespaced_persistent_volume_claim(
        "data", ns, {"spec": {"volumeName": "pv-x"}}
    )
    volume = api.core.create_persistent_volume(pv_body(unique("pv")))
    grown = api.core.patch_persistent_volume(
        volume.metadata.name, {"spec": {"capacity": {"storage": "5Gi"}}}
    )
    generations = [claim.metadata.generation, patched.metadata.generation]
    generations += [volume.metadata.generation, grown.metadata.generation]
    assert generations == [None, None, None, None]


def test_a_generation_a_client_sets_on_a_claim_is_kept_and_cannot_be_changed(
    api: Api, ns: str
) -> None:
    body = pvc_body("data")
    body["metadata"]["generation"] = 7
    assert api.core.create_namespaced_persistent_volume_claim(ns, body).metadata.generation == 7
    changed = api.core.patch_namespaced_persistent_volume_claim(
        "data", ns, {"metadata": {"generation": 9, "labels": {"a": "b"}}}
    )
    assert changed.metadata.generation == 7


def test_a_pod_starts_at_generation_1_and_counts_spec_changes_only(api: Api, ns: str) -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}
    assert api.core.create_namespaced_pod(ns, pod).metadata.generation == 1
    labelled = api.core.patch_namespaced_pod("p", ns, {"metadata": {"labels": {"a": "b"}}})
    assert labelled.metadata.generation == 1
    changed = api.core.patch_namespaced_pod("p", ns, {"spec": {"activeDeadlineSeconds": 30}})
    assert changed.metadata.generation == 2
