"""One measured wave of claims: create N at once, wait until all are Bound, count."""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

from bench import objects, procs
from bench.controller import Controller
from bench.hosts import BenchError, Host

#: Verbs that change state in the Kubernetes API.
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
#: Leader election renews its Lease on a timer, not per claim: counted apart.
LEASE_RESOURCES = frozenset({"leases"})
#: Claims created per pipe message to the API host.
CREATE_BATCH = 1000


def ideal_seconds(*, claims: int, inflight: int, latency_ms: int) -> float:
    """Heketi alone as the bottleneck: `inflight` creates at a time, `latency_ms` each."""
    return math.ceil(claims / inflight) * latency_ms / 1000.0


def _per_claim(counts: dict[str, int], claims: int) -> dict[str, Any]:
    by_verb: Counter[str] = Counter()
    lease_requests = 0
    for key, count in counts.items():
        verb, resource = key.split(" ", 1)
        if resource.split("/")[0] in LEASE_RESOURCES:
            lease_requests += count
        else:
            by_verb[verb] += count
    writes = sum(count for verb, count in by_verb.items() if verb in WRITE_VERBS)
    return {
        "api_requests_per_pvc_by_verb": {
            verb: round(count / claims, 3) for verb, count in sorted(by_verb.items())
        },
        "api_writes_per_pvc": round(writes / claims, 3),
        "api_gets_per_pvc": round(by_verb.get("get", 0) / claims, 3),
        "api_requests_by_verb_and_resource": dict(sorted(counts.items())),
        "lease_requests": lease_requests,
    }


def measure_wave(
    *,
    kube: Host,
    heketi: Host,
    controller: Controller,
    namespace: str,
    claims: int,
    timeout: float,
) -> dict[str, Any]:
    """Create `claims` claims in `namespace` at once; figures until every one is Bound."""
    kube.call("create", objs=[objects.namespace(namespace)])
    kube_mark = kube.call("request_mark")
    heketi_mark = heketi.call("request_mark")
    before = procs.usage(controller.pid)
    started = time.monotonic()
    for batch_start in range(0, claims, CREATE_BATCH):
        count = min(CREATE_BATCH, claims - batch_start)
        batch = [
            objects.claim(name=f"claim-{i:05d}", ns=namespace)
            for i in range(batch_start, batch_start + count)
        ]
        kube.call("create", objs=batch)
    bound = _wait_bound(kube, namespace=namespace, claims=claims, timeout=timeout)
    seconds = time.monotonic() - started
    after = procs.usage(controller.pid)
    if bound < claims:
        raise BenchError(
            f"only {bound} of {claims} claims in {namespace} bound within {timeout:.0f} s; "
            f"controller log tail:\n{controller.log_tail()}"
        )
    heketi_statuses = heketi.call("status_counts", since=heketi_mark)
    result: dict[str, Any] = {
        "claims": claims,
        "seconds": round(seconds, 3),
        "claims_per_second": round(claims / seconds, 1),
        "http_429": int(heketi_statuses.get("429", 0)),
        "heketi_requests_by_status": heketi_statuses,
        "heketi_requests": heketi.call("request_counts", since=heketi_mark),
        "cpu_seconds": round(after.cpu_seconds - before.cpu_seconds, 3),
        "cpu_ms_per_pvc": round(1000 * (after.cpu_seconds - before.cpu_seconds) / claims, 2),
        "rss_mb_after": round(procs.rss_mb(controller.pid), 1),
        "api_statuses": kube.call("status_counts", since=kube_mark),
    }
    result.update(_per_claim(kube.call("request_counts", since=kube_mark), claims))
    return result


def _wait_bound(kube: Host, *, namespace: str, claims: int, timeout: float) -> int:
    bound: int = kube.call(
        "wait_bound",
        timeout=timeout + 30,
        namespace=namespace,
        count=claims,
        wait_seconds=timeout,
    )
    return bound
