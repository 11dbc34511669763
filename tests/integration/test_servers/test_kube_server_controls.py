"""Point 11: request log, fault injection, cut watches, PV binder helpers and the binder."""

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import urllib3
from kubernetes import client, watch

from testbed.kube.server import BinderError, KubeTestServer
from tests.integration.test_servers.kube_support import (
    Api,
    api_for,
    new_namespace,
    pv_body,
    pvc_body,
    sc_body,
    status_of,
)

#: Upper bound for the background binder to react (it reacts within milliseconds).
BINDER_DEADLINE = 5.0


@pytest.fixture
def server() -> Iterator[KubeTestServer]:
    with KubeTestServer() as kube:
        yield kube


@pytest.fixture
def api(server: KubeTestServer) -> Api:
    return api_for(server)


def _eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BINDER_DEADLINE
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _start_namespace_watch(
    api: Api, server: KubeTestServer
) -> tuple[threading.Thread, list[BaseException | None]]:
    """A thread consuming a namespace watch, started once the server sees the watch.

    The list gets one entry when the stream ends: None, or what the client raised.
    """
    outcome: list[BaseException | None] = []

    def consume() -> None:
        try:
            list(watch.Watch().stream(api.core.list_namespace, timeout_seconds=30))
            outcome.append(None)
        except Exception as err:  # what the client raises is what we assert on
            outcome.append(err)

    thread = threading.Thread(target=consume)
    thread.start()
    _eventually(lambda: server.count_requests(verb="watch") == 1, "the watch to start")
    return thread, outcome


def test_request_log_records_verb_path_status_and_duration(
    api: Api, server: KubeTestServer
) -> None:
    server.clear_requests()
    api.core.create_namespaced_persistent_volume_claim("default", pvc_body("a"))
    api.core.read_namespaced_persistent_volume_claim("a", "default")
    api.core.list_namespaced_persistent_volume_claim("default")
    api.core.patch_namespaced_persistent_volume_claim("a", "default", {"metadata": {}})
    with pytest.raises(client.ApiException):
        api.core.read_namespaced_persistent_volume_claim("missing", "default")
    records = [(r.verb, r.path, r.status) for r in server.requests]
    base = "/api/v1/namespaces/default/persistentvolumeclaims"
    assert records == [
        ("create", base, 201),
        ("get", f"{base}/a", 200),
        ("list", base, 200),
        ("patch", f"{base}/a", 200),
        ("get", f"{base}/missing", 404),
    ]
    assert all(r.duration >= 0 for r in server.requests)
    assert server.count_requests(verb="get", path_regex="/persistentvolumeclaims/") == 2


def test_injected_fault_fails_matching_requests_with_a_status(
    api: Api, server: KubeTestServer
) -> None:
    server.fail_next(verb="create", path_regex="persistentvolumeclaims", count=2, status=503)
    api.core.create_persistent_volume(pv_body("pv-unaffected"))
    for _ in range(2):
        with pytest.raises(client.ApiException) as err:
            api.core.create_namespaced_persistent_volume_claim("default", pvc_body("a"))
        assert status_of(err.value)["reason"] == "ServiceUnavailable"
    assert api.core.create_namespaced_persistent_volume_claim("default", pvc_body("a"))
    assert [r.status for r in server.requests if r.verb == "create"] == [201, 503, 503, 201]


def test_dropped_request_closes_the_connection_without_effect(
    api: Api, server: KubeTestServer
) -> None:
    server.fail_next(verb="create", drop=True)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        api.core.create_namespaced_persistent_volume_claim("default", pvc_body("a"))
    assert server.get("persistentvolumeclaims", "a", "default") is None
    assert server.requests[-1].status == 0
    assert api.core.create_namespaced_persistent_volume_claim("default", pvc_body("a"))


def test_cut_watches_breaks_open_streams(api: Api, server: KubeTestServer) -> None:
    thread, outcome = _start_namespace_watch(api, server)
    server.cut_watches()
    thread.join(timeout=5)
    assert len(outcome) == 1
    assert isinstance(outcome[0], urllib3.exceptions.ProtocolError)


def test_bind_claim_plays_the_binder(api: Api, server: KubeTestServer) -> None:
    ns = new_namespace(api)
    api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("a", volume_name="pv-a"))
    api.core.create_persistent_volume(pv_body("pv-a", size="3Gi", claim=(ns, "a")))
    server.bind_claim(ns, "a")
    claim = api.core.read_namespaced_persistent_volume_claim("a", ns)
    volume = api.core.read_persistent_volume("pv-a")
    assert (claim.status.phase, claim.status.capacity) == ("Bound", {"storage": "3Gi"})
    assert claim.status.access_modes == ["ReadWriteOnce"]
    assert (volume.status.phase, volume.spec.claim_ref.uid) == ("Bound", claim.metadata.uid)
    server.release_volume("pv-a")
    assert api.core.read_persistent_volume("pv-a").status.phase == "Released"


