"""Point 12: benchmark scale: 10,000 claim/volume pairs listed whole, hundreds of writes.

Timings are recorded as test properties for the benchmark report, never asserted on.
"""

import json
import time
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from testbed.kube.server import KubeTestServer
from tests.integration.test_servers.kube_support import pv_body, pvc_body

PAIRS = 10_000
WRITES = 300


@pytest.fixture(scope="module")
def server() -> Iterator[KubeTestServer]:
    with KubeTestServer(history=50_000) as kube:
        kube.seed(pvc_body(f"claim-{i:05d}", volume_name=f"pv-{i:05d}") for i in range(PAIRS))
        kube.seed(pv_body(f"pv-{i:05d}", claim=("default", f"claim-{i:05d}")) for i in range(PAIRS))
        yield kube


@pytest.fixture(scope="module")
def core(server: KubeTestServer) -> client.CoreV1Api:
    return client.CoreV1Api(server.api_client())


def test_ten_thousand_pairs_list_whole_in_one_request_each(
    server: KubeTestServer, core: client.CoreV1Api, record_property: Callable[[str, object], None]
) -> None:
    server.clear_requests()
    started = time.perf_counter()
    claims = json.loads(
        core.list_persistent_volume_claim_for_all_namespaces(_preload_content=False).data
    )
    volumes = json.loads(core.list_persistent_volume(_preload_content=False).data)
    record_property("list_pairs_seconds", round(time.perf_counter() - started, 3))
    assert len(claims["items"]) == len(volumes["items"]) == PAIRS
    assert claims["items"][0]["spec"]["volumeName"] == "pv-00000"
    assert [r.verb for r in server.requests] == ["list", "list"]


def test_hundreds_of_writes_reuse_pooled_connections(
    server: KubeTestServer, core: client.CoreV1Api, record_property: Callable[[str, object], None]
) -> None:
    started = time.perf_counter()
    for i in range(WRITES):
        core.patch_namespaced_persistent_volume_claim(
            f"claim-{i:05d}",
            "default",
            {"metadata": {"annotations": {"n": str(i)}}},
            _preload_content=False,
        )
    record_property("writes_per_second", round(WRITES / (time.perf_counter() - started)))
    patched = server.get("persistentvolumeclaims", f"claim-{WRITES - 1:05d}", "default")
    assert patched is not None
    assert patched["metadata"]["annotations"] == {"n": str(WRITES - 1)}
    assert server.open_connections <= 2  # keep-alive: the pooled connection is reused


def test_paged_list_of_ten_thousand_is_complete(core: client.CoreV1Api) -> None:
    count, token = 0, None
    while True:
        page = json.loads(
            core.list_persistent_volume(limit=2_500, _continue=token, _preload_content=False).data
        )
        count += len(page["items"])
        token = page["metadata"].get("continue")
        if not token:
            break
    assert count == PAIRS
