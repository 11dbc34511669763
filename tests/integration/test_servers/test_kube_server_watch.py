"""Point 10: watch semantics as the real client sees them."""

import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
from kubernetes import client, watch
from kubernetes.informer.informer import SharedInformer

from testbed.kube.server import KubeTestServer
from tests.integration.test_servers.kube_support import (
    Api,
    api_for,
    pvc_body,
    watch_events,
)


@pytest.fixture(scope="module")
def server() -> Iterator[KubeTestServer]:
    with KubeTestServer(bookmark_interval=0.2) as kube:
        yield kube


def _names(events: list[tuple[str, dict[str, object]]]) -> list[tuple[str, object]]:
    return [(kind, obj["metadata"]["name"]) for kind, obj in events]  # type: ignore[index]


def test_watch_from_a_list_version_does_not_replay_the_list(api: Api, ns: str) -> None:
    api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("before"))
    version = api.core.list_namespaced_persistent_volume_claim(ns).metadata.resource_version
    api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("after"))
    events = watch_events(
        api.core.list_namespaced_persistent_volume_claim,
        ns,
        resource_version=version,
        count=2,
        timeout=1,
    )
    assert _names(events) == [("ADDED", "after")]


def test_watch_without_version_starts_with_the_current_state(api: Api, ns: str) -> None:
    for name in ("a", "b"):
        api.core.create_namespaced_persistent_volume_claim(ns, pvc_body(name))
    events = watch_events(
        api.core.list_namespaced_persistent_volume_claim, ns, resource_version=None, count=2
    )
    assert _names(events) == [("ADDED", "a"), ("ADDED", "b")]


def test_watch_ends_cleanly_after_timeout_seconds(api: Api, ns: str) -> None:
    stream = watch.Watch().stream(
        api.core.list_namespaced_persistent_volume_claim,
        ns,
        resource_version="0",
        timeout_seconds=1,
    )
    assert list(stream) == []


def test_modified_and_deleted_events_carry_their_resource_version(api: Api, ns: str) -> None:
    created = api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("a"))
    patched = api.core.patch_namespaced_persistent_volume_claim(
        "a", ns, {"metadata": {"labels": {"x": "1"}}}
    )
    api.core.delete_namespaced_persistent_volume_claim("a", ns)
    events = watch_events(
        api.core.list_namespaced_persistent_volume_claim,
        ns,
        resource_version=created.metadata.resource_version,
        count=2,
    )
    assert [kind for kind, _ in events] == ["MODIFIED", "DELETED"]
    versions = [int(obj["metadata"]["resourceVersion"]) for _, obj in events]
    assert versions[0] == int(patched.metadata.resource_version) < versions[1]


@pytest.mark.parametrize("timeout_seconds", [5, None], ids=["no-retry", "client-retries-once"])
def test_too_old_version_makes_the_client_raise_410(
    api: Api, server: KubeTestServer, ns: str, timeout_seconds: int | None
) -> None:
    old = api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("a"))
    api.core.patch_namespaced_persistent_volume_claim("a", ns, {"metadata": {"labels": {"x": "1"}}})
    server.compact()
    kwargs = {"timeout_seconds": timeout_seconds} if timeout_seconds else {}
    with pytest.raises(client.ApiException) as err:
        list(
            watch.Watch().stream(
                api.core.list_namespaced_persistent_volume_claim,
                ns,
                resource_version=old.metadata.resource_version,
                **kwargs,
            )
        )
    assert err.value.status == 410


def test_expired_watch_sends_an_error_event_with_a_status(
    api: Api, server: KubeTestServer, ns: str
) -> None:
    old = server.resource_version
    api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("a"))
    server.compact()
    url = urlsplit(server.url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=5)
    conn.request(
        "GET", f"/api/v1/namespaces/{ns}/persistentvolumeclaims?watch=true&resourceVersion={old}"
    )
    response = conn.getresponse()
    lines = response.read().splitlines()
    conn.close()
    event = json.loads(lines[0])
    assert (response.status, event["type"]) == (200, "ERROR")
    assert event["object"]["kind"] == "Status"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
    assert len(lines) == 1


def test_bookmarks_arrive_when_allowed(api: Api, ns: str) -> None:
    version = api.core.create_namespaced_persistent_volume_claim(
        ns, pvc_body("a")
    ).metadata.resource_version
    api.core.create_namespace({"metadata": {"name": f"{ns}-other"}})
    events = watch_events(
        api.core.list_namespaced_persistent_volume_claim,
        ns,
        resource_version=version,
        count=1,
        allow_watch_bookmarks=True,
    )
    kind, obj = events[0]
    assert kind == "BOOKMARK"
    assert obj["kind"] == "PersistentVolumeClaim"
    assert int(obj["metadata"]["resourceVersion"]) > int(version)