def test_the_binder_leaves_the_capacity_of_a_bound_claim_to_the_resizer(
    api: Api, server: KubeTestServer
) -> None:
    ns = new_namespace(api)
    api.core.create_namespaced_persistent_volume_claim(ns, pvc_body("a", volume_name="pv-a"))
    api.core.create_persistent_volume(pv_body("pv-a", size="3Gi", claim=(ns, "a")))
    server.bind_claim(ns, "a")
    api.core.patch_persistent_volume("pv-a", {"spec": {"capacity": {"storage": "5Gi"}}})
    server.bind_claim(ns, "a")  # as kube-controller-manager: capacity set on becoming Bound only
    claim = api.core.read_namespaced_persistent_volume_claim("a", ns)
    assert (claim.status.phase, claim.status.capacity) == ("Bound", {"storage": "3Gi"})


def test_bind_claim_without_a_volume_is_refused(api: Api, server: KubeTestServer) -> None:
    api.core.create_namespaced_persistent_volume_claim("default", pvc_body("a"))
    with pytest.raises(BinderError, match="names no existing volume"):
        server.bind_claim("default", "a")


def test_automatic_binder_binds_prebound_volumes_and_releases_them() -> None:
    with KubeTestServer(binder=True) as kube:
        core = api_for(kube).core
        claim = core.create_namespaced_persistent_volume_claim("default", pvc_body("a"))
        core.create_persistent_volume(
            pv_body("pv-a", claim=("default", "a"), claim_uid=claim.metadata.uid)
        )
        _eventually(
            lambda: (
                core.read_namespaced_persistent_volume_claim("a", "default").status.phase == "Bound"
            ),
            "the claim to be bound",
        )
        bound = core.read_namespaced_persistent_volume_claim("a", "default")
        assert bound.spec.volume_name == "pv-a"
        assert bound.metadata.annotations["pv.kubernetes.io/bind-completed"] == "yes"
        assert core.read_persistent_volume("pv-a").status.phase == "Bound"
        core.delete_namespaced_persistent_volume_claim("a", "default")
        _eventually(
            lambda: core.read_persistent_volume("pv-a").status.phase == "Released",
            "the volume to be released",
        )


def test_automatic_binder_names_the_provisioner_on_pending_claims() -> None:
    with KubeTestServer(binder=True) as kube:
        api = api_for(kube)
        api.storage.create_storage_class(sc_body("glusterfs"))
        api.core.create_namespaced_persistent_volume_claim("default", pvc_body("a"))

        def annotated() -> bool:
            claim = api.core.read_namespaced_persistent_volume_claim("a", "default")
            annotations = claim.metadata.annotations or {}
            return "volume.kubernetes.io/storage-provisioner" in annotations

        _eventually(annotated, "the storage-provisioner annotation")


def test_restart_keeps_objects_and_address_and_ends_watches(
    api: Api, server: KubeTestServer
) -> None:
    api.core.create_namespaced_persistent_volume_claim("default", pvc_body("kept"))
    url = server.url
    thread, outcome = _start_namespace_watch(api, server)
    server.stop()
    thread.join(timeout=5)
    assert server.start() == url
    assert api.core.read_namespaced_persistent_volume_claim("kept", "default").metadata.name
    assert len(outcome) == 1
    assert isinstance(outcome[0], urllib3.exceptions.ProtocolError)


def test_injected_throttling_carries_retry_after(api: Api, server: KubeTestServer) -> None:
    server.fail_next(verb="create", status=429)
    with pytest.raises(client.ApiException) as err:
        api.core.create_namespace({"metadata": {"name": "throttled"}})
    assert err.value.headers["Retry-After"] == "1"
    assert status_of(err.value)["details"] == {"retryAfterSeconds": 1}
    assert status_of(err.value)["reason"] == "TooManyRequests"


def test_slow_answers_hold_requests_until_the_latency_is_lowered(
    api: Api, server: KubeTestServer
) -> None:
    server.set_latency(600)
    answers: list[str] = []
    reader = threading.Thread(target=lambda: answers.append(api.core.list_namespace().kind or ""))
    reader.start()
    _eventually(lambda: server.delayed_requests == 1, "the request to be held")
    assert answers == []
    server.set_latency(0)
    reader.join(timeout=30)
    assert answers == ["NamespaceList"]
    assert server.delayed_requests == 0


def test_slow_answers_do_not_delay_watch_streams(api: Api, server: KubeTestServer) -> None:
    server.set_latency(600)
    thread, outcome = _start_namespace_watch(api, server)
    assert server.delayed_requests == 0
    server.cut_watches()
    thread.join(timeout=30)
    server.set_latency(0)
    assert len(outcome) == 1


@pytest.mark.parametrize("seconds", [-1.0, float("nan")], ids=["negative", "nan"])
def test_a_latency_that_is_not_a_duration_is_refused(
    server: KubeTestServer, seconds: float
) -> None:
    with pytest.raises(ValueError, match="latency"):
        server.set_latency(seconds)
