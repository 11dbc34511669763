"""Endpoints and Services through the real client: what in-tree GlusterFS volumes name."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from testbed.kube.server import KubeTestServer
from tests.integration.test_servers.kube_support import Api, api_for

NS = "default"


@pytest.fixture
def api() -> Iterator[Api]:
    with KubeTestServer() as kube:
        yield api_for(kube)


def _endpoints(name: str, addresses: list[dict[str, Any]], ports: Any = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name},
        "subsets": [{"addresses": addresses,
                     "ports": [{"port": 1}] if ports is None else ports}],
    }  # fmt: skip


def _invalid(exc: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    assert exc.value.status == 422
    body: dict[str, Any] = json.loads(exc.value.body)
    assert body["reason"] == "Invalid"
    return body


def test_endpoints_of_the_classic_gluster_guide_are_stored_with_tcp_ports(api: Api) -> None:
    body = _endpoints("glusterfs-cluster", [{"ip": "192.0.2.10"}, {"ip": "192.0.2.11"}])
    api.core.create_namespaced_endpoints(NS, body)
    stored = api.core.read_namespaced_endpoints("glusterfs-cluster", NS)
    assert [a.ip for a in stored.subsets[0].addresses] == ["192.0.2.10", "192.0.2.11"]
    assert stored.subsets[0].ports[0].protocol == "TCP"


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("gluster1.example.com",
         'Invalid value: "gluster1.example.com": must be a valid IP address'),
        ("127.0.0.1", "may not be in the loopback range (127.0.0.0/8, ::1/128)"),
        ("169.254.1.1", "may not be in the link-local range (169.254.0.0/16, fe80::/10)"),
        ("0.0.0.0", "may not be unspecified (0.0.0.0)"),
    ],
    ids=["hostname", "loopback", "link-local", "unspecified"],
)  # fmt: skip
def test_endpoint_addresses_must_be_ordinary_ips(api: Api, address: str, message: str) -> None:
    with pytest.raises(ApiException) as exc:
        api.core.create_namespaced_endpoints(NS, _endpoints("ep", [{"ip": address}]))
    body = _invalid(exc)
    assert body["details"]["causes"][0]["field"] == "subsets[0].addresses[0].ip"
    assert message in body["message"]


def test_an_endpoints_subset_needs_ports(api: Api) -> None:
    with pytest.raises(ApiException) as exc:
        api.core.create_namespaced_endpoints(NS, _endpoints("ep", [{"ip": "192.0.2.1"}], []))
    assert "subsets[0].ports: Required value" in _invalid(exc)["message"]


def test_a_selectorless_service_gets_a_cluster_ip_and_defaults(api: Api) -> None:
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "glusterfs-cluster"},
            "spec": {"ports": [{"port": 1}]}}  # fmt: skip
    first = api.core.create_namespaced_service(NS, body)
    second = api.core.create_namespaced_service(
        NS, {**body, "metadata": {"name": "glusterfs-dynamic-db"}}
    )
    assert first.spec.type == "ClusterIP" and first.spec.session_affinity == "None"
    assert first.spec.ports[0].protocol == "TCP" and first.spec.ports[0].target_port == 1
    assert first.spec.cluster_ip and first.spec.cluster_ip != second.spec.cluster_ip
    assert first.spec.cluster_ips == [first.spec.cluster_ip]


def test_a_service_name_must_be_a_dns_1035_label(api: Api) -> None:
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1gluster"},
            "spec": {"ports": [{"port": 1}]}}  # fmt: skip
    with pytest.raises(ApiException) as exc:
        api.core.create_namespaced_service(NS, body)
    assert "a DNS-1035 label must consist of" in _invalid(exc)["message"]


def test_deleting_a_service_answers_with_the_service_and_endpoints_with_a_status(
    api: Api,
) -> None:
    api.core.create_namespaced_endpoints(NS, _endpoints("ep", [{"ip": "192.0.2.1"}]))
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ep"},
           "spec": {"ports": [{"port": 1}]}}  # fmt: skip
    api.core.create_namespaced_service(NS, svc)
    deleted = api.core.delete_namespaced_service("ep", NS)
    assert isinstance(deleted, client.V1Service)
    status = api.core.delete_namespaced_endpoints("ep", NS)
    assert status["status"] == "Success"  # the client types this DELETE as a plain object
    with pytest.raises(ApiException) as exc:
        api.core.read_namespaced_endpoints("ep", NS)
    assert exc.value.status == 404
