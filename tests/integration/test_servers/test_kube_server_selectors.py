"""Point 9: label selectors, field selectors, limit/continue paging."""

import pytest
from kubernetes import client

from testbed.kube.server import KubeTestServer
from tests.integration.test_servers.kube_support import Api, api_for, pvc_body, status_of

LABELS = {
    "gold": {"tier": "gold", "app": "db"},
    "silver": {"tier": "silver", "app": "db"},
    "plain": {"app": "web"},
    "bare": {},
}


@pytest.fixture(scope="module")
def api(server: KubeTestServer) -> Api:
    api = api_for(server)
    for ns in ("sel-a", "sel-b"):
        api.core.create_namespace({"metadata": {"name": ns}})
        for name, labels in LABELS.items():
            api.core.create_namespaced_persistent_volume_claim(ns, pvc_body(name, labels=labels))
    return api


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        pytest.param("tier=gold", {"gold"}, id="equals"),
        pytest.param("tier==gold", {"gold"}, id="double-equals"),
        pytest.param("tier!=gold", {"silver", "plain", "bare"}, id="not-equals"),
        pytest.param("tier in (gold, silver)", {"gold", "silver"}, id="in"),
        pytest.param("tier notin (gold)", {"silver", "plain", "bare"}, id="notin"),
        pytest.param("tier", {"gold", "silver"}, id="exists"),
        pytest.param("!tier", {"plain", "bare"}, id="does-not-exist"),
        pytest.param("app=db,tier!=silver", {"gold"}, id="and"),
        pytest.param("", {"gold", "silver", "plain", "bare"}, id="empty"),
    ],
)
def test_label_selector_selects(api: Api, selector: str, names: set[str]) -> None:
    listed = api.core.list_namespaced_persistent_volume_claim("sel-a", label_selector=selector)
    assert {c.metadata.name for c in listed.items} == names


@pytest.mark.parametrize(
    ("selector", "keys"),
    [
        pytest.param("metadata.name=gold", {("sel-a", "gold"), ("sel-b", "gold")}, id="name"),
        pytest.param(
            "metadata.namespace=sel-b,metadata.name!=gold",
            {("sel-b", "silver"), ("sel-b", "plain"), ("sel-b", "bare")},
            id="namespace-and-not-name",
        ),
    ],
)
def test_field_selector_selects(api: Api, selector: str, keys: set[tuple[str, str]]) -> None:
    listed = api.core.list_persistent_volume_claim_for_all_namespaces(field_selector=selector)
    assert {(c.metadata.namespace, c.metadata.name) for c in listed.items} == keys


def test_event_field_selectors_follow_the_involved_object(api: Api) -> None:
    for name, claim in (("e1", "gold"), ("e2", "silver")):
        api.core.create_namespaced_event(
            "sel-a",
            {
                "metadata": {"name": name},
                "reason": "Provisioning",
                "type": "Normal",
                "involvedObject": {
                    "kind": "PersistentVolumeClaim",
                    "name": claim,
                    "namespace": "sel-a",
                },
            },
        )
    listed = api.core.list_namespaced_event(
        "sel-a",
        field_selector="involvedObject.name=gold,involvedObject.kind="
        "PersistentVolumeClaim,reason=Provisioning",
    )
    assert [e.metadata.name for e in listed.items] == ["e1"]


def test_secret_type_is_a_selectable_field(api: Api) -> None:
    api.core.create_namespaced_secret(
        "sel-b", {"metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "data": {}}
    )
    listed = api.core.list_namespaced_secret("sel-b", field_selector="type=kubernetes.io/tls")
    assert [s.metadata.name for s in listed.items] == ["tls"]


def test_pages_cover_the_list_once_in_key_order(api: Api) -> None:
    seen, token = [], None
    while True:
        page = api.core.list_persistent_volume_claim_for_all_namespaces(limit=3, _continue=token)
        seen += [(c.metadata.namespace, c.metadata.name) for c in page.items]
        token = page.metadata._continue
        if not token:
            break
    every = [(ns, n) for ns in ("sel-a", "sel-b") for n in sorted(LABELS)]
    assert seen == every


def test_first_page_reports_remaining_items(api: Api) -> None:
    page = api.core.list_namespaced_persistent_volume_claim("sel-a", limit=1)
    assert len(page.items) == 1
    assert page.metadata.remaining_item_count == 3


def test_later_pages_show_the_list_as_it_was_at_the_first_page(api: Api) -> None:
    first = api.core.list_namespaced_persistent_volume_claim("sel-b", limit=2)
    assert [c.metadata.name for c in first.items] == ["bare", "gold"]
    api.core.delete_namespaced_persistent_volume_claim("silver", "sel-b")
    api.core.create_namespaced_persistent_volume_claim("sel-b", pvc_body("newer"))
    rest = api.core.list_namespaced_persistent_volume_claim(
        "sel-b", limit=10, _continue=first.metadata._continue
    )
    assert [c.metadata.name for c in rest.items] == ["plain", "silver"]
    assert rest.metadata.resource_version == first.metadata.resource_version
    api.core.delete_namespaced_persistent_volume_claim("newer", "sel-b")
    api.core.create_namespaced_persistent_volume_claim(
        "sel-b", pvc_body("silver", labels=LABELS["silver"])
    )


def test_continue_token_older_than_history_is_expired(api: Api, server: KubeTestServer) -> None:
    first = api.core.list_namespaced_persistent_volume_claim("sel-a", limit=1)
    api.core.patch_namespaced_persistent_volume_claim(
        "bare", "sel-a", {"metadata": {"labels": {"touched": "yes"}}}
    )
    server.compact()
    with pytest.raises(client.ApiException) as err:
        api.core.list_namespaced_persistent_volume_claim(
            "sel-a", limit=1, _continue=first.metadata._continue
        )
    assert (status_of(err.value)["code"], status_of(err.value)["reason"]) == (410, "Expired")


def test_malformed_continue_token_is_a_bad_request(api: Api) -> None:
    with pytest.raises(client.ApiException) as err:
        api.core.list_namespaced_persistent_volume_claim("sel-a", limit=1, _continue="garbage")
    assert err.value.status == 400