def test_initial_events_end_with_an_annotated_bookmark(api: Api, ns: str) -> None:
    api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("a"))
    events = watch_events(
        api.core.list_namespaced_persistent_volume_claim,
        ns,
        resource_version=None,
        count=2,
        allow_watch_bookmarks=True,
        send_initial_events=True,
        resource_version_match="NotOlderThan",
    )
    assert [kind for kind, _ in events] == ["ADDED", "BOOKMARK"]
    assert events[1][1]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_objects_leaving_and_entering_a_selector_are_deleted_and_added(api: Api, ns: str) -> None:
    version = api.core.create_namespaced_persistent_volume_claim(
        ns, pvc_body("a", labels={"tier": "gold"})
    ).metadata.resource_version
    left = api.core.patch_namespaced_persistent_volume_claim(
        "a", ns, {"metadata": {"labels": {"tier": "silver"}}}
    )
    api.core.patch_namespaced_persistent_volume_claim(
        "a", ns, {"metadata": {"labels": {"tier": "gold"}}}
    )
    events = watch_events(
        api.core.list_namespaced_persistent_volume_claim,
        ns,
        resource_version=version,
        count=2,
        label_selector="tier=gold",
    )
    assert [kind for kind, _ in events] == ["DELETED", "ADDED"]
    gone = events[0][1]["metadata"]
    assert gone["labels"] == {"tier": "gold"}
    assert gone["resourceVersion"] == left.metadata.resource_version


def test_history_is_bounded(api: Api) -> None:
    with KubeTestServer(history=3) as small:
        core = api_for(small).core
        first = core.create_namespace({"metadata": {"name": "n0"}}).metadata.resource_version
        for index in range(1, 6):
            core.create_namespace({"metadata": {"name": f"n{index}"}})
        with pytest.raises(client.ApiException) as err:
            list(
                watch.Watch().stream(core.list_namespace, resource_version=first, timeout_seconds=2)
            )
        recent = watch_events(
            core.list_namespace, resource_version=str(int(small.resource_version) - 1), count=1
        )
    assert err.value.status == 410
    assert _names(recent) == [("ADDED", "n5")]


def test_connection_is_reused_after_a_watch_ends(server: KubeTestServer) -> None:
    url = urlsplit(server.url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=5)
    conn.request(
        "GET",
        f"/api/v1/namespaces?watch=true&timeoutSeconds=1&resourceVersion={server.resource_version}",
    )
    watched = conn.getresponse()
    assert watched.getheader("Transfer-Encoding") == "chunked"
    assert watched.read() == b""
    conn.request("GET", "/api/v1/namespaces/default")
    again = conn.getresponse()
    assert (again.status, json.loads(again.read())["metadata"]["name"]) == (200, "default")
    conn.close()


def test_watch_whose_client_went_away_is_ended(server: KubeTestServer) -> None:
    url = urlsplit(server.url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=5)
    conn.request("GET", f"/api/v1/namespaces?watch=true&resourceVersion={server.resource_version}")
    conn.getresponse()
    before = server.open_connections
    conn.close()
    deadline = time.monotonic() + 5
    while server.open_connections >= before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.open_connections < before


def test_concurrent_writers_produce_one_ordered_stream(api: Api, ns: str) -> None:
    writers, writes = 4, 25
    for w in range(writers):
        api.core.create_namespaced_persistent_volume_claim(ns, pvc_body(f"w{w}"))
    start = api.core.list_namespaced_persistent_volume_claim(ns).metadata.resource_version

    def write(index: int) -> None:
        core = api_for_thread()
        for n in range(writes):
            core.patch_namespaced_persistent_volume_claim(
                f"w{index}", ns, {"metadata": {"annotations": {"n": str(n)}}}
            )

    def api_for_thread() -> client.CoreV1Api:
        return client.CoreV1Api(client.ApiClient(api.api_client.configuration))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    events = watch_events(
        api.core.list_namespaced_persistent_volume_claim,
        ns,
        resource_version=start,
        count=writers * writes,
    )
    versions = [int(obj["metadata"]["resourceVersion"]) for _, obj in events]
    assert len(events) == writers * writes
    assert versions == sorted(versions)
    last = {obj["metadata"]["name"]: obj["metadata"]["annotations"]["n"] for _, obj in events}
    assert last == {f"w{w}": str(writes - 1) for w in range(writers)}


def test_the_clients_shared_informer_follows_changes_and_relists_after_410(
    api: Api, server: KubeTestServer, ns: str
) -> None:
    # resync_period bounds each watch (timeoutSeconds): SharedInformer.stop() joins its
    # thread without a timeout and can miss a watch that is just being opened.
    informer = SharedInformer(
        api.core.list_namespaced_persistent_volume_claim, namespace=ns, resync_period=2
    )
    errors: list[object] = []
    informer.add_event_handler("ERROR", errors.append)
    informer.start()
    try:
        api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("a"))
        _until(lambda: _cached(informer) == {"a"})
        server.compact()
        api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("b"))
        api.core.delete_namespaced_persistent_volume_claim("a", ns)
        server.cut_watches()
        _until(lambda: _cached(informer) == {"b"})
    finally:
        informer.stop()
    assert errors  # the cut stream, and the 410 that forced the relist, were reported


def _cached(informer: SharedInformer) -> set[str]:
    return {o.metadata.name for o in informer.cache.list()}


def _until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
