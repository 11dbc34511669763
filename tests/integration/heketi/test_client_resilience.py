"""Retries, backoff, outages and the per-URL concurrency limit, over real HTTP."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from provisioner.heketi import (
    Durability,
    HeketiAuthError,
    HeketiBusy,
    HeketiClient,
    HeketiClients,
    HeketiOutcomeUnknown,
    HeketiUnavailable,
    VolumeCreateRequest,
)
from testbed.heketi.server import HeketiTestServer
from tests.integration.heketi.conftest import ADMIN_KEY, fast_config


def request(name: str) -> VolumeCreateRequest:
    return VolumeCreateRequest(
        size_gib=1, name=name, durability=Durability(type="replicate", replica=3)
    )


def test_429_storm_with_max_inflight_2_and_50_concurrent_creates_all_succeed() -> None:
    with HeketiTestServer(admin_key=ADMIN_KEY, max_inflight=2, latency_ms=20) as srv:
        heketi = HeketiClient(fast_config(srv.url, retry_attempts=60, retry_budget=30.0))
        names = sorted(f"pvc-storm-{i}" for i in range(50))
        with ThreadPoolExecutor(max_workers=50) as pool:
            volumes = list(pool.map(lambda n: heketi.create_volume(request(n)), names))
        assert sorted(v.name for v in volumes) == names
        assert sorted(v["name"] for v in srv.volumes()) == names
        assert srv.count_status(429) > 0
        assert srv.peak_inflight() <= 2


def test_clients_of_one_url_share_the_concurrency_limit() -> None:
    with HeketiTestServer(admin_key=ADMIN_KEY, max_inflight=50, latency_ms=30) as srv:
        registry = HeketiClients()
        clients = [
            registry(fast_config(srv.url, max_inflight=3, request_timeout=timeout))
            for timeout in (5.0, 6.0)
        ]
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(
                pool.map(
                    lambda i: clients[i % 2].create_volume(request(f"pvc-share-{i}")), range(16)
                )
            )
        assert srv.peak_inflight() <= 3
        assert srv.count_status(429) == 0
        registry.close()


def test_a_client_with_a_smaller_limit_keeps_it_after_a_larger_one_used_the_url() -> None:
    with HeketiTestServer(admin_key=ADMIN_KEY, max_inflight=50, latency_ms=30) as srv:
        HeketiClient(fast_config(srv.url, max_inflight=8)).create_volume(request("pvc-first"))
        small = HeketiClient(fast_config(srv.url, max_inflight=2))
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda i: small.create_volume(request(f"pvc-small-{i}")), range(8)))
        assert srv.peak_inflight() <= 2


def test_five_second_outage_while_an_operation_runs_is_ridden_out() -> None:
    with HeketiTestServer(admin_key=ADMIN_KEY, latency_ms=200) as srv:
        heketi = HeketiClient(fast_config(srv.url, retry_cap=1.0, retry_attempts=30))
        result: list[object] = []
        worker = threading.Thread(
            target=lambda: result.append(heketi.create_volume(request("pvc-outage")))
        )
        worker.start()
        while srv.count_status(202) == 0:
            time.sleep(0.01)
        srv.pause()
        time.sleep(5)
        srv.resume()
        worker.join(timeout=20)
        assert [v.name for v in result] == ["pvc-outage"]  # type: ignore[attr-defined]
        assert [v["name"] for v in srv.volumes()] == ["pvc-outage"]


def test_retries_stop_after_the_configured_attempts() -> None:
    with HeketiTestServer(admin_key=ADMIN_KEY) as srv:
        url = srv.url
    heketi = HeketiClient(fast_config(url, retry_attempts=3))
    with pytest.raises(HeketiUnavailable, match=f"cannot reach Heketi at {url}") as caught:
        heketi.create_volume(request("pvc-nobody-home"))
    assert ADMIN_KEY not in str(caught.value)


def test_retries_stop_at_the_retry_budget() -> None:
    with HeketiTestServer(admin_key=ADMIN_KEY) as srv:
        url = srv.url
    heketi = HeketiClient(fast_config(url, retry_attempts=1000, retry_budget=0.3))
    with pytest.raises(HeketiUnavailable):
        heketi.list_volume_ids()


def test_503_answers_are_retried_until_heketi_answers(
    server: HeketiTestServer, client: HeketiClient
) -> None:
    made = client.create_volume(request("pvc-flaky"))
    server.fail_next("volume_get", count=2, status=503, message="Service Unavailable")
    assert client.get_volume(made.id) == made
    assert server.count_status(503) == 2


def test_429_until_the_attempts_run_out_is_busy(server: HeketiTestServer) -> None:
    server.fail_next(
        "volume_create", count=10, status=429, message="Server busy. Retry operation later."
    )
    heketi = HeketiClient(fast_config(server.url, retry_attempts=3))
    with pytest.raises(HeketiBusy, match="Server busy"):
        heketi.create_volume(request("pvc-busy"))
    assert server.count_status(429) == 3


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_error_on_a_create_is_not_resent(
    server: HeketiTestServer, client: HeketiClient, status: int
) -> None:
    server.fail_next("volume_create", status=status, message="Bad Gateway")
    with pytest.raises(HeketiOutcomeUnknown, match="may have taken effect"):
        client.create_volume(request("pvc-gateway"))
    assert server.count_status(status) == 1


def test_503_on_an_expand_is_not_resent_so_the_volume_never_grows_twice(
    server: HeketiTestServer, client: HeketiClient
) -> None:
    made = client.create_volume(request("pvc-grow-once"))
    server.fail_next("volume_expand", status=503, message="upstream reset before headers")
    with pytest.raises(HeketiOutcomeUnknown, match="may have taken effect"):
        client.expand_volume(made.id, add_gib=1)
    assert (server.count_status(503), client.get_volume(made.id).size_gib) == (1, 1)


def test_gateway_error_on_a_read_is_retried(server: HeketiTestServer, client: HeketiClient) -> None:
    server.fail_next("volume_list", status=502, message="Bad Gateway")
    assert client.list_volume_ids() == []


def test_dropped_answer_to_a_read_is_retried(
    server: HeketiTestServer, client: HeketiClient
) -> None:
    server.drop_next("volume_list")
    assert client.find_volume_by_name("pvc-none") is None


def test_401_is_never_retried(server: HeketiTestServer) -> None:
    heketi = HeketiClient(fast_config(server.url, key="not-the-key-0123456789abcdefghijkl"))
    with pytest.raises(HeketiAuthError):
        heketi.list_volume_ids()
    assert len(server.requests) == 1


def test_operation_deadline_while_polling_is_outcome_unknown() -> None:
    with HeketiTestServer(admin_key=ADMIN_KEY, latency_ms=5000) as srv:
        heketi = HeketiClient(fast_config(srv.url, operation_deadline=0.3))
        with pytest.raises(HeketiOutcomeUnknown, match="did not finish"):
            heketi.create_volume(request("pvc-slow"))


def test_an_expand_past_the_deadline_can_be_followed_to_its_end_without_resending() -> None:
    with HeketiTestServer(admin_key=ADMIN_KEY) as srv:
        heketi = HeketiClient(fast_config(srv.url, operation_deadline=0.3))
        made = heketi.create_volume(request("pvc-slow-expand"))
        srv.set_latency(1500)
        with pytest.raises(HeketiOutcomeUnknown, match="did not finish") as caught:
            heketi.expand_volume(made.id, add_gib=2)
        queue_path = caught.value.queue_path
        assert queue_path is not None and queue_path.startswith("/queue/")
        deadline = time.monotonic() + 15.0
        grown = heketi.poll_expand(queue_path)
        while grown is None:  # Heketi still runs it
            assert time.monotonic() < deadline, "the expand never finished"
            time.sleep(0.05)
            grown = heketi.poll_expand(queue_path)
        assert grown.size_gib == made.size_gib + 2
        expands = [r for r in srv.requests if r.path.endswith("/expand")]
        assert len(expands) == 1
